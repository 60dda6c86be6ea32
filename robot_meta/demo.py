"""`make demo`: the main job end to end on the embedded default (local files, no services).

1. **Train** a MetaDQN policy on the slide family's train split (``--budget small``): the same as
   ``robot-meta train --algo meta-dqn --env robot_meta/PandaSlide-v0 --budget small --out OUT/run``.
2. **Export** it: ``robot-meta export OUT/run --out OUT/export`` (ONNX + manifest, checker and
   torch<->onnxruntime parity gate).
3. **Adapt on the device**: load the export with the numpy + onnxruntime runtime and run the
   100 Hz control loop on held-out tasks (the test split: unseen masses, frictions and a held-out
   shape) with the simulator standing in for the robot: the first episode of each task acts with
   the meta-trained head, the head then adapts in the background thread after every episode
   (``robot-meta adapt OUT/export --split test``). Success before and after adaptation is printed
   and written to ``OUT/demo.json``.

Re-running resumes: a finished run is not trained again. About 5-8 minutes on 2 cores.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

ENV_ID = "robot_meta/PandaSlide-v0"
PRESET = "slide"


def run_demo(
    out: str | Path = "demo_out",
    seed: int = 0,
    n_tasks: int = 10,
    episodes: int = 3,
    budget: str = "small",
    rate_hz: float = 100.0,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train -> export -> adapt on held-out tasks; `echo` prints the progress lines. Returns the results."""
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.export import export_run
    from robot_meta.meta import make_config, train_run

    out_dir = Path(out)
    run_dir, export_dir = out_dir / "run", out_dir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    torch.set_num_threads(1)

    echo(
        f"[1/4] train: robot-meta train --algo meta-dqn --env {ENV_ID} --budget {budget} --seed {seed} --out {run_dir}"
    )
    t0 = time.perf_counter()
    config = make_config("meta-dqn", budget=budget, env_id=ENV_ID, preset=PRESET, seed=seed)  # type: ignore[arg-type]
    result = train_run(config, run_dir)
    t_train = time.perf_counter() - t0
    metrics = ", ".join(
        f"{k.split('/')[-1]} {v:.2f}" for k, v in result.metrics.items() if k.startswith("meta/success")
    )
    echo(
        f"      {result.iterations} meta-iterations, {result.env_steps} env steps in {t_train:.0f} s {metrics}"
    )

    echo(f"[2/4] export: robot-meta export {run_dir} --out {export_dir}")
    t0 = time.perf_counter()
    exported = export_run(run_dir, export_dir, command=f"robot-meta export {run_dir} --out {export_dir}")
    par = exported.parity["policy_default_head"]
    t_export = time.perf_counter() - t0
    echo(
        f"      {', '.join(exported.manifest['files'])} + manifest.json; parity on {par['samples']} observations: "
        f"max |dQ| {par['max_abs_diff_q']:.1e}, greedy mismatches {par['greedy_mismatches']} ({t_export:.0f} s)"
    )

    summary, t_adapt = _adapt_stage(export_dir, seed, n_tasks, episodes, rate_hz, echo)
    echo(f"[4/4] report: robot-meta report {run_dir}")
    from robot_meta.report import write_report

    t0 = time.perf_counter()
    page = write_report(run_dir)
    t_report = time.perf_counter() - t0
    echo(f"      report: {page} ({t_report:.0f} s)")
    results: dict[str, Any] = {
        "env_id": ENV_ID,
        "budget": budget,
        "seed": seed,
        "run_dir": str(run_dir),
        "export_dir": str(export_dir),
        "train": {"iterations": result.iterations, "env_steps": result.env_steps, "seconds": t_train},
        "export": {"parity": exported.parity, "seconds": t_export},
        "adapt": {**summary, "episodes_per_task": episodes, "rate_hz": rate_hz, "seconds": t_adapt},
        "report": {"path": str(page), "seconds": t_report},
        "wall_time_s": time.perf_counter() - t_all,
    }
    (out_dir / "demo.json").write_text(json.dumps(results, indent=2) + "\n")
    echo(f"done in {results['wall_time_s']:.0f} s; results in {out_dir / 'demo.json'}")
    return results


def _adapt_stage(
    export_dir: Path, seed: int, n_tasks: int, episodes: int, rate_hz: float, echo: Callable[[str], None]
) -> tuple[dict[str, Any], float]:
    """Step 3: the export's control loop on `n_tasks` held-out tasks; the trials' summary and the seconds."""
    import gymnasium as gym
    import numpy as np

    from robot_meta.envs import TaskDistribution
    from robot_meta.runtime import AdaptivePolicy, ControllerConfig, TaskTrial, run_trials

    echo(
        f"[3/4] adapt on the device: robot-meta adapt {export_dir} --env {ENV_ID} --split test "
        f"--tasks {n_tasks} --episodes {episodes}"
    )
    t0 = time.perf_counter()
    policy = AdaptivePolicy.load(export_dir)
    tasks = TaskDistribution.preset(PRESET).split("test").sample(n_tasks, np.random.default_rng(seed + 1))
    env = gym.make(ENV_ID, action_mode="discrete")

    def show(i: int, t: TaskTrial) -> None:
        p = t.task
        desc = f"{p.object_shape} {p.object_mass:.2f} kg, friction {p.lateral_friction:.3f}, {p.terrain}"
        after = "".join("S" if s else "." for s in t.success_after)
        echo(f"      task {i + 1:>2} ({desc:<42}) before {'S' if t.success_before else '.'}  after {after}")

    try:
        trials = run_trials(
            policy,
            env,
            tasks,
            episodes=episodes,
            seed=seed + 1000,
            config=ControllerConfig(rate_hz=rate_hz),
            on_task=show,
        )
    finally:
        env.close()
    t_adapt = time.perf_counter() - t0
    summary = trials.summary()
    n_after = sum(len(t.success_after) for t in trials.trials)
    echo(
        f"success on {len(trials.trials)} held-out tasks: before adaptation {trials.success_before:.0%} "
        f"(first episode, meta-trained head), after adaptation {trials.success_after:.0%} ({n_after} episodes); "
        f"mean return {trials.return_before:.1f} -> {trials.return_after:.1f}; "
        f"{summary['adaptations']} adaptations, {summary['rolled_back']} rolled back, "
        f"missed ticks {trials.missed_ticks} of {trials.ticks} at {rate_hz:g} Hz"
    )
    return summary, t_adapt
