"""Reach with a tool: the gripper holds an object of hidden shape and size whose lower tip must
touch the target.

The controller knows where its flange is but not how long the tool is (3 to 12 cm across shapes
and sizes), so the end-effector position that puts the tip on the target differs from task to
task by more than the 3 cm success radius: the policy has to find the tool length from a few shots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pybullet

from robot_meta.envs.robot import HAND_LINKS
from robot_meta.envs.tasks.base import NOOP, StepResult, Task, axis_moves

__all__ = ["ReachTask"]


class ReachTask(Task):
    family = "reach"
    discrete_actions = (NOOP, *axis_moves(0.02))
    continuous_scale = (0.02, 0.02, 0.02)
    distance_threshold = 0.03
    settle_speed = None
    ee_low = (-0.3, -0.3, 0.05)
    ee_high = (0.3, 0.3, 0.55)
    ee_min_clearance = 0.05
    observation_layout = (("ee_position", 3), ("ee_velocity", 3), ("goal_position", 3), ("goal_minus_ee", 3))

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._constraint = -1
        self._grasped: set[int] = set()
        self._half = 0.0  # half the tool's hang length, m (set with the task)

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(-0.1, 0.0), rng.uniform(-0.1, 0.1), 0.35])

    def on_task_change(self) -> None:
        body = self.scene.body
        if body not in self._grasped:
            for link in HAND_LINKS:
                self.sim.setCollisionFilterPair(self.robot.body, body, link, -1, 0)
            self._grasped.add(body)
        if self._constraint >= 0:
            self.sim.removeConstraint(self._constraint)
        half = self._half = self.scene.geometry.hang_length / 2
        # The grasp target frame's z axis points down along the fingers: hang the tool below it.
        self._constraint = self.sim.createConstraint(
            self.robot.body, 11, body, -1, self.sim.JOINT_FIXED, (0, 0, 0), (0.0, 0.0, half), (0.0, 0.0, 0.0)
        )

    def reset_task(self, rng: np.random.Generator) -> None:
        ee, _ = self.robot.ee_state()
        half = self._half
        self.sim.resetBasePositionAndOrientation(
            self.scene.body, (ee[0], ee[1], ee[2] - half), (1.0, 0.0, 0.0, 0.0)
        )
        self.sim.resetBaseVelocity(self.scene.body, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        tip = ee - np.array([0.0, 0.0, 2 * half])
        while True:  # the goal is never already satisfied at the start
            goal = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), rng.uniform(0.05, 0.25)])
            if np.linalg.norm(goal - tip) > 3 * self.distance_threshold:
                break
        self.goal = goal

    def _tip(self) -> tuple[float, float, float]:
        """The tool tip's world position as plain floats (the hot path of `evaluate`)."""
        (x, y, z), _ = pybullet.getBasePositionAndOrientation(self.scene.body, self.sim.client)
        return x, y, z - self._half

    def tip_position(self) -> np.ndarray:
        return np.array(self._tip())

    def achieved_goal(self) -> np.ndarray:
        """The tool tip (what must touch the target)."""
        return self.tip_position()

    def evaluate(self, ee_pos: Sequence[float], ee_vel: Sequence[float]) -> StepResult:
        # Hot path: plain floats, as `ObjectTask.evaluate` (numpy's per-call overhead on 3-vectors
        # would cost more than the arithmetic itself).
        tx, ty, tz = self._tip()
        gx, gy, gz = self.goal.tolist()
        ex, ey, ez = ee_pos
        d = np.array((gx - tx, gy - ty, gz - tz))
        dist = math.sqrt(d.dot(d))  # what np.linalg.norm computes (the same dot), so bitwise the same
        success = dist < self.distance_threshold
        obs = np.array((ex, ey, ez, *ee_vel, gx, gy, gz, gx - ex, gy - ey, gz - ez), dtype=np.float32)
        failed = not (math.isfinite(tx) and math.isfinite(ty) and math.isfinite(tz))
        return StepResult(obs, self.reward(dist, success), success, failed, dist)
