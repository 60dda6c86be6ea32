"""Checks of user-given sizes, seeds and output paths (CLI arguments and configs alike), made before any work starts.

Every check raises `ValueError` with one line that says what to do (the CLI prints it as
``error: ...`` and exits 2); nothing is created on disk (a writability probe removes its file).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = [
    "MAX_EPISODES",
    "MAX_SEED",
    "MAX_SHOTS",
    "MAX_TASKS",
    "check_count",
    "check_output_dir",
    "check_output_file",
    "check_seed",
]

#: Seeds of every command: numpy, torch and random all accept [0, 2**32 - 1] (torch and numpy more,
#: but one rule for every command keeps a seed that trains also evaluate).
MAX_SEED = 2**32 - 1
#: Largest K of ``evaluate --shots`` (each shot is a whole episode per task and seed).
MAX_SHOTS = 1_000
#: Largest ``--episodes`` and ``--tasks`` of ``evaluate`` and ``adapt``.
MAX_EPISODES = 10_000
MAX_TASKS = 10_000


def check_seed(seed: int, what: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{what} {seed} is out of range: give a seed in [0, {MAX_SEED}] (2**32 - 1)")
    return seed


def check_count(value: int, what: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is out of range: give a value in [{lo}, {hi}]")
    return value


def _probe_writable(directory: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".robot_meta-write-probe-", dir=directory)
    except OSError as exc:
        raise ValueError(
            f"{what}: cannot write into {directory} ({exc.strerror or exc}): choose a writable location"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _nearest_existing(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """`path` is an existing writable directory, or could be created as one (its nearest ancestor is writable)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{what} {out} exists and is not a directory: pass a directory path")
    base = _nearest_existing(out)
    if not base.is_dir():
        raise ValueError(
            f"{what} {out}: {base} is a file, so the directory cannot be created; pick another path"
        )
    _probe_writable(base, f"{what} {out}")
    return out


def check_output_file(path: str | Path, what: str) -> Path:
    """`path` names a file that can be written (not a directory; its directory exists or can be made)."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{what} {out} is a directory: give a file name, e.g. {out / 'result.json'}")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"{what} {out} exists and is not writable: choose another file")
    check_output_dir(out.parent if str(out.parent) else Path("."), what)
    return out
