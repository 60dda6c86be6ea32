"""Hindsight goal relabelling of flat observations (HER's ``future`` strategy, Andrychowicz et al. 2017).

A struck puck that stops 10 cm short of its goal has shown exactly where that strike sends it on
this task: relabelled with the goal it reached, the same transitions are a success. `HindsightGoals`
rewrites a flat observation's goal segments (``goal_position`` and the derived ``goal_minus_object``)
and recomputes the reward and the termination the env would have produced for the new goal, from
the observation alone:

- ``dense``: the env pays ``-distance(object, goal) - shaping`` with a goal-independent shaping term
  (push, pick-and-place), so the relabelled reward is ``r + d_old - d_new``, exact up to float32;
- ``sparse``: ``0`` on success, else ``-1``;
- termination is the env's: success (goal distance below the family's threshold with the object
  slower than its settle speed) or failure (object off the table). A failure is what ended a
  transition that was terminal without being a success, and it stays terminal for any goal.

Only families whose observation carries the achieved goal qualify (push, slide, pick-and-place:
the object's position); reach hides its tool tip, and an env with ``end_when_decided`` pays a
terminal reward that is not a function of the goal: both are refused with a clear error. The
replay buffer draws the relabelling goals (`ReplayBuffer.sample_nstep`'s ``hindsight``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_meta.envs.goal import goal_distance

__all__ = ["HindsightGoals"]


def _segments(layout: Sequence[tuple[str, int]]) -> dict[str, slice]:
    out: dict[str, slice] = {}
    start = 0
    for name, size in layout:
        out[name] = slice(start, start + size)
        start += size
    return out


@dataclass(frozen=True)
class HindsightGoals:
    """How to read and rewrite the goal of one family's flat observation (`for_env` builds it)."""

    goal: slice
    """The ``goal_position`` segment."""
    achieved: slice
    """The segment that must reach the goal (``object_position``)."""
    offset: slice | None
    """``goal_minus_object`` (goal - achieved), rewritten with the goal; None if the layout has none."""
    velocity: slice | None
    """``object_velocity``, for the settle condition of success; None if the layout has none."""
    planar: bool
    """Success distance in the horizontal plane (push, slide) or in 3-D (pick-and-place)."""
    threshold: float
    """Success radius, m."""
    settle_speed: float | None
    """The object must move slower than this (m/s) for a success (None: no requirement)."""
    sparse: bool
    """Sparse reward (0 on success, else -1) instead of the dense ``-distance``."""

    @classmethod
    def for_env(cls, env: Any, setting: str = "hindsight_fraction") -> HindsightGoals:
        """The goal layout of a `RobotTaskEnv` (or a wrapper of one); a ValueError says why not.

        `setting` names the option that asked for it (the error tells the user to set it to 0);
        only relabelling (``hindsight_fraction``) refuses ``end_when_decided`` envs.
        """
        base = getattr(env, "unwrapped", env)
        task = getattr(base, "task", None)
        layout = getattr(base, "observation_layout", None)
        if task is None or layout is None:
            raise ValueError(
                f"{setting} needs a robot_meta env (a task and an observation_layout); "
                f"got {type(base).__name__}: set {setting}=0"
            )
        if setting == "hindsight_fraction" and getattr(base, "end_when_decided", False):
            raise ValueError(
                "hindsight goal relabelling cannot be combined with end_when_decided=True: its terminal "
                "reward pays the idle steps of the original goal; set one of them off"
            )
        seg = _segments(layout)
        if "goal_position" not in seg or "object_position" not in seg:
            raise ValueError(
                f"{setting} needs the achieved goal in the observation; the "
                f"{getattr(base, 'family', '?')} family's observation has {[n for n, _ in layout]} "
                f"(reach hides its tool tip): set {setting}=0 for it"
            )
        settle = getattr(task, "settle_speed", None)
        return cls(
            goal=seg["goal_position"],
            achieved=seg["object_position"],
            offset=seg.get("goal_minus_object"),
            velocity=seg.get("object_velocity"),
            planar=bool(getattr(task, "planar_success", False)),
            threshold=float(task.distance_threshold),
            settle_speed=None if settle is None else float(settle),
            sparse=getattr(base, "reward_type", "dense") == "sparse",
        )

    def achieved_goal(self, obs: np.ndarray) -> np.ndarray:
        """The achieved goal of each row of `obs` (``(..., 3)``, a copy)."""
        return np.array(obs[..., self.achieved], dtype=np.float32)

    def distance(self, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Goal distance per row as the env measures it (planar or 3-D), float64."""
        achieved = np.asarray(obs[..., self.achieved], np.float64)
        return goal_distance(achieved, np.asarray(goal, np.float64), self.planar)

    def _at_rest(self, obs: np.ndarray) -> np.ndarray | bool:
        if self.settle_speed is None or self.velocity is None:
            return True
        v = np.asarray(obs[..., self.velocity], np.float64)
        return np.sqrt(np.sum(v * v, axis=-1)) < self.settle_speed

    def with_goal(self, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """`obs` (``(..., obs_dim)``) with its goal segments rewritten for `goal` (``(..., 3)``); a copy."""
        out = np.array(obs, dtype=np.float32)
        g = np.asarray(goal, np.float32)
        out[..., self.goal] = g
        if self.offset is not None:
            out[..., self.offset] = g - out[..., self.achieved]
        return out

    def outcome(
        self,
        reward: np.ndarray,
        terminated: np.ndarray,
        next_obs: np.ndarray,
        old: np.ndarray,
        new: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reward (float64) and termination (float32) of transitions ending in `next_obs` when the goal
        is `new` instead of `old`: the dense reward shifts by the change of distance (or is re-judged,
        sparse); a failure stays terminal and success is re-judged."""
        d_old, d_new = self.distance(next_obs, old), self.distance(next_obs, new)
        rest = self._at_rest(next_obs)
        succ_new = (d_new < self.threshold) & rest
        if self.sparse:
            r = np.where(succ_new, 0.0, -1.0)
        else:
            r = np.asarray(reward, np.float64) + d_old - d_new
        failed = (np.asarray(terminated) != 0) & ~((d_old < self.threshold) & rest)
        return r, (failed | succ_new).astype(np.float32)
