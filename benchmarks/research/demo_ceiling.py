"""What a controller that knows the task achieves on `make demo`'s 30 held-out slide tasks (issue 17's target).

The demo adapts the shipped policy on ``TaskDistribution.preset("slide").split("test").sample(30,
default_rng(seed + 1))``. This scores headroom.py's `Striker` on exactly those tasks: *calibrated*
(the task's own travel table from 2 calibration starts, then the strike whose travel is closest to
the goal distance) and *pooled* (the strike that lands on the most (task, start) pairs for that
distance, seeing only the goal), on 5 start states per task. About 3 CPU-minutes.

    .venv/bin/python benchmarks/research/demo_ceiling.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from headroom import Striker

import robot_meta  # noqa: F401
from robot_meta.diagnostics.headroom import FULL
from robot_meta.envs import TaskDistribution


def main() -> None:
    t0 = time.process_time()
    seed, n_tasks = 0, 30
    tasks = TaskDistribution.preset("slide").split("test").sample(n_tasks, np.random.default_rng(seed + 1))
    env = gym.make("robot_meta/PandaSlide-v0")
    striker = Striker(env)
    row = striker.measure_row(tasks, FULL)  # one row: the pooled strike sees all 30 tasks' travels
    env.close()
    out = {
        "tasks": n_tasks,
        "calibrated": round(100 * row["calibrated"], 1),
        "pooled": round(100 * row["pooled"], 1),
        "headroom_ci": [round(100 * row["ci_low"], 1), round(100 * row["ci_high"], 1)],
        "cpu_s": round(time.process_time() - t0),
        "eval_seeds": list(FULL.eval_seeds),
        "calib_seeds": list(FULL.calib_seeds),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
