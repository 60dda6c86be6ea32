"""Remake the pretrained run shipped in ``robot_meta/pretrained/slide-context`` (part of ``make bench``).

Runs the documented commands through the package's own CLI, in a scratch directory:

    robot-meta train --algo context --env robot_meta/PandaSlide-v0 --budget full --seed 0 --out RUN
    robot-meta export RUN --out RUN/export
    robot-meta evaluate RUN --split test --shots 0,1,3,5 --episodes 3 --seeds 0,1,2 --tasks 8

then copies ``config.json``, ``tensorboard/``, ``eval.json`` and ``export/`` (not the checkpoint: its
replay buffers are tens of MB) into a staging folder, writes ``provenance.json`` (the commands,
versions, date, CPU time and the sha256 of every file) and swaps the folder in. The torch K-shot
evaluation is part of the record so that the report's success-vs-K plot needs no torch run.

    .venv/bin/python benchmarks/pretrained.py            # about 15-30 CPU-minutes
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from robot_meta.pretrained import DEFAULT, PRETRAINED_DIR
from robot_meta.pretrained.build import QUICK, build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=PRETRAINED_DIR / DEFAULT)
    ap.add_argument(
        "--quick", action="store_true", help="smoke budget into a scratch folder (a check of the steps)"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp) / DEFAULT, QUICK)
        return
    build(args.out)


if __name__ == "__main__":
    sys.exit(main())
