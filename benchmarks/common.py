"""Shared helpers of the benchmark scripts: result JSON files and BENCHMARKS.md sections.

Every script writes ``benchmarks/results/NAME.json`` (with the date, the machine and the exact
command) and owns one section of ``BENCHMARKS.md`` between the markers
``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``; the prose around the sections is
written by hand and never touched here.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "BENCHMARKS_MD",
    "REPO_ROOT",
    "RESULTS_DIR",
    "command_line",
    "machine_info",
    "markdown_table",
    "now_utc",
    "update_markdown_section",
    "write_results",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"

#: Distributions whose versions are recorded with every result (missing ones are skipped).
_PACKAGES = ("robot_meta", "numpy", "pybullet", "gymnasium", "panda-gym", "torch", "onnxruntime")


def now_utc() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def _rel(path: str) -> str:
    """`path` relative to the repository root when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as typed from the repository root.

    The interpreter path is kept unresolved (a venv's ``python`` is a symlink to the base
    interpreter; resolving it would lose the venv).
    """
    args = list(sys.argv if argv is None else argv)
    exe = sys.executable
    try:
        exe = str(Path(os.path.normpath(Path(exe).absolute())).relative_to(REPO_ROOT))
    except ValueError:
        pass
    script = _rel(args[0]) if args else ""
    return " ".join(shlex.quote(a) for a in [exe, script, *args[1:]] if a)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("-dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """CPU count and model, OS, Python, the versions of the relevant packages and the git revision."""
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_revision": _git_revision(),
    }


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays and tuples to plain JSON types (NaN/inf to None)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy array or scalar
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_results(name: str, results: dict[str, Any], command: str | None = None) -> Path:
    """Write ``benchmarks/results/NAME.json``: date, machine, command and `results`; returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": now_utc(),
        "command": command if command is not None else command_line(),
        "machine": machine_info(),
        "results": _jsonable(results),
    }
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _cell(value: Any) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are shown with 3 significant digits."""
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"markdown_table: row {list(row)} has {len(row)} cells, expected {len(headers)}")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def update_markdown_section(
    name: str,
    body: str,
    command: str | None = None,
    date: str | None = None,
    path: Path = BENCHMARKS_MD,
    provenance: str | None = None,
) -> Path:
    """Replace the section ``NAME`` of BENCHMARKS.md with `body` plus the command and the date.

    The section lies between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``;
    it is appended at the end of the file (created if missing) the first time. `provenance`
    (markdown) replaces the one-command line when the figures come from several commands.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r} must be letters, digits, '_', '.' or '-'")
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    info = machine_info()
    pkgs = info["packages"]
    machine = f"{info['cpus_usable']} CPUs ({info['cpu_model']}), Python {info['python']}, " + ", ".join(
        f"{k} {v}" for k, v in pkgs.items() if k in ("pybullet", "gymnasium", "panda-gym")
    )
    footer = (
        provenance or f"Command: `{command if command is not None else command_line()}`"
    ) + f"  \nDate: {date or now_utc()} · Machine: {machine} · Raw numbers: `benchmarks/results/{name}.json`"
    section = f"{start}\n{body.strip()}\n\n{footer}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
