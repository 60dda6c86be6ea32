"""Run-directory files: ``config.json`` and ``checkpoint.pt``, written atomically, loaded safely."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import tempfile
from collections.abc import Iterator, Mapping
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
    "RunLockedError",
    "lock_run_dir",
    "RUN_CONFIG_KEYS",
    "atomic_write_bytes",
    "check_checkpoint_config",
    "check_finite_state",
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
RUN_CONFIG_KEYS = frozenset(
    {
        "format",
        "algo",
        "config",
        "env",
        "task_distribution",
        "task_pool",
        "versions",
        "policy",
        "encoder",
        "adaptation",
    }
)
"""Every top-level key ``robot-meta train`` writes into ``config.json``; any other key is refused."""


class CheckpointError(ValueError):
    """A checkpoint or run directory that cannot be used (corrupt, truncated, foreign, wrong algorithm)."""


class RunLockedError(CheckpointError):
    """Another process is training into the same run directory."""


class RunConfigMismatchError(ValueError):
    """The run directory was created by a different configuration than the one asked for."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``run_dir/.lock`` (`RunLockedError` naming the holder if taken).

    The kernel drops the lock when its process exits, however it exits: a lock file left by a killed
    process is never stale. The file records the holder's pid and host for the message only.
    """
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunLockedError(
                f"{run_dir} is being trained by another process ({holder}): wait for it to finish "
                "(or stop it), or train into a new --out directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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
    check_finite_state(data, path)
    return data


def _tensors(tree: Any, prefix: str) -> Any:
    """Yield ``(dotted name, tensor)`` for every tensor in nested dicts/lists/tuples."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}[{i}]")


def check_finite_state(data: Mapping[str, Any], path: Path) -> None:
    """`CheckpointError` naming the first model or optimiser tensor of `data` that holds NaN or inf.

    Non-finite weights never come back from a healthy run: the training diverged, or the file was
    altered. Evaluating, exporting or resuming from it would silently spread the NaN.
    """
    for section in ("models", "optimizers"):
        for name, tensor in _tensors(data.get(section, {}), section):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(
                    f"{path}: tensor {name} holds {bad} non-finite value(s) (NaN/inf) of {tensor.numel()}; "
                    f"the run diverged or the file was altered: restore a good copy of {path.name}, or delete "
                    "it to restart the run (the config.json is kept), or train into a new --out directory"
                )


def check_checkpoint_config(data: Mapping[str, Any], config: Mapping[str, Any], path: Path) -> None:
    """`CheckpointError` if the checkpoint records a config (newer checkpoints do) unlike config.json's."""
    saved = data.get("config")
    if not isinstance(saved, Mapping):
        return  # written before checkpoints recorded their config: the shapes are still checked on load
    saved, config = json.loads(json.dumps(dict(saved))), json.loads(json.dumps(dict(config)))
    diffs = [
        f"{k}: {saved.get(k, '<missing>')!r} in {path.name} vs {config.get(k, '<missing>')!r} in {CONFIG_FILE}"
        for k in sorted(set(saved) | set(config))
        if saved.get(k) != config.get(k)
    ]
    if diffs:
        raise CheckpointError(
            f"{path} was trained with another configuration than {path.parent / CONFIG_FILE} says "
            f"({'; '.join(diffs[:4])}): restore the run's original {CONFIG_FILE}, or train into a new --out directory"
        )


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
    unknown = sorted(set(data) - RUN_CONFIG_KEYS)
    if unknown:
        raise CheckpointError(
            f"{path} has unknown top-level key(s) {unknown} (robot-meta train writes only "
            f"{sorted(RUN_CONFIG_KEYS)}): remove them or restore the run's original {CONFIG_FILE}"
        )
    _check_policy_spec(data, path)
    return data


def _check_policy_spec(data: Mapping[str, Any], path: Path) -> None:
    """The network recorded in ``policy`` must be the one the ``config`` section describes."""
    policy, config = data.get("policy"), data.get("config")
    if not isinstance(policy, Mapping) or not isinstance(config, Mapping):
        return
    p_hidden, c_hidden = policy.get("hidden"), config.get("hidden")
    if (
        isinstance(p_hidden, (list, tuple))
        and isinstance(c_hidden, (list, tuple))
        and list(p_hidden) != list(c_hidden)
    ):
        raise CheckpointError(
            f"{path} contradicts itself: config.hidden={config['hidden']!r} but policy.hidden={policy['hidden']!r}; "
            f"restore the run's original {CONFIG_FILE} or train into a new --out directory"
        )


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
