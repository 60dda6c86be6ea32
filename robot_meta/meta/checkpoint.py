"""Run-directory files: ``config.json`` and ``checkpoint.pt``, written atomically, loaded safely."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CONFIG_FILE",
    "RUN_FORMAT",
    "TENSORBOARD_DIR",
    "CheckpointError",
    "RunConfigMismatchError",
    "atomic_write_bytes",
    "check_run_config",
    "load_checkpoint",
    "read_run_config",
    "remove_stale_temp_files",
    "save_checkpoint",
    "write_json_atomic",
]

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_FORMAT = "robot_meta.checkpoint/1"
RUN_FORMAT = "robot_meta.run/1"


class CheckpointError(ValueError):
    """A checkpoint or run directory that cannot be used (corrupt, truncated, foreign, wrong algorithm)."""


class RunConfigMismatchError(ValueError):
    """The run directory was created by a different configuration than the one asked for."""


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temp file next to `path`, fsync it, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Delete the temp files of atomic writes that a killed process left in `run_dir`; their names.

    Only ``.config.json.*.tmp`` and ``.checkpoint.pt.*.tmp`` are touched: they are never read (the
    ``os.replace`` that would have published them did not happen). One writer per run directory.
    """
    removed: list[str] = []
    for name in (CONFIG_FILE, CHECKPOINT_FILE):
        for tmp in sorted(run_dir.glob(f".{name}.*.tmp")):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` `state` (tensors, dicts, lists, numbers, strings only) atomically to `path`."""
    payload = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: Path, algo: str | None = None) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``; anything unusable is a `CheckpointError`."""
    advice = (
        f"delete {path} to restart this run from scratch (the run's config.json is kept), "
        "or train into a new --out directory"
    )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint at {path}: train first (robot-meta train ... --out RUN)"
        ) from None
    except pickle.UnpicklingError as exc:  # weights_only=True refused a global: never unpickle it
        raise CheckpointError(
            f"{path} is not a readable robot_meta checkpoint: torch.load(weights_only=True) refused it "
            f"({_unpickling_reason(exc)}); it holds more than tensors and plain containers, so robot-meta did "
            f"not write it and will not unpickle it (that could run code); {advice}"
        ) from exc
    except Exception as exc:  # corrupt zip, truncated file, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable robot_meta checkpoint ({msg}); {advice}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path} is not a robot_meta checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r}); {advice}"
        )
    if algo is not None and data.get("algo") != algo:
        raise CheckpointError(f"{path} holds a {data.get('algo')!r} checkpoint, not {algo!r}; {advice}")
    return data


def _unpickling_reason(exc: Exception) -> str:
    """The specific line of torch's weights-only refusal (its first line advises ``weights_only=False``)."""
    lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
    skip = ("Please file an issue", "Check the documentation")
    useful = [ln for ln in lines if not ln.startswith(skip) and ln != "WeightsUnpickler error:"]
    return useful[0].rstrip(".") if useful else type(exc).__name__


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run directory (a `CheckpointError` if missing or unreadable)."""
    path = run_dir / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{run_dir} is not a run directory (no {CONFIG_FILE}): pass the --out of a training run"
        ) from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path} is unreadable ({exc}); restore it or train into a new --out directory"
        ) from exc
    if (
        not isinstance(data, dict)
        or data.get("format") != RUN_FORMAT
        or "config" not in data
        or "algo" not in data
    ):
        raise CheckpointError(
            f"{path} was not written by robot-meta train (format {RUN_FORMAT!r} expected); use a new --out directory"
        )
    return data


def check_run_config(run_dir: Path, algo: str, config: Mapping[str, Any]) -> None:
    """Raise `RunConfigMismatchError` naming the differing fields if ``run_dir`` was made by another config."""
    existing = read_run_config(run_dir)
    if existing["algo"] != algo:
        raise RunConfigMismatchError(
            f"{run_dir} holds a {existing['algo']!r} run, not {algo!r}: resume it with --algo {existing['algo']} "
            "or train into a new --out directory"
        )
    old = existing["config"]
    keys = sorted(set(old) | set(config))
    diffs = [
        f"{k}: {old.get(k, '<missing>')!r} in the run vs {config.get(k, '<missing>')!r} now"
        for k in keys
        if old.get(k) != config.get(k)
    ]
    if diffs:
        raise RunConfigMismatchError(
            f"{run_dir} was created with a different configuration ({'; '.join(diffs)}): "
            "resume it with the original options or train into a new --out directory"
        )
