"""Diagnosis (issue 16/17): the strike planner's one-strike rule replayed offline on measured travel.

For the held-out tasks `make demo` adapts on (``evaluation_tasks`` of the test split, evaluation seed
`--seed`), measures the true first-strike travel of every strike from each task's first start state
in PyBullet (about 20 CPU-s for 30 tasks), then replays six episodes per task offline (`--reps`
times, seconds): goals drawn from slide's goal ranges (0.3-0.6 m ahead, +-5 cm aside), one strike
per episode, the travel the measured one plus Gaussian noise (`--noise`, 1 cm: the spread of one
strike's travel over start states, measured with ``--start-spread``), success within the env's 7 cm.
Rules, each planner given on the command line:

- ``posterior``: the planner's rule (the strike landing within `window` for the largest posterior
  share, the posterior updated by every shot), follow-ups off;
- ``oracle``: the strike whose measured travel is closest to the goal (the single-strike ceiling);
- ``probe-S``: the first episode plays strike column S, the rest as ``posterior``;
- ``abs-error``: the strike with the least posterior-expected |travel - goal| (no window).

Also prints how well the planner's best particle matches the measured table, and what the
known-travel single strike loses to goals beyond the fastest strike and to the goal's lateral offset. Appends one
JSON line per planner to ``benchmarks/results/strike_sim.jsonl``.

    .venv/bin/robot-meta train --algo strike-planner --env robot_meta/PandaSlide-v0 --budget full --out /tmp/p
    .venv/bin/python benchmarks/research/strike_sim.py /tmp/p --tasks 30
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import RESULTS_DIR, command_line

SUCCESS_RADIUS = 0.07  # SlideTask.distance_threshold
GOAL_AHEAD = (0.3, 0.6)  # SlideTask.reset_task: the goal's x offset from the puck ...
GOAL_ASIDE = 0.05  # ... and its y offset (uniform in +-)


def measure(planner: Any, seed: int, n_tasks: int, starts: int = 1) -> np.ndarray:
    """(tasks, starts, strikes) first-strike travel along +x (m), from each task's first `starts`
    start states (start 0 is the one `robot-meta adapt` gives the task's first episode)."""
    import gymnasium as gym

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.eval.units import evaluation_tasks, unit_seeds
    from robot_meta.runtime.strike import FALL_DROP, OFF_TABLE_TRAVEL, REST_SPEED

    lay = planner.layout
    pos, vel = lay.object_position, lay.object_velocity
    tasks = evaluation_tasks(
        TaskDistribution.from_dict(planner.train_distribution or {}).split("test"), seed, n_tasks
    )
    env = gym.make(planner.env_id, action_mode="discrete")
    out = np.zeros((n_tasks, starts, len(planner.strikes)))
    try:
        for i, task in enumerate(tasks):
            for j in range(starts):
                for k, a in enumerate(planner.strikes):
                    obs, _ = env.reset(seed=unit_seeds(seed, i)[0] + 7919 * j, options={"task": task})
                    env.unwrapped.task.goal = np.array(
                        [5.0, 0.0, obs[lay.goal_position + 2]]
                    )  # far: no early end
                    x0, z0 = float(obs[pos]), float(obs[pos + 2])
                    obs, _, term, trunc, _ = env.step(a)
                    for _ in range(40):
                        if term or trunc or np.linalg.norm(obs[vel : vel + 3]) < REST_SPEED:
                            break
                        obs, _, term, trunc, _ = env.step(planner.hold_action)
                    fell = float(obs[pos + 2]) < z0 - FALL_DROP
                    out[i, j, k] = OFF_TABLE_TRAVEL if fell else float(obs[pos] - x0)
    finally:
        env.close()
    return out


def replay(rule: str, table: np.ndarray, true: np.ndarray, sigma: float, window: float,
           reps: int, noise: float, seed: int = 0) -> list[float]:  # fmt: skip
    """Success per episode (6 episodes per task, `reps` times over the tasks) of `rule`."""
    rng = np.random.default_rng(seed)
    m = table.shape[0]
    wins = np.zeros(6)
    for _ in range(reps):
        for t in true:
            log_w = np.zeros(m)
            for ep in range(6):
                need, aside = rng.uniform(*GOAL_AHEAD), rng.uniform(-GOAL_ASIDE, GOAL_ASIDE)
                w = np.exp(log_w - log_w.max())
                w /= w.sum()
                if rule == "oracle":
                    s = int(np.argmin(np.abs(t - need)))
                elif rule.startswith("probe-") and ep == 0:
                    s = int(rule.split("-")[1])
                elif rule == "abs-error":
                    s = int(np.argmin(w @ np.abs(table - need)))
                else:
                    s = int(np.argmax(w @ (np.abs(table - need) < window)))
                travel = t[s] + rng.normal(0.0, noise)
                wins[ep] += np.hypot(travel - need, aside) < SUCCESS_RADIUS
                log_w -= 0.5 * ((travel - table[:, s]) / sigma) ** 2
    return [float(x) for x in wins / (reps * len(true))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("planners", nargs="+", help="saved strike planner directories (one fit each)")
    ap.add_argument("--seed", type=int, default=0, help="evaluation seed of the tasks (the demo's: 0)")
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--start-spread", type=int, default=0, metavar="N",
                    help="also measure N start states of the first 6 tasks and print each strike's spread")  # fmt: skip
    args = ap.parse_args()
    from robot_meta.runtime import StrikePlanner

    first = StrikePlanner.load(args.planners[0])
    true = measure(first, args.seed, args.tasks)[:, 0]
    spread = None
    if args.start_spread > 1:
        many = measure(first, args.seed, min(6, args.tasks), args.start_spread)
        on = many < 1.0
        sd = np.where(on.all(axis=1), many.std(axis=1), np.nan)
        spread = {"median_m": float(np.nanmedian(sd)), "max_m": float(np.nanmax(sd))}
        print(f"travel spread over {args.start_spread} start states (sd, on-table strikes): "
              f"median {spread['median_m']:.3f} m, max {spread['max_m']:.3f} m")  # fmt: skip
    rng = np.random.default_rng(0)
    need = rng.uniform(*GOAL_AHEAD, size=(200, len(true)))
    aside = rng.uniform(-GOAL_ASIDE, GOAL_ASIDE, size=need.shape)
    best = np.abs(true[None, :, :] - need[..., None]).min(axis=2)  # the known-travel single strike's error
    ceiling = {
        "single_strike": float(np.mean(np.hypot(best, aside) < SUCCESS_RADIUS)),
        "without_lateral_offset": float(np.mean(best < SUCCESS_RADIUS)),
        "goal_beyond_fastest": float(np.mean(true.max(axis=1)[None, :] < need - SUCCESS_RADIUS)),
    }
    print(f"known-travel single strike on {need.size} goals: {ceiling['single_strike']:.1%} "
          f"({ceiling['without_lateral_offset']:.1%} without the lateral offset; goal beyond the fastest "
          f"strike's travel: {ceiling['goal_beyond_fastest']:.1%})")  # fmt: skip
    rules = ["posterior", "oracle", "abs-error", *(f"probe-{s}" for s in range(0, len(first.strikes), 3))]
    for path in args.planners:
        p = StrikePlanner.load(path)
        table = p.travel
        relevant = true < GOAL_AHEAD[1] + 0.1  # the strikes a goal could ask for
        err = (
            np.where(relevant[:, None, :], np.abs(table[None] - true[:, None, :]), 0.0)
            .max(axis=2)
            .min(axis=1)
        )
        row: dict[str, Any] = {
            "planner": path, "particles": int(table.shape[0]), "seed": args.seed, "tasks": args.tasks,
            "reps": args.reps, "noise": args.noise, "best_particle_max_error_m": {
                "median": float(np.median(err)), "max": float(err.max()), "over_6cm": int((err > 0.06).sum())},
            "start_spread": spread, "ceiling": ceiling,
        }  # fmt: skip
        print(f"{path}: {table.shape[0]} particles; best particle's max error on strikes travelling < 0.7 m: "
              f"median {np.median(err):.3f} m, {(err > 0.06).sum()} of {len(err)} tasks over 6 cm")  # fmt: skip
        for rule in rules:
            by_ep = replay(rule, table, true, p.sigma, p.window, args.reps, args.noise)
            row[rule] = {
                "by_episode": [round(x, 4) for x in by_ep],
                "episodes_2_6": round(float(np.mean(by_ep[1:])), 4),
            }
            print(
                f"  {rule:10s} by episode {' '.join(f'{x:4.0%}' for x in by_ep)}  episodes 2-6 {np.mean(by_ep[1:]):.1%}"
            )
        row["command"] = command_line()
        with open(RESULTS_DIR / "strike_sim.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
