"""Diagnosis (issue 17): is a seeded first episode easier than the episodes that follow it?

The shipped pretrained slide export, prior z (no adaptation), on 20 `test` tasks drawn with seed 1:
5 random reset seeds per task, each seeded episode followed by one unseeded episode. Prints the
success of both. Measured 2026-12-02: seeded 34 %, unseeded-next 39 % (200 episodes, about 2 min).

    .venv/bin/python benchmarks/research/seed_luck.py
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import robot_meta  # noqa: F401  (registers the env ids)
from robot_meta.envs import TaskDistribution
from robot_meta.pretrained import pretrained_path
from robot_meta.runtime import AdaptivePolicy


def main() -> None:
    pol = AdaptivePolicy.load(pretrained_path() / "export")
    tasks = TaskDistribution.preset("slide").split("test").sample(20, np.random.default_rng(1))
    env = gym.make("robot_meta/PandaSlide-v0", action_mode="discrete")

    def episode(task: object, seed: int | None) -> bool:
        obs, _ = env.reset(seed=seed, options={"task": task})
        while True:
            obs, _r, term, trunc, info = env.step(pol.act(obs))
            if term or trunc:
                return bool(info["is_success"])

    rng = np.random.default_rng(5)
    seeded, following = [], []
    for task in tasks:
        for _ in range(5):
            seeded.append(episode(task, int(rng.integers(2**31 - 1))))
            following.append(episode(task, None))
    print(
        f"seeded first episodes {np.mean(seeded):.0%}, the unseeded episodes after them {np.mean(following):.0%}"
    )


if __name__ == "__main__":
    main()
