"""Run every benchmark script of this directory (``make bench``; the same as ``robot-meta bench``).

Discovery and running are `robot_meta.bench`; this file keeps ``python benchmarks/run_all.py``
working for checkouts without the console script on PATH.

    .venv/bin/python benchmarks/run_all.py                      # all, full versions
    .venv/bin/python benchmarks/run_all.py --quick              # all, short versions (smoke test)
    .venv/bin/python benchmarks/run_all.py --only env_speed     # one (repeat or comma-separate for more)
    .venv/bin/python benchmarks/run_all.py --list
"""

from __future__ import annotations

import sys
from pathlib import Path

from robot_meta.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    only: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--only":
            only.append(next(it, ""))
        elif a.startswith("--only="):
            only.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return cli_main(["bench", *only, "--dir", str(Path(__file__).resolve().parent), *rest])


if __name__ == "__main__":
    sys.exit(main())
