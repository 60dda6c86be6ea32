"""`robot-meta` console script. argv is parsed here and nowhere else.

Every subcommand prints one clear line and exits non-zero on bad input (`CliError`), never a
traceback. Subcommands: train, evaluate, export, adapt, bench, report, demo.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

__all__ = ["CliError", "main"]

log = logging.getLogger("robot_meta")


class CliError(Exception):
    """A user error: its message is printed as one line and the command exits with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message} (see `{self.prog} --help`)")


Handler = Callable[[argparse.Namespace], int]


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded default configuration",
        description="Run the main job end to end on the embedded default (local files, no services).",
    )
    p.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")

    def run(args: argparse.Namespace) -> int:
        from robot_meta.demo import run_demo

        run_demo(out=args.out, seed=args.seed)
        return 0

    p.set_defaults(handler=run)


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


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_demo]


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


if __name__ == "__main__":
    sys.exit(main())
