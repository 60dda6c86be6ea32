"""`make demo`: the package end to end, and adaptation shown paying on tasks the policy never saw.

1. **Train** a short ContextDQN run on the slide family's train split, to show the path:
   ``robot-meta train --algo context --env robot_meta/PandaSlide-v0 --budget small --out OUT/run``
   (a few minutes; re-running resumes, a finished run is not trained again).
2. **Export** it: ``robot-meta export OUT/run --out OUT/export`` (ONNX + manifest, checker and
   torch<->onnxruntime parity gate).
3. **Adapt on the device** the policy the package ships, ``robot_meta/pretrained/slide-context``:
   made by the documented ``--budget full`` command recorded in its ``provenance.json`` (about 12
   CPU-minutes, too long for a first run), its files checked against their recorded sha256. The
   numpy + onnxruntime runtime runs the 100 Hz control loop on held-out tasks of the test split
   (unseen masses, frictions, shapes and surfaces) with the simulator standing in for the robot:
   the first episode of each task acts with the prior z (*before*), the encoder then re-infers z
   from the latest transitions in the background at every episode end (*after*). The same tasks
   from the same start states are run again with adaptation switched off (*not adapted*), so the
   gain printed is adaptation's, not episode-to-episode luck.
4. The short run of step 1, adapted the same way on the same tasks (it trained for minutes).
5. **Report** of the pretrained run (``robot-meta report``): curves, success vs K, and a GIF of one
   held-out task before and after one shot, acted by the runtime.

Everything printed is also written to ``OUT/demo.json``. About 8-10 minutes on 2 cores.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ENV_ID", "run_demo"]

log = logging.getLogger(__name__)

ENV_ID = "robot_meta/PandaSlide-v0"
PRESET = "slide"
ALGO = "context"


def run_demo(
    out: str | Path = "demo_out",
    seed: int = 0,
    n_tasks: int = 30,
    episodes: int = 3,
    budget: str = "small",
    rate_hz: float = 100.0,
    pretrained: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train -> export -> adapt (pretrained and short run) -> report; `echo` prints the lines. Returns the results.

    Args:
        out: output folder (run, export, report, ``demo.json``).
        seed: seed of the short run and of the held-out tasks.
        n_tasks: held-out test tasks the policies are adapted on.
        episodes: episodes per task (1 before adaptation, the rest after).
        budget: budget of the short run.
        rate_hz: control rate of the device loop (0: as fast as the simulator runs).
        pretrained: the pretrained run to adapt (default: the one shipped with the package).
    """
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.export import export_run
    from robot_meta.meta import make_config, train_run
    from robot_meta.pretrained import pretrained_path, verify

    out_dir = Path(out)
    run_dir, export_dir = out_dir / "run", out_dir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    torch.set_num_threads(1)

    echo(
        f"[1/5] train a short run: robot-meta train --algo {ALGO} --env {ENV_ID} --budget {budget} "
        f"--seed {seed} --out {run_dir}"
    )
    t0 = time.perf_counter()
    config = make_config(ALGO, budget=budget, env_id=ENV_ID, preset=PRESET, seed=seed)  # type: ignore[arg-type]
    result = train_run(config, run_dir)
    t_train = time.perf_counter() - t0
    echo(f"      {result.iterations} meta-iterations, {result.env_steps} env steps in {t_train:.0f} s")

    echo(f"[2/5] export: robot-meta export {run_dir} --out {export_dir}")
    t0 = time.perf_counter()
    exported = export_run(run_dir, export_dir, command=f"robot-meta export {run_dir} --out {export_dir}")
    par = exported.parity["policy_default_head"]
    t_export = time.perf_counter() - t0
    echo(
        f"      {', '.join(exported.manifest['files'])} + manifest.json; parity on {par['samples']} observations: "
        f"max |dQ| {par['max_abs_diff_q']:.1e}, greedy mismatches {par['greedy_mismatches']} ({t_export:.0f} s)"
    )

    shipped = Path(pretrained) if pretrained is not None else pretrained_path()
    record = verify(shipped)
    echo(
        f"[3/5] adapt on the device: the pretrained policy {shipped} (files verified against provenance.json), "
        f"made by `{record['commands'][0]}`"
    )
    t0 = time.perf_counter()
    main = _device_trials(shipped / "export", seed, n_tasks, episodes, rate_hz, echo)
    t_main = time.perf_counter() - t0

    echo(f"[4/5] adapt the short run of step 1 the same way: {export_dir}")
    t0 = time.perf_counter()
    short = _device_trials(export_dir, seed, n_tasks, episodes, rate_hz, echo, per_task=False)
    t_short = time.perf_counter() - t0

    report_dir = out_dir / "report"
    echo(f"[5/5] report: robot-meta report {shipped} --out {report_dir}")
    from robot_meta.report import write_report

    t0 = time.perf_counter()
    page = write_report(shipped, report_dir, seed=seed)
    t_report = time.perf_counter() - t0
    echo(f"      report: {page} ({t_report:.0f} s)")
    results: dict[str, Any] = {
        "env_id": ENV_ID,
        "algo": ALGO,
        "budget": budget,
        "seed": seed,
        "run_dir": str(run_dir),
        "export_dir": str(export_dir),
        "pretrained": {"path": str(shipped), "commands": record["commands"], "date": record.get("date")},
        "train": {"iterations": result.iterations, "env_steps": result.env_steps, "seconds": t_train},
        "export": {"parity": exported.parity, "seconds": t_export},
        "adapt": {**main, "episodes_per_task": episodes, "rate_hz": rate_hz, "seconds": t_main},
        "adapt_short_run": {**short, "seconds": t_short},
        "report": {"path": str(page), "seconds": t_report},
        "wall_time_s": time.perf_counter() - t_all,
    }
    (out_dir / "demo.json").write_text(json.dumps(results, indent=2) + "\n")
    echo(f"done in {results['wall_time_s']:.0f} s; results in {out_dir / 'demo.json'}")
    return results


