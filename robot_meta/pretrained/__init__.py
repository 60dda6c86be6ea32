"""Pretrained runs shipped with the package: small, verifiable, and remade by one documented command.

A pretrained run is a folder under ``robot_meta/pretrained/`` holding what a newcomer needs to
adapt and inspect a policy without training it for half an hour: ``export/`` (the ONNX graphs and
manifest that the device runtime loads), ``config.json`` and ``tensorboard/`` (the run's
configuration and learning curves, for ``robot-meta report``), ``eval.json`` (its K-shot
evaluation) and ``provenance.json``: the commands that made it (``robot-meta train ... --budget
full``, ``robot-meta export``, ``robot-meta evaluate``), the package versions, the date, and the
sha256 of every other file. `verify` checks the files against those hashes; ``make bench``
(``benchmarks/pretrained.py``) remakes the folder with the recorded commands. The training
checkpoint is not shipped (its replay buffers are tens of MB); retrain with the recorded command
to continue from it.

Only the standard library is imported here: the device install can verify and load the export.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["PRETRAINED_DIR", "PROVENANCE_FILE", "PretrainedError", "file_hashes", "pretrained_path", "verify"]

PRETRAINED_DIR = Path(__file__).resolve().parent
PROVENANCE_FILE = "provenance.json"
#: The shipped pretrained run: ContextDQN (RMA-style) on the slide family, an ONNX export to try
#: `robot-meta adapt` on without training (`make demo` fits and adapts the strike planner instead).
DEFAULT = "slide-context"


class PretrainedError(RuntimeError):
    """A pretrained run is missing or does not match its recorded hashes (the message says what to do)."""


def pretrained_path(name: str = DEFAULT) -> Path:
    """The folder of the shipped pretrained run `name` (a `PretrainedError` if it is not there)."""
    path = PRETRAINED_DIR / name
    if not (path / PROVENANCE_FILE).is_file():
        have = sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / PROVENANCE_FILE).is_file())
        raise PretrainedError(
            f"no pretrained run {name!r} in {PRETRAINED_DIR} (shipped: {have}); "
            "remake it with `.venv/bin/python benchmarks/pretrained.py`"
        )
    return path


#: Sub-folders that are derived, not shipped: ``robot-meta report RUN`` writes ``RUN/report`` by default.
DERIVED = ("report", "__pycache__")


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every shipped file under `folder` (not the provenance record, not `DERIVED`), by POSIX path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if (
            p.is_file()
            and p.name != PROVENANCE_FILE
            and rel.parts[0] not in DERIVED
            and "__pycache__" not in rel.parts
        ):
            out[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def verify(folder: str | Path) -> dict[str, Any]:
    """The provenance record of `folder` after checking every recorded file's sha256 (and no extra files).

    `PretrainedError` naming the first mismatch: a changed, missing or unrecorded file.
    """
    root = Path(folder)
    try:
        record: dict[str, Any] = json.loads((root / PROVENANCE_FILE).read_text())
        recorded: dict[str, str] = dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PretrainedError(
            f"{root / PROVENANCE_FILE} cannot be read ({exc}): remake it with `.venv/bin/python benchmarks/pretrained.py`"
        ) from exc
    actual = file_hashes(root)
    for rel in sorted(set(recorded) | set(actual)):
        if rel not in actual:
            problem = "is missing"
        elif rel not in recorded:
            problem = "is not in the provenance record"
        elif actual[rel] != recorded[rel]:
            problem = f"has sha256 {actual[rel][:12]}..., the record says {recorded[rel][:12]}..."
        else:
            continue
        raise PretrainedError(
            f"{root / rel} {problem}: the pretrained run was modified; restore it from the repository "
            "or remake it with `.venv/bin/python benchmarks/pretrained.py`"
        )
    return record
