"""The deployment-side commands of `robot-meta`: adapt, bench, report (one function each)."""

from __future__ import annotations

import argparse
import logging
import sys

from robot_meta import checks
from robot_meta.cli._base import SPLIT_CHOICES, CliError

log = logging.getLogger("robot_meta")


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
    p.add_argument(
        "export_dir",
        metavar="DIR",
        help="export directory written by `robot-meta export`, or a saved strike planner (strike_planner.json)",
    )
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
        "--seed",
        type=int,
        default=0,
        help=(
            "evaluation seed: the held-out tasks and first resets that `robot-meta evaluate --seeds` "
            "gives it (default: %(default)s)"
        ),
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
    p.add_argument(
        "--no-adapt",
        action="store_true",
        help="the control run: the same tasks and start states with adaptation switched off, so the "
        "'after' episodes act with the meta-trained policy (compare with a run without this flag)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")

    p.set_defaults(handler=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    import json

    from robot_meta.runtime import (
        AdaptConfig,
        AdaptivePolicy,
        ManifestError,
        RuntimeLoadError,
        StrikePlanner,
        TaskTrial,
        device_controller_config,
        is_strike_planner_dir,
        load_device_policy,
        run_trials,
        without_adaptation,
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
        strike = is_strike_planner_dir(args.export_dir)
        if strike and args.method != "td":
            raise ValueError(
                f"--method {args.method}: {args.export_dir} is a strike planner, whose adaptation is its "
                "posterior; drop --method"
            )
        policy = load_device_policy(args.export_dir, None if strike else AdaptConfig(method=args.method))
        if args.no_adapt:
            policy = without_adaptation(policy)
        context = isinstance(policy, AdaptivePolicy) and policy.manifest.context is not None
        ctrl = device_controller_config(policy, args.rate, adapt=not args.no_adapt)
    except (ManifestError, RuntimeLoadError, ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    import numpy as np

    from robot_meta.adapt import simulator_for
    from robot_meta.meta.eval.units import unit_seeds

    if isinstance(policy, StrikePlanner):
        kind, env_id, dist, obs_dim = "strike-planner", policy.env_id, policy.train_distribution, None
        rule = "the particle posterior moves after every episode"
    else:
        m = policy.manifest
        kind, env_id, dist, obs_dim = m.algo, m.env_id, m.train_distribution, policy.obs_dim
        rule = "z re-inferred after every tick" if context else f"{policy.config.method} head adaptation"
    env_id = args.env or env_id
    if not env_id:
        raise CliError(f"{args.export_dir} does not record its env: pass --env ID")
    try:
        env, tasks = simulator_for(
            env_id, args.split, args.tasks, args.seed,
            train_distribution=dist, n_actions=policy.n_actions, obs_dim=obs_dim,
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(
        f"{kind} policy from {args.export_dir} on {env_id}, split {args.split}: "
        f"{args.tasks} tasks x {args.episodes} episodes at {args.rate:g} Hz ("
        + ("adaptation switched off: the control run" if args.no_adapt else rule)
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
        # the protocol's units: task i's first reset takes the env seed `robot-meta evaluate` gives it
        firsts = [unit_seeds(args.seed, i)[0] for i in range(len(tasks))]
        report = run_trials(
            policy, env, tasks, episodes=args.episodes, seed=firsts, config=ctrl, on_task=show
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
            "method": "posterior" if strike else args.method,
            "adaptation": not args.no_adapt,
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
