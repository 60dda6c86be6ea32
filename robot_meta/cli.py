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


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="meta-train a Q-network policy on a task family (resumable run directory)",
        description=(
            "Meta-train a discrete-action Q-network on the train split of a task distribution with one of "
            "three algorithms: meta-dqn (MAML over the device's head adaptation rule), reptile (first-order "
            "meta-learning over per-task DQN) or context (a task encoder conditions the Q-network). The run "
            "directory gets config.json, checkpoint.pt and TensorBoard logs (tensorboard --logdir RUN). "
            "Running the same command on an existing RUN resumes it exactly where it stopped."
        ),
        epilog="example: robot-meta train --algo meta-dqn --env robot_meta/PandaPush-v0 --budget small --out runs/push",
    )
    p.add_argument(
        "--algo", required=True, choices=["meta-dqn", "reptile", "context"], help="meta-learning algorithm"
    )
    p.add_argument("--env", required=True, metavar="ID", help="Gymnasium id, e.g. robot_meta/PandaSlide-v0")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="task-distribution preset (reach, push, slide, pick_place, manipulation-all; default: the env's family)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--budget",
        choices=["smoke", "small", "full"],
        default="small",
        help="run size: smoke = seconds, small = minutes, full = about 15 minutes on 2 cores (default: %(default)s)",
    )
    p.add_argument(
        "--out", required=True, metavar="RUN", help="run directory (created, or resumed if it exists)"
    )
    p.add_argument(
        "--backend", default="local", help="execution backend of the per-task work (default: %(default)s)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set lr=0.0003 --set hidden=[128,128] (repeatable)",
    )

    def run(args: argparse.Namespace) -> int:
        import gymnasium as gym

        from robot_meta._registration import ENV_FAMILIES
        from robot_meta.distributed import BACKENDS, get_backend
        from robot_meta.meta import (
            CheckpointError,
            RunConfigMismatchError,
            config_class,
            make_config,
            parse_override,
        )

        preset = args.preset or ENV_FAMILIES.get(args.env)
        if preset is None:
            raise CliError(f"cannot guess the task preset of env {args.env!r}: pass --preset NAME")
        try:
            overrides = dict(parse_override(config_class(args.algo), item) for item in args.overrides)
            config = make_config(
                args.algo,
                budget=args.budget,
                env_id=args.env,
                preset=preset,
                seed=args.seed,
                overrides=overrides,
            )
            from robot_meta.envs import TaskDistribution

            TaskDistribution.preset(config.preset)
            if args.backend not in BACKENDS:
                raise ValueError(
                    f"unknown execution backend {args.backend!r}: choose one of {list(BACKENDS)}"
                )
        except ValueError as exc:
            raise CliError(str(exc)) from None
        try:
            gym.spec(config.env_id)
        except gym.error.Error as exc:
            raise CliError(
                f"unknown environment id {config.env_id!r} ({exc}); e.g. robot_meta/PandaPush-v0"
            ) from None

        import torch

        from robot_meta.meta import train_run

        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        backend = get_backend(args.backend)
        try:
            result = train_run(config, args.out, backend=backend)
        except (CheckpointError, RunConfigMismatchError) as exc:
            raise CliError(str(exc)) from None
        finally:
            backend.close()
        summary = ", ".join(f"{k}={v:.3g}" for k, v in result.metrics.items() if k.startswith("meta/"))
        log.info(
            "%s: %d iterations, %d env steps, %d updates in %.0f s -> %s %s",
            args.algo,
            result.iterations,
            result.env_steps,
            result.updates,
            result.wall_time,
            args.out,
            f"({summary})" if summary else "",
        )
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


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_demo, _add_train]


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
