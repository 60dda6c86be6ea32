"""`robot-meta` console script. argv is parsed here and nowhere else.

Every subcommand prints one clear line and exits non-zero on bad input (`CliError`), never a
traceback. Subcommands: train, evaluate, export, adapt, bench, report, demo.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from robot_meta.cli._base import ALGO_CHOICES, SPLIT_CHOICES, CliError, Handler, _Parser
from robot_meta.cli.device import _add_adapt, _add_bench, _add_report
from robot_meta.cli.training import _add_demo, _add_evaluate, _add_export, _add_train

__all__ = ["ALGO_CHOICES", "SPLIT_CHOICES", "CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="robot-meta",
        description="Meta-train manipulator policies in PyBullet, export them to ONNX and adapt them on the device.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo,
    _add_train,
    _add_evaluate,
    _add_export,
    _add_adapt,
    _add_bench,
    _add_report,
]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        handler: Handler = args.handler
        return handler(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
