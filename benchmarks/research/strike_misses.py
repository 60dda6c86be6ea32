"""Diagnosis (issue 16/17): where a saved strike planner's episodes miss after a few shots.

For `make demo`'s held-out tasks (``evaluation_tasks`` of the test split, evaluation seed `--seed`,
the first resets `robot-meta adapt` gives them), plays `--episodes` episodes per task with the
planner adapting after each (as the device loop does) and records per episode: the goal's distance
along x (`need`) and aside, the strike chosen, its predicted travel under the posterior, the observed
travel, success and the final distance to the goal. Prints the misses after two or more shots, split
into "the fastest strike stopped short" and the rest. Writes ``benchmarks/results/strike_misses.json``.

    .venv/bin/robot-meta train --algo strike-planner --env robot_meta/PandaSlide-v0 --budget full --out /tmp/p
    .venv/bin/python benchmarks/research/strike_misses.py /tmp/p --tasks 30 --episodes 6
    .venv/bin/python benchmarks/research/strike_misses.py /tmp/p --seed 3,4,5,6 --set chase=false
    .venv/bin/python benchmarks/research/strike_misses.py /tmp/p --seed 3,4,5,6 --privileged  # the rule's ceiling

``success_after_first`` (episodes 2..E, after one shot or more) is what `make demo` reports as "after
adaptation" for evaluation seed 0; ``misses_after_first`` says why those episodes missed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import RESULTS_DIR, command_line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("planner", help="a saved strike planner directory")
    ap.add_argument("--seed", default="0", help="evaluation seed(s), comma-separated (30 tasks each)")
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="set a planner attribute before playing (e.g. lookahead=true); repeatable",
    )
    ap.add_argument(
        "--no-adapt",
        action="store_true",
        help="adaptation switched off (`robot-meta adapt --no-adapt`): every strike planned from the prior",
    )
    ap.add_argument(
        "--privileged",
        action="store_true",
        help="play the planner's privileged oracle (its travel model at each task's true parameters; no shots)",
    )
    ap.add_argument("--out", default="strike_misses.json", help="file name under benchmarks/results/")
    args = ap.parse_args()
    import gymnasium as gym

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.eval.units import evaluation_tasks, unit_seeds
    from robot_meta.runtime import StrikePlanner, without_adaptation
    from robot_meta.runtime.strike import _AT_REST, FALL_DROP

    planner = StrikePlanner.load(args.planner)
    for item in args.set:
        name, _, value = item.partition("=")
        if not hasattr(planner, name):
            raise SystemExit(f"--set {item}: the planner has no attribute {name!r}")
        setattr(planner, name, json.loads(value))
    if args.no_adapt:
        planner = without_adaptation(planner)
    lay = planner.layout
    dist = TaskDistribution.from_dict(planner.train_distribution or {})
    env = gym.make(planner.env_id, action_mode="discrete")
    rows = []
    units = [
        (seed, i, task)
        for seed in (int(s) for s in args.seed.split(","))
        for i, task in enumerate(evaluation_tasks(dist.split("test"), seed, args.tasks))
    ]
    try:
        for seed, i, task in units:
            if args.privileged:
                from robot_meta.meta.strike import TravelModel, privileged_planner

                p = privileged_planner(planner, TravelModel.load(args.planner), task)
            else:
                p = copy.deepcopy(planner)
                p.reset_adaptation()
            for ep in range(args.episodes):
                obs, _ = env.reset(seed=unit_seeds(seed, i)[0] if ep == 0 else None, options={"task": task})
                gx, ox = float(obs[lay.goal_position]), float(obs[lay.object_position])
                z0 = float(obs[lay.object_position + 2])
                aside = float(obs[lay.goal_position + 1] - obs[lay.object_position + 1])
                a = p.act(obs)
                col = p.strikes.index(a) if a in p.strikes else -1
                pred = float(p.posterior() @ p.travel[:, col]) if col >= 0 else float("nan")
                success, done, strikes = False, False, 0
                while not done:
                    strikes += a in p.strikes
                    nxt, r, term, trunc, info = env.step(a)
                    p.observe(obs, a, float(r), nxt, term)
                    obs, done = nxt, bool(term or trunc)
                    success = success or bool(info.get("is_success", False))
                    a = p.act(obs)
                if not args.no_adapt:
                    p.end_episode()
                    p.adapt()
                g, o = (
                    obs[lay.goal_position : lay.goal_position + 2],
                    obs[lay.object_position : lay.object_position + 2],
                )
                rows.append({
                    "seed": seed, "task": i, "episode": ep, "need": gx - ox, "aside": aside, "strike_column": col,
                    "predicted": pred, "travel": float(obs[lay.object_position]) - ox, "success": success,
                    "final_distance": float(np.hypot(*(g - o))), "strikes": strikes, "final_x": float(o[0]),
                    "fell": bool(obs[lay.object_position + 2] < z0 - FALL_DROP),
                    "moving": bool(np.linalg.norm(obs[lay.object_velocity : lay.object_velocity + 3]) > _AT_REST),
                })  # fmt: skip
    finally:
        env.close()
    after = [r for r in rows if r["episode"] >= 1]  # after one shot or more: the demo's "after adaptation"
    window = float(planner.window)

    def outcome(r: dict[str, Any]) -> str:
        """Why an episode missed: off the table, past the goal, short (at rest or still sliding at the
        episode's end, after one strike or more), or within the window along x but off to the side."""
        if r["fell"]:
            return "fell off"
        left = r["need"] - r["travel"]
        if left < -window:
            return "overshot"
        if left > window:
            return f"short, {'sliding' if r['moving'] else 'at rest'}, {'1 strike' if r['strikes'] <= 1 else '2+ strikes'}"
        return "aside or not yet at rest"

    late = [r for r in rows if r["episode"] >= 2]
    misses = [r for r in late if not r["success"]]
    fastest = len(planner.strikes) - 1
    short = [r for r in misses if r["strike_column"] == fastest and r["travel"] < r["need"] - 0.07]
    rest = [r for r in misses if r not in short]
    err = sorted(abs(r["predicted"] - r["travel"]) for r in rest)
    summary = {
        "success_by_episode": [float(np.mean([r["success"] for r in rows if r["episode"] == e]))
                               for e in range(args.episodes)],
        "success_after_first": float(np.mean([r["success"] for r in after])),
        "misses_after_first": dict(Counter(outcome(r) for r in after if not r["success"]).most_common()),
        "strikes_per_episode_after_first": float(np.mean([r["strikes"] for r in after])),
        "episodes_after_2_or_more_shots": len(late), "misses": len(misses),
        "fastest_strike_short": len(short), "short_tasks": sorted({(r["seed"], r["task"]) for r in short}),
        "other_misses": len(rest),
        "other_final_distance_m": [min((r["final_distance"] for r in rest), default=None),
                                   max((r["final_distance"] for r in rest), default=None)],
        "other_prediction_error_m": {"min": err[0] if err else None, "median": float(np.median(err)) if err else None,
                                     "max": err[-1] if err else None},
    }  # fmt: skip
    print(json.dumps(summary, indent=1))
    (RESULTS_DIR / args.out).write_text(
        json.dumps({"command": command_line(), "summary": summary, "episodes": rows}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
