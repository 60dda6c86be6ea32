"""The training-side commands of `robot-meta`: demo, train, evaluate, export (one function each)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from robot_meta import checks
from robot_meta.cli._base import ALGO_CHOICES, SPLIT_CHOICES, CliError, _parse_ints

log = logging.getLogger("robot_meta")


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
            "--algo strike-planner (families that strike: slide, push) instead fits a travel model on random "
            "first strikes and tabulates it on train-task particles; RUN then holds the planner's table "
            "(strike_planner.npz + .json), which `robot-meta adapt RUN` runs on the device. "
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

    try:  # the seed is checked by config_from_options below, before any work too
        checks.check_output_dir(args.out, "--out")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from robot_meta.meta.strike import STRIKE_ALGO

    if args.algo == STRIKE_ALGO:
        return _train_strike_planner(args)
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


def _train_strike_planner(args: argparse.Namespace) -> int:
    """``--algo strike-planner``: fit the few-shot strike planner into RUN (a complete fit is loaded)."""
    from robot_meta.meta.config import parse_override
    from robot_meta.meta.strike import StrikePlannerConfig, fit_strike_run, strike_config

    try:
        checks.check_seed(args.seed)
        if args.backend not in (None, "local") or args.workers not in (None, 1) or args.ray_address:
            raise ValueError(
                "--algo strike-planner fits in this process: drop --backend, --workers and --ray-address"
            )
        overrides = dict(parse_override(StrikePlannerConfig, item) for item in args.overrides)  # type: ignore[arg-type]
        cfg = strike_config(
            args.budget, env_id=args.env, preset=args.preset, seed=args.seed, overrides=overrides
        )
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None
    import torch

    torch.set_num_threads(1)
    try:
        planner, info = fit_strike_run(cfg, args.out)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    log.info(
        "strike-planner: %d first strikes, travel RMSE %.3f m, %d particles x %d strikes in %.0f CPU-s -> %s "
        "(robot-meta adapt %s runs it on the device loop)",
        info["first_strikes"], info["train_rmse_m"], planner.travel.shape[0], planner.travel.shape[1],
        info["fit_cpu_seconds"], args.out, args.out,
    )  # fmt: skip
    return 0


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
            "export directory: the protocol then runs what ships, through the on-device runtime. At every K > 0 "
            "the unadapted policy also replays the same evaluation episodes (same start states and goals), and "
            "the table shows the paired gain, adapted minus that control, with its 95 % t-interval: the effect "
            "of adaptation without the luck of other episodes (costs one more set of --episodes per K > 0; "
            "--no-control skips it)."
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
    p.add_argument(
        "--no-control",
        action="store_true",
        help="skip the paired no-adaptation control (the unadapted policy on the same evaluation episodes "
        "at every K > 0); the adapted numbers are the same either way",
    )

    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:

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
            run_dir,
            args.split,
            shots,
            args.episodes,
            seeds,
            num_tasks=args.tasks,
            out=args.out,
            control=not args.no_control,
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
