"""Which held-out tasks and seeds an evaluation unit uses: one rule for the torch protocol and the device.

A *unit* is one (evaluation seed, task index) pair. `evaluation_tasks` draws the tasks of a seed and
`unit_seeds` the env seed and exploration stream of a unit, so that every method of the K-shot
protocol (`robot_meta.meta.eval.protocol`) and the device's control loop (``robot-meta adapt``,
`robot_meta.adapt.simulator_for`) meet the same tasks and first start states. numpy only: the
device path imports it without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robot_meta.meta.rollout import TaskSampler

__all__ = ["evaluation_tasks", "unit_seeds"]


def evaluation_tasks(tasks: TaskSampler, seed: int, num_tasks: int) -> list[Any]:
    """The held-out tasks of evaluation seed `seed` (the same for every method and on the device)."""
    return list(tasks.sample(num_tasks, np.random.default_rng([seed, 0x5EED])))


def unit_seeds(seed: int, task_index: int) -> tuple[int, np.random.Generator]:
    """The unit's env seed and exploration stream (the same for every method: paired comparisons)."""
    rng = np.random.default_rng([seed, task_index, 1])
    return int(rng.integers(2**31 - 1)), np.random.default_rng([seed, task_index, 2])