def _device_trials(
    export_dir: Path,
    seed: int,
    n_tasks: int,
    episodes: int,
    rate_hz: float,
    echo: Callable[[str], None],
    *,
    per_task: bool = True,
) -> dict[str, Any]:
    """The export's control loop on `n_tasks` held-out tasks, with and without adaptation (same starts)."""
    import gymnasium as gym
    import numpy as np

    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.eval.stats import mean_ci
    from robot_meta.runtime import AdaptivePolicy, ControllerConfig, TaskTrial, run_trials

    policy = AdaptivePolicy.load(export_dir)
    tasks = TaskDistribution.preset(PRESET).split("test").sample(n_tasks, np.random.default_rng(seed + 1))
    env = gym.make(ENV_ID, action_mode="discrete")

    def show(i: int, t: TaskTrial) -> None:
        p = t.task
        desc = f"{p.object_shape} {p.object_mass:.2f} kg, friction {p.lateral_friction:.3f}, {p.terrain}"
        after = "".join("S" if s else "." for s in t.success_after)
        echo(f"      task {i + 1:>2} ({desc:<42}) before {'S' if t.success_before else '.'}  after {after}")

    try:
        adapted = run_trials(
            policy, env, tasks, episodes=episodes, seed=seed + 1000,
            config=ControllerConfig(rate_hz=rate_hz), on_task=show if per_task else None,
        )  # fmt: skip
        off = run_trials(
            policy, env, tasks, episodes=episodes, seed=seed + 1000,
            config=ControllerConfig(rate_hz=rate_hz, adapt_at_episode_end=False, adapt_every=0),
        )  # fmt: skip
    finally:
        env.close()
    per_after = [float(np.mean(t.success_after)) for t in adapted.trials]
    per_off = [float(np.mean(t.success_after)) for t in off.trials]
    # paired over tasks: the mean per-task difference with its 95 % Student-t interval
    gain, lo, hi = mean_ci([a - b for a, b in zip(per_after, per_off, strict=True)])
    n_after = sum(len(t.success_after) for t in adapted.trials)
    echo(
        f"      success on {len(adapted.trials)} held-out tasks (episodes 2-{episodes} of each, {n_after} in all): "
        f"adapted {adapted.success_after:.0%}, not adapted {off.success_after:.0%} (same tasks and start states), "
        f"gain {100 * gain:+.0f} points [95 % CI {100 * lo:+.0f}, {100 * hi:+.0f}]; first episodes (prior z, other start states) "
        f"{adapted.success_before:.0%}; missed ticks {adapted.missed_ticks} of {adapted.ticks} at {rate_hz:g} Hz"
    )
    return {
        **adapted.summary(),
        "success_not_adapted": off.success_after,
        "gain": gain,
        "gain_ci": [lo, hi],
        "per_task_after": per_after,
        "per_task_not_adapted": per_off,
    }
