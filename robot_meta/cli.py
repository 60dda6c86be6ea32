"""`robot-meta` console script. argv is parsed here and nowhere else.

Every subcommand prints one clear line and exits non-zero on bad input (`CliError`), never a
traceback. Subcommands: train, evaluate, export, adapt, bench, report, demo.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence

from robot_meta import cli_checks as checks

__all__ = ["CliError", "main"]

log = logging.getLogger("robot_meta")


class CliError(Exception):
    """A user error: its message is printed as one line and the command exits with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message} (see `{self.prog} --help`)")


Handler = Callable[[argparse.Namespace], int]


class _Registered:
    """Argparse ``choices`` looked up only when used (parsing that option, or printing its help).

    The algorithm registry imports torch and the task splits pybullet; the device's commands
    (``adapt``) and ``--help`` of the others must not pay for that.
    """

    def __init__(self, lookup: Callable[[], Sequence[str]]) -> None:
        self._lookup = lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __contains__(self, value: object) -> bool:
        return value in self._lookup()


def _algo_names() -> Sequence[str]:
    from robot_meta.meta.registry import ALGO_NAMES

    return ALGO_NAMES


def _split_names() -> Sequence[str]:
    from robot_meta.envs.params import SPLITS

    return SPLITS


ALGO_CHOICES = _Registered(_algo_names)
SPLIT_CHOICES = _Registered(_split_names)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded default configuration",
        description="Run the main job end to end on the embedded default (local files, no services).",
    )
    p.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")

    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from robot_meta.demo import run_demo

    try:
        checks.check_seed(args.seed)
        checks.check_output_dir(args.out, "--out")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    run_demo(out=args.out, seed=args.seed)
    return 0


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
        "--algo",
        required=True,
        choices=ALGO_CHOICES,
        metavar="NAME",
        help="meta-learning algorithm, one of the registered ones: %(choices)s",
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
        "--backend",
        default=None,
        metavar="{local,ray}",
        help=(
            "where the per-task work of each meta-iteration (collection, inner loops) runs: local = this "
            "machine, no services (a process pool with --workers N); ray = Ray tasks on a local Ray "
            "instance, or on a cluster with --ray-address; same seed, same results on both (default: local)"
        ),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=(
            "parallel workers, processes (local: pool size, 1 = in this process; ray: CPUs of the local "
            "Ray instance and most tasks in flight; default: 1 for local, every CPU for ray)"
        ),
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join an existing Ray cluster, e.g. HOST:6379, ray://HOST:10001 or auto (implies --backend ray)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set lr=0.0003 --set hidden=[128,128] (repeatable)",
    )

    p.set_defaults(handler=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from robot_meta.distributed import BACKENDS, backend_from_cli

    try:
        checks.check_seed(args.seed)
        checks.check_output_dir(args.out, "--out")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from robot_meta.meta import CheckpointError, ResourceError, RunConfigMismatchError, config_from_options

    try:
        config = config_from_options(
            args.algo,
            env_id=args.env,
            preset=args.preset,
            budget=args.budget,
            seed=args.seed,
            overrides=args.overrides,
        )
        if args.backend is not None and args.backend not in BACKENDS:
            raise ValueError(f"unknown execution backend {args.backend!r}: choose one of {list(BACKENDS)}")
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers {args.workers} is invalid: must be >= 1")
        if args.ray_address and args.backend == "local":
            raise ValueError("--ray-address needs --backend ray (or leave --backend out)")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    import torch

    from robot_meta.meta import train_run

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        backend = backend_from_cli(args.backend, args.workers, args.ray_address)
    except (ImportError, RuntimeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    from robot_meta.envs.sim import PhysicsDisconnectedError

    try:
        result = train_run(config, args.out, backend=backend)
    except (CheckpointError, RunConfigMismatchError, PhysicsDisconnectedError, ResourceError) as exc:
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


def _parse_ints(text: str, what: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CliError(f"{what} must be comma-separated integers such as {example}, got {text!r}") from None
    if not values:
        raise CliError(f"{what} is empty: give at least one value, e.g. {example}")
    return values


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="K-shot evaluation of a trained run on held-out tasks (eval.json + success-vs-K plot)",
        description=(
            "Meta-World-style K-shot protocol on tasks the run never trained on. For every seed and each of "
            "--tasks tasks drawn from the split: collect K shot episodes with the policy's own exploration, "
            "adapt after each (meta-dqn: head TD steps; reptile: a few full-network DQN steps, and the "
            "device's head-only rule as 'reptile-head'; context: encode the shots), then run --episodes greedy "
            "episodes. Reports success rate and mean return per K with 95 % t-intervals over (task, seed) "
            "units, and writes eval.json and eval.png into the run directory (or --out). RUN may also be an "
            "export directory: the protocol then runs what ships, through the on-device runtime."
        ),
        epilog="example: robot-meta evaluate runs/push --split test --shots 0,1,5,10 --episodes 5 --seeds 0,1,2",
    )
    p.add_argument(
        "run",
        metavar="RUN",
        help="run directory of `robot-meta train`, or export directory of `robot-meta export`",
    )
    p.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        metavar="SPLIT",
        default="test",
        help="unseen tasks of the train distribution (test), held-out intervals and shape (interp), beyond the train ranges (ood), train for diagnosis; one of %(choices)s (default: %(default)s)",
    )
    p.add_argument("--shots", default="0,1,5,10", help="comma-separated K values (default: %(default)s)")
    p.add_argument(
        "--episodes",
        type=int,
        default=5,
        help="greedy evaluation episodes per task and K (default: %(default)s)",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated evaluation seeds (default: %(default)s)")
    p.add_argument("--tasks", type=int, default=5, help="held-out tasks per seed (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="where eval.json and eval.png go (default: RUN)")

    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    shots = _parse_ints(args.shots, "--shots", "0,1,5,10")
    seeds = _parse_ints(args.seeds, "--seeds", "0,1,2")
    if min(shots) < 0:
        raise CliError(f"--shots must be >= 0, got {args.shots!r}")
    if args.episodes < 1 or args.tasks < 1:
        raise CliError("--episodes and --tasks must be >= 1")
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise CliError(f"run directory {run_dir} does not exist: pass the --out of `robot-meta train`")
    try:
        checks.check_count(max(shots), "--shots", 0, checks.MAX_SHOTS)
        checks.check_count(args.episodes, "--episodes", 1, checks.MAX_EPISODES)
        checks.check_count(args.tasks, "--tasks", 1, checks.MAX_TASKS)
        for seed in seeds:
            checks.check_seed(seed, "--seeds")
        checks.check_output_dir(args.out or run_dir, "--out")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    import torch

    from robot_meta.meta import CheckpointError
    from robot_meta.meta.eval import EVAL_FILE, evaluate
    from robot_meta.runtime import RuntimeLoadError

    torch.set_num_threads(1)
    try:
        result = evaluate(
            run_dir, args.split, shots, args.episodes, seeds, num_tasks=args.tasks, out=args.out
        )
    except (CheckpointError, RuntimeLoadError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(result.table())
    log.info("wrote %s", Path(args.out or run_dir) / EVAL_FILE)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained run to ONNX + manifest.json for the on-device runtime",
        description=(
            "Export the latest checkpoint of a run directory (written by `robot-meta train`) to DIR: "
            "policy.onnx (observation normalisation inside; the head weights are graph inputs whose defaults "
            "are the meta-trained values; a `features` output for on-device adaptation), encoder.onnx for "
            "context runs, and manifest.json (observation layout, action map, adaptation rule, versions, "
            "sha256 of every file). The export is refused unless onnx.checker passes and onnxruntime matches "
            "torch (max abs difference <= 1e-5, identical greedy actions) on a few thousand observations."
        ),
        epilog="example: robot-meta export runs/slide --out runs/slide-export",
    )
    p.add_argument("run", metavar="RUN", help="run directory written by `robot-meta train`")
    p.add_argument("--out", required=True, metavar="DIR", help="export directory (new, or a previous export)")
    p.add_argument(
        "--parity-samples",
        type=int,
        default=4096,
        metavar="N",
        help="observations of the torch<->onnxruntime parity check (default: %(default)s)",
    )

    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not (Path(args.run) / "config.json").is_file():
        raise CliError(
            f"{args.run} is not a run directory (no config.json): pass the --out of `robot-meta train`"
        )
    from robot_meta.export import ExportConfig, ExportError, export_run
    from robot_meta.meta import CheckpointError
    from robot_meta.runtime import ManifestError

    try:
        out = checks.check_output_dir(args.out, "--out")
        checks.check_output_dir(out.absolute().parent, "--out")  # the new export is swapped in beside it
        cfg = ExportConfig(parity_samples=args.parity_samples)
        command = f"robot-meta export {args.run} --out {args.out}"
        if args.parity_samples != 4096:
            command += f" --parity-samples {args.parity_samples}"
        result = export_run(args.run, args.out, config=cfg, command=command)
    except (ValueError, CheckpointError, ExportError, ManifestError, OSError) as exc:
        raise CliError(str(exc)) from None
    par = result.parity["policy_default_head"]
    print(
        f"exported {args.run} -> {result.out_dir} ({', '.join(result.manifest['files'])} + manifest.json); "
        f"parity on {par['samples']} observations: max |dQ| {par['max_abs_diff_q']:.1e}, "
        f"greedy mismatches {par['greedy_mismatches']}"
    )
    return 0


def _add_adapt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adapt",
        help="run an export's on-device adaptation loop against the simulator; success before/after",
        description=(
            "Load an export directory with the on-device runtime (numpy + onnxruntime), then for each of "
            "--tasks tasks drawn from a split of the run's task distribution run the control loop at --rate "
            "Hz against the simulator standing in for the robot: the first episode acts with the meta-trained "
            "head (before), then the head adapts in a background thread at the end of every episode and the "
            "remaining episodes act with it (after). Prints the success rate before and after adaptation."
        ),
        epilog="example: robot-meta adapt runs/slide-export --env robot_meta/PandaSlide-v0 --split test --episodes 3",
    )
    p.add_argument("export_dir", metavar="DIR", help="export directory written by `robot-meta export`")
    p.add_argument(
        "--env", metavar="ID", help="Gymnasium id of the simulator (default: the manifest's env id)"
    )
    p.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        metavar="SPLIT",
        default="test",
        help="task split, one of %(choices)s (default: %(default)s)",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=3,
        metavar="N",
        help="episodes per task: 1 before + N-1 after adaptation, N >= 2 (default: %(default)s)",
    )
    p.add_argument(
        "--tasks", type=int, default=5, metavar="T", help="tasks drawn from the split (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the task draw and the resets (default: %(default)s)"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=100.0,
        metavar="HZ",
        help="control rate, 0 = as fast as possible (default: %(default)s)",
    )
    p.add_argument(
        "--method",
        choices=["td", "ridge"],
        default="td",
        help="head adaptation: TD steps or ridge solve (default: %(default)s)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")

    p.set_defaults(handler=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    import json

    from robot_meta.runtime import (
        AdaptConfig,
        AdaptivePolicy,
        ControllerConfig,
        ManifestError,
        RuntimeLoadError,
        TaskTrial,
        run_trials,
    )

    if args.episodes < 2:
        raise CliError(f"--episodes {args.episodes}: need at least 2 (one before and one after adaptation)")
    if args.tasks < 1:
        raise CliError(f"--tasks {args.tasks}: need at least 1")
    try:
        checks.check_seed(args.seed)
        checks.check_count(args.episodes, "--episodes", 2, checks.MAX_EPISODES)
        checks.check_count(args.tasks, "--tasks", 1, checks.MAX_TASKS)
        if args.json:
            checks.check_output_file(args.json, "--json")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        policy = AdaptivePolicy.load(args.export_dir, AdaptConfig(method=args.method))
        ctrl = ControllerConfig(rate_hz=args.rate, adapt_every=1 if policy.manifest.context else 0)
    except (ManifestError, RuntimeLoadError, ValueError) as exc:
        raise CliError(str(exc)) from None
    import numpy as np

    from robot_meta.adapt import simulator_for

    env_id = args.env or policy.manifest.env_id
    try:
        env, tasks = simulator_for(policy, env_id, args.split, args.tasks, args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(
        f"{policy.manifest.algo} policy from {args.export_dir} on {env_id}, split {args.split}: "
        f"{args.tasks} tasks x {args.episodes} episodes at {args.rate:g} Hz ("
        + (
            "z re-inferred after every tick"
            if policy.manifest.context
            else f"{policy.config.method} head adaptation"
        )
        + ")"
    )

    def show(i: int, t: TaskTrial) -> None:
        after = "".join("S" if s else "." for s in t.success_after)
        print(
            f"  task {i + 1}/{args.tasks}: before {'S' if t.success_before else '.'}  after {after}  "
            f"(return {t.return_before:.1f} -> {np.mean(t.return_after):.1f}, adaptations {t.adaptations}, "
            f"missed ticks {t.missed_ticks})",
            flush=True,
        )

    try:
        report = run_trials(
            policy, env, tasks, episodes=args.episodes, seed=args.seed, config=ctrl, on_task=show
        )
    finally:
        env.close()
    n_after = sum(len(t.success_after) for t in report.trials)
    print(
        f"success before adaptation: {report.success_before:.0%} of {len(report.trials)} episodes; "
        f"after adaptation: {report.success_after:.0%} of {n_after} episodes; "
        f"mean return {report.return_before:.1f} -> {report.return_after:.1f}; "
        f"missed ticks {report.missed_ticks} of {report.ticks}"
    )
    if args.json:
        doc = {
            **report.summary(),
            "export": str(args.export_dir),
            "env_id": env_id,
            "split": args.split,
            "episodes": args.episodes,
            "seed": args.seed,
            "rate_hz": args.rate,
            "method": args.method,
        }
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
    return 130 if report.interrupted else 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run the benchmark scripts (env speed, K-shot comparison, latency, ...) of a source checkout",
        description=(
            "Run the benchmarks of benchmarks/ (each a script with a main(), in its own process, from the "
            "repository root), in a fixed order: env_speed, adaptation_effect, kshot, runtime_latency, "
            "backend_scaling, then the others alphabetically. Their figures land in BENCHMARKS.md and "
            "benchmarks/results/. The full versions take hours on 2 cores; --quick runs the short ones."
        ),
        epilog="example: robot-meta bench kshot --quick",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all; see --list)")
    p.add_argument("--quick", action="store_true", help="the short versions (a smoke test of each)")
    p.add_argument("--list", action="store_true", help="list the benchmarks in run order and exit")
    p.add_argument("--stop-on-error", action="store_true", help="stop at the first failing benchmark")
    p.add_argument(
        "--dir", metavar="DIR", help="the benchmarks directory (default: the checkout's benchmarks/)"
    )
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from robot_meta.bench import BenchError, benchmarks_dir, discover, run_benchmarks, select

    try:
        directory = benchmarks_dir(args.dir)
        names = select(discover(directory), args.names)
    except BenchError as exc:
        raise CliError(str(exc)) from None
    if args.list:
        print("\n".join(names))
        return 0
    results = run_benchmarks(directory, names, quick=args.quick, stop_on_error=args.stop_on_error)
    print("\nSummary:")
    for r in results:
        print(f"  {r.name:<24} {'ok' if r.ok else f'FAILED (exit {r.returncode})':<18} {r.seconds:6.0f} s")
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report of a run: training curves, success vs K, task coverage, before/after GIF",
        description=(
            "Write RUN/report/index.html (or --out DIR/index.html) with PNG figures: the run's training curves "
            "(from its TensorBoard logs), success rate vs K shots for every method in RUN/eval.json (run "
            "`robot-meta evaluate RUN` first; otherwise the page says it is not evaluated yet), the coverage "
            "of the task parameters by the train/test/ood splits, and a GIF of the robot on a held-out task "
            "before and after adapting on one shot (rendered headless, no display needed). Prints the path "
            "of the page. Takes about 10-30 s, mostly rendering the GIF."
        ),
        epilog="example: robot-meta report runs/push && xdg-open runs/push/report/index.html",
    )
    p.add_argument("run", metavar="RUN", help="run directory written by `robot-meta train --out RUN`")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output folder (default: RUN/report; files are overwritten)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="picks the held-out task and the episodes of the GIF (default: %(default)s)",
    )
    p.add_argument(
        "--gif-size",
        default="320x240",
        metavar="WxH",
        help="size of each panel of the GIF, pixels (default: %(default)s)",
    )
    p.add_argument(
        "--no-gif", action="store_true", help="skip the before/after GIF (saves the rendering time)"
    )
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        default=None,
        help="also save a screenshot of the page taken by headless Chromium/Chrome (must be installed)",
    )

    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from robot_meta.meta import CheckpointError
    from robot_meta.report import ReportError, screenshot, write_report

    try:
        w, h = (int(v) for v in args.gif_size.lower().split("x"))
        if w < 16 or h < 16:
            raise ValueError
    except ValueError:
        raise CliError(
            f"--gif-size {args.gif_size!r} is invalid: give WIDTHxHEIGHT in pixels, e.g. 320x240"
        ) from None
    try:
        page = write_report(args.run, args.out, gif=not args.no_gif, seed=args.seed, gif_size=(w, h))
        if args.screenshot:
            log.info("screenshot: %s", screenshot(page, args.screenshot))
    except (ReportError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    print(page)
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
