"""``robot-meta bench``: find and run the benchmark scripts of a source checkout (``make bench``).

A benchmark is any ``benchmarks/*.py`` that defines a top-level ``main()`` (found by parsing, not
importing); helpers (``common.py``, files starting with ``_``) and the runner are skipped. Scripts
in `ORDER` run first, in that order, then any others alphabetically; each runs in its own process
with this interpreter from the repository root, so one crashing or leaking benchmark cannot affect
the next. Results land in ``BENCHMARKS.md`` and ``benchmarks/results/`` (each script writes its own).
"""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ORDER", "BenchError", "BenchResult", "benchmarks_dir", "discover", "run_benchmarks", "select"]

log = logging.getLogger(__name__)

#: Benchmarks that run first, in this order; new scripts are picked up automatically after them.
ORDER = ("env_speed", "adaptation_effect", "kshot", "runtime_latency", "backend_scaling")
_SKIP = frozenset({"common", "run_all"})


class BenchError(ValueError):
    """No benchmark directory, or an unknown benchmark name; the message says what to do."""


@dataclass(frozen=True)
class BenchResult:
    """One benchmark script's run."""

    name: str
    returncode: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def benchmarks_dir(directory: str | Path | None = None) -> Path:
    """`directory`, or the ``benchmarks/`` of the checkout this package is installed from (editable install)."""
    path = Path(directory) if directory is not None else Path(__file__).resolve().parents[1] / "benchmarks"
    if not path.is_dir():
        raise BenchError(
            f"{path} is not a directory: the benchmarks are scripts of a source checkout; "
            "run from a clone (pip install -e .) or pass --dir BENCHMARKS_DIR"
        )
    return path


def _defines_main(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return True  # let it run and fail loudly rather than be skipped silently
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def discover(directory: Path) -> list[str]:
    """Benchmark names of `directory` in run order."""
    found = {
        p.stem
        for p in directory.glob("*.py")
        if p.stem not in _SKIP and not p.stem.startswith("_") and _defines_main(p)
    }
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def select(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The `wanted` benchmarks (names, ``.py`` optional, comma-separated allowed) in run order; all if none."""
    names = [n.strip().removesuffix(".py") for item in wanted for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BenchError(f"unknown benchmark(s) {unknown}: available {list(available)}")
    return [n for n in available if n in names] if names else list(available)


def run_benchmarks(
    directory: Path, names: Sequence[str], *, quick: bool = False, stop_on_error: bool = False
) -> list[BenchResult]:
    """Run each benchmark script in its own process (``--quick``: their short versions)."""
    results: list[BenchResult] = []
    for name in names:
        cmd = [sys.executable, str(directory / f"{name}.py"), *(["--quick"] if quick else [])]
        log.info("=== %s: %s", name, " ".join(cmd))
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=directory.parent)
        result = BenchResult(name, rc, time.perf_counter() - t0)
        results.append(result)
        log.info("=== %s: %s in %.0f s", name, "ok" if result.ok else f"FAILED (exit {rc})", result.seconds)
        if not result.ok and stop_on_error:
            break
    return results
