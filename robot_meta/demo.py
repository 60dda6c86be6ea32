"""`make demo`: the package end to end, and adaptation shown paying on tasks the policy never saw.

1. **Train** the few-shot strike planner on the slide family's train split, the documented `full`
   fit: ``robot-meta train --algo strike-planner --env robot_meta/PandaSlide-v0 --budget full
   --seed S --out OUT/strike`` (about 3 CPU-minutes: random first strikes on train tasks, a travel
   model, its table on 512 train-task particles; re-running loads the complete fit).
2. **Adapt on the device**: the saved planner, loaded as a controller loads it (numpy only, every
   file checked against its sha256), runs the 100 Hz control loop on held-out tasks of the test
   split (unseen masses, frictions, shapes and surfaces) with the simulator standing in for the
   robot. The first episode of each task plays the prior's strike, and, if the puck stops short,
   a follow-up planned with that travel (*before*: no earlier shot); at every episode's end the
   background thread reweights the particles by the strikes' observed travel, and the next episode
   plans with them (*after 1, 2, ... shots*). The same tasks from the same start states are run
   again with adaptation switched off (*not adapted*: every strike, follow-ups included, planned
   from the prior), so the gain printed is adaptation's, not episode-to-episode luck. Exactly ``robot-meta adapt OUT/strike --tasks N
   --episodes E --seed S`` (and the same with ``--no-adapt``).
3. **The K-shot protocol** on the same planner and seed (``robot-meta evaluate OUT/strike --shots
   0,1,3,5``): the simulator-side figures the benchmarks report, written to ``OUT/strike/eval.json``,
   and the same planner told each task's true parameters (``strike-oracle``, no shots).
4. **Report** (``robot-meta report OUT/strike``): the travel table, success vs K, and a GIF of one
   held-out task before and after one shot.

Everything printed is also written to ``OUT/demo.json``. About 5 minutes on 2 cores after install.
The Q-network path (``robot-meta train --algo context``, ``robot-meta export``, ``robot-meta adapt``
on the ONNX export) is in the README; the shipped ``robot_meta/pretrained/slide-context`` is one.
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
ALGO = "strike-planner"
#: The K values of step 3 (the protocol's shots).
PROTOCOL_SHOTS = (0, 1, 3, 5)


def run_demo(
    out: str | Path = "demo_out",
    seed: int = 0,
    n_tasks: int = 30,
    episodes: int = 6,
    budget: str = "full",
    rate_hz: float = 100.0,
    protocol_tasks: int = 10,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train -> adapt on the device -> K-shot protocol -> report; `echo` prints the lines. Returns the results.

    Args:
        out: output folder (``strike/`` with the planner, its ``eval.json`` and ``report/``, ``demo.json``).
        seed: seed of the fit and evaluation seed of the held-out tasks.
        n_tasks: held-out test tasks adapted on in the device loop.
        episodes: episodes per task (1 before adaptation, the rest after 1, 2, ... shots).
        budget: the fit's budget (``smoke``, ``small``, ``full``).
        rate_hz: control rate of the device loop (0: as fast as the simulator runs).
        protocol_tasks: held-out tasks of step 3 (the K-shot protocol).
    """
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.meta.eval import evaluate
    from robot_meta.meta.strike import STRIKE_ORACLE, fit_strike_run, strike_config
    from robot_meta.report import write_report

    out_dir = Path(out)
    run_dir = out_dir / "strike"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    torch.set_num_threads(1)

    train_cmd = (
        f"robot-meta train --algo {ALGO} --env {ENV_ID} --budget {budget} --seed {seed} --out {run_dir}"
    )
    echo(f"[1/4] train: {train_cmd}")
    t0 = time.perf_counter()
    planner, info = fit_strike_run(strike_config(budget, env_id=ENV_ID, preset=PRESET, seed=seed), run_dir)
    t_train = time.perf_counter() - t0
    n_part, n_strikes = planner.travel.shape
    echo(
        f"      {info['first_strikes']} random first strikes on train tasks, travel model RMSE "
        f"{info['train_rmse_m']:.3f} m, table of {n_part} particles x {n_strikes} strikes "
        f"({info['fit_cpu_seconds']:.0f} CPU-s; {t_train:.0f} s now)"
    )

    adapt_cmd = f"robot-meta adapt {run_dir} --tasks {n_tasks} --episodes {episodes} --seed {seed}"
    echo(f"[2/4] adapt on the device (numpy only, {rate_hz:g} Hz): {adapt_cmd} (and with --no-adapt)")
    t0 = time.perf_counter()
    device = _device_trials(run_dir, seed, n_tasks, episodes, rate_hz, echo)
    t_device = time.perf_counter() - t0

    echo(
        f"[3/4] the K-shot protocol, same planner: robot-meta evaluate {run_dir} --shots "
        f"{','.join(map(str, PROTOCOL_SHOTS))} --seeds {seed} --tasks {protocol_tasks} --episodes 2"
    )
    t0 = time.perf_counter()
    res = evaluate(
        run_dir, "test", shots=PROTOCOL_SHOTS, episodes=2, seeds=(seed,), num_tasks=protocol_tasks,
        progress=False,
    )  # fmt: skip
    method = res.methods[ALGO]
    protocol = {int(k): st.success for k, st in sorted(method.per_k.items())}
    protocol_gain = {int(k): st.control.gain for k, st in method.per_k.items() if st.control is not None}
    oracle = res.methods.get(STRIKE_ORACLE)  # the same fit told each task's true parameters (no shots)
    oracle_success = None if oracle is None else oracle.per_k[min(oracle.per_k)].success
    t_protocol = time.perf_counter() - t0
    echo(
        "      success by K: "
        + ", ".join(
            f"K={k} {100 * v:.0f} %"
            + (f" (paired gain {100 * protocol_gain[k]:+.0f})" if k in protocol_gain else "")
            for k, v in protocol.items()
        )
        + f" on {protocol_tasks} tasks ({t_protocol:.0f} s)"
    )
    if oracle_success is not None:
        echo(
            f"      the same planner told each task's true parameters (no shots): {100 * oracle_success:.0f} %"
        )

    report_dir = run_dir / "report"
    echo(f"[4/4] report: robot-meta report {run_dir}")
    t0 = time.perf_counter()
    page = write_report(run_dir, report_dir, seed=seed, progress=False)
    t_report = time.perf_counter() - t0
    echo(f"      report: {page} ({t_report:.0f} s)")
    results: dict[str, Any] = {
        "env_id": ENV_ID,
        "algo": ALGO,
        "budget": budget,
        "seed": seed,
        "run_dir": str(run_dir),
        "commands": {"train": train_cmd, "adapt": adapt_cmd},
        "train": {**info, "seconds": t_train},
        "adapt": {**device, "episodes_per_task": episodes, "rate_hz": rate_hz, "seconds": t_device},
        "protocol": {
            "shots": list(PROTOCOL_SHOTS),
            "tasks": protocol_tasks,
            "success": protocol,
            "paired_gain": protocol_gain,
            "privileged_oracle_success": oracle_success,
            "seconds": t_protocol,
        },
        "report": {"path": str(page), "seconds": t_report},
        "wall_time_s": time.perf_counter() - t_all,
    }
    (out_dir / "demo.json").write_text(json.dumps(results, indent=2) + "\n")
    echo(f"done in {results['wall_time_s']:.0f} s; results in {out_dir / 'demo.json'}")
    return results


