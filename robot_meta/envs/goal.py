"""Goal-conditioned observations in the Gymnasium-Robotics convention (for HER and panda-gym users).

``gym.make(id, goal_conditioned=True)`` gives every family a ``spaces.Dict`` observation

- ``observation``: the env's observation without its goal-dependent segments (``goal_position``,
  ``goal_minus_object`` / ``goal_minus_ee``), so relabelling a goal never leaves a stale copy of
  the old goal in it; the privileged task parameters stay with ``privileged=True``;
- ``achieved_goal``: where the thing that must reach the goal is (the object's position for push,
  slide and pick-and-place; the tool tip for reach), float32 (3,);
- ``desired_goal``: the goal position, float32 (3,);

and ``env.unwrapped.compute_reward(achieved_goal, desired_goal, info)``, vectorised over leading
batch dimensions (as SB3's ``HerReplayBuffer`` calls it). As in panda-gym and Gymnasium-Robotics
the reward is a function of the two goals alone (HER passes empty info dicts by default), and the
step reward is exactly ``compute_reward`` of the step's own observation:

- ``dense``: ``-distance(achieved, desired)`` (planar for push and slide, 3-D for pick-and-place
  and reach, as the flat env's success distance);
- ``sparse``: ``0`` when ``distance < threshold`` (the family's success radius), else ``-1``.

The flat env's goal-independent extras are left out of this reward: push's and pick-and-place's
shaping term (0.2 x the end-effector-to-object distance) and the "object at rest" condition of
push and slide. ``info["is_success"]`` and termination stay the flat env's (success includes the
rest condition).

Reach hides the tool length from the flat observation; in this mode the achieved goal is the tool
tip, which reveals it (HER needs the achieved goal): goal-conditioned reach is a plain reaching task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:
    from robot_meta.envs.tasks.base import RewardType, Task

__all__ = ["GOAL_KEYS", "GoalConditioning", "goal_distance"]

#: Keys of the Dict observation, in Gymnasium-Robotics' order.
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def goal_distance(achieved_goal: np.ndarray, desired_goal: np.ndarray, planar: bool) -> np.ndarray:
    """Distance per row between two ``(..., 3)`` float64 arrays: in the horizontal plane if `planar`, else 3-D."""
    d = achieved_goal - desired_goal
    sq = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]
    if not planar:
        sq = sq + d[..., 2] * d[..., 2]
    return np.sqrt(sq)


class GoalConditioning:
    """The Dict observation space, observation and reward of a goal-conditioned `RobotTaskEnv`.

    Args:
        task: the env's task (family attributes: threshold, planar distance, shaping, settle speed).
        layout: the flat observation's named segments (``env.observation_layout``).
        reward_type: ``dense`` or ``sparse``, as the flat env.
    """

    def __init__(self, task: Task, layout: Sequence[tuple[str, int]], reward_type: RewardType) -> None:
        self.task = task
        self.reward_type: RewardType = reward_type
        keep: list[int] = []
        start = 0
        for name, size in layout:
            if not name.startswith("goal_"):
                keep.extend(range(start, start + size))
            start += size
        self._keep = np.array(keep, dtype=np.intp)
        self.observation_layout = tuple((n, s) for n, s in layout if not n.startswith("goal_"))
        self.planar = bool(getattr(task, "planar_success", False))
        self.threshold = float(task.distance_threshold)
        box3 = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, shape=(len(keep),), dtype=np.float32),
                "achieved_goal": box3,
                "desired_goal": box3,
            }
        )

    def observation(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The Dict observation of the current state, given the flat observation of the same state."""
        return {
            "observation": flat[self._keep],
            "achieved_goal": np.asarray(self.task.achieved_goal(), dtype=np.float32),
            "desired_goal": np.asarray(self.task.goal, dtype=np.float32),
        }

    def distance(self, achieved_goal: Any, desired_goal: Any) -> np.ndarray:
        """Goal distance per row (planar for push and slide), float64, shape ``achieved_goal.shape[:-1]``."""
        a = np.asarray(achieved_goal, dtype=np.float64)
        b = np.asarray(desired_goal, dtype=np.float64)
        if a.shape[-1:] != (3,) or b.shape[-1:] != (3,):
            raise ValueError(
                f"achieved_goal {a.shape} and desired_goal {b.shape} must end in a dimension of 3 (x, y, z)"
            )
        return goal_distance(a, b, self.planar)

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any = None) -> np.ndarray | float:
        """Reward of reaching `achieved_goal` when `desired_goal` was asked (vectorised; `info` is unused)."""
        dist = self.distance(achieved_goal, desired_goal)
        if self.reward_type == "sparse":
            reward = np.where(dist < self.threshold, 0.0, -1.0)
        else:
            reward = -dist
        if reward.ndim == 0:
            return float(reward)
        return reward
