"""Run every benchmark script of this directory (``make bench``).

A benchmark is any ``benchmarks/*.py`` that defines a top-level ``main()`` (found by parsing, not
importing); helpers (``common.py``, files starting with ``_``) and this runner are skipped. Scripts
in `ORDER` run first, in that order, then any others alphabetically; each runs in its own
process with the same interpreter, so one crashing or leaking benchmark cannot affect the next.

    .venv/bin/python benchmarks/run_all.py                      # all, full versions
    .venv/bin/python benchmarks/run_all.py --quick              # all, short versions (smoke test)
    .venv/bin/python benchmarks/run_all.py --only env_speed     # one (repeat or comma-separate for more)
    .venv/bin/python benchmarks/run_all.py --list
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
#: Benchmarks that run first, in this order; new scripts are picked up automatically after them.
ORDER = ("env_speed", "adaptation_effect", "kshot", "runtime_latency", "backend_scaling")
_SKIP = {"common", "run_all"}


def defines_main(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return True  # let it run and fail loudly rather than be skipped silently
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def discover() -> list[str]:
    """Benchmark names in run order."""
    found = {
        p.stem
        for p in BENCH_DIR.glob("*.py")
        if p.stem not in _SKIP and not p.stem.startswith("_") and defines_main(p)
    }
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the benchmark scripts of benchmarks/ in a fixed order.")
    ap.add_argument(
        "--quick", action="store_true", help="pass --quick to every script (short smoke-test runs)"
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (file name without .py); repeat or comma-separate for several",
    )
    ap.add_argument("--list", action="store_true", help="list the benchmarks in run order and exit")
    ap.add_argument("--stop-on-error", action="store_true", help="stop at the first failing benchmark")
    args = ap.parse_args(argv)

    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        wanted = [n.strip().removesuffix(".py") for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            ap.error(f"unknown benchmark(s) {unknown}: available {names}")
        names = [n for n in names if n in wanted]

    results: list[tuple[str, int, float]] = []
    for name in names:
        cmd = [sys.executable, str(BENCH_DIR / f"{name}.py"), *(["--quick"] if args.quick else [])]
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=REPO_ROOT)
        elapsed = time.perf_counter() - t0
        results.append((name, rc, elapsed))
        print(f"=== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {elapsed:.0f} s", flush=True)
        if rc != 0 and args.stop_on_error:
            break

    print("\nSummary:")
    for name, rc, elapsed in results:
        print(f"  {name:<24} {'ok' if rc == 0 else f'FAILED (exit {rc})':<18} {elapsed:6.0f} s")
    failed = [n for n, rc, _ in results if rc != 0]
    if failed:
        print(f"{len(failed)} benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