def _device_trials(
    policy_dir: Path,
    seed: int,
    n_tasks: int,
    episodes: int,
    rate_hz: float,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """The device loop on `n_tasks` held-out tasks, with and without adaptation (same tasks and starts,
    drawn as ``robot-meta adapt --seed`` draws them)."""
    import numpy as np

    from robot_meta.adapt import trials_on_and_off
    from robot_meta.meta.eval.stats import mean_ci
    from robot_meta.runtime import StrikePlanner, TaskTrial, load_device_policy

    policy = load_device_policy(policy_dir)
    assert isinstance(policy, StrikePlanner)

    def show(i: int, t: TaskTrial) -> None:
        p = t.task
        desc = f"{p.object_shape} {p.object_mass:.2f} kg, friction {p.lateral_friction:.3f}, {p.terrain}"
        after = "".join("S" if s else "." for s in t.success_after)
        echo(f"      task {i + 1:>2} ({desc:<42}) before {'S' if t.success_before else '.'}  after {after}")

    adapted, off = trials_on_and_off(
        policy, ENV_ID, n_tasks, seed, episodes, train_distribution=policy.train_distribution, rate_hz=rate_hz,
        on_task=show,
    )  # fmt: skip
    per_after = [float(np.mean(t.success_after)) for t in adapted.trials]
    per_off = [float(np.mean(t.success_after)) for t in off.trials]
    # paired over tasks: the mean per-task difference with its 95 % Student-t interval
    gain, lo, hi = mean_ci([a - b for a, b in zip(per_after, per_off, strict=True)])
    # success after k shots (episode k + 1 of every task), adapted and not
    by_shot = [float(np.mean([t.success_after[k] for t in adapted.trials])) for k in range(episodes - 1)]
    by_shot_off = [float(np.mean([t.success_after[k] for t in off.trials])) for k in range(episodes - 1)]
    n_after = sum(len(t.success_after) for t in adapted.trials)
    echo(
        f"      success on {len(adapted.trials)} held-out tasks: before adaptation (first episodes, no earlier shot) "
        f"{adapted.success_before:.0%}; after adaptation (episodes 2-{episodes}, after 1-{episodes - 1} shots, "
        f"{n_after} episodes) {adapted.success_after:.0%}; not adapted (same tasks and start states) "
        f"{off.success_after:.0%}; gain {100 * gain:+.0f} points [95 % CI {100 * lo:+.0f}, {100 * hi:+.0f}]"
    )
    echo(
        "      by shots seen: "
        + ", ".join(
            f"{k + 1}: {100 * a:.0f} % (not adapted {100 * b:.0f} %)"
            for k, (a, b) in enumerate(zip(by_shot, by_shot_off, strict=True))
        )
        + f"; missed ticks {adapted.missed_ticks} of {adapted.ticks} at {rate_hz:g} Hz"
    )
    return {
        **adapted.summary(),
        "success_not_adapted": off.success_after,
        "gain": gain,
        "gain_ci": [lo, hi],
        "success_by_shots": by_shot,
        "success_by_shots_not_adapted": by_shot_off,
        "per_task_after": per_after,
        "per_task_not_adapted": per_off,
    }
