"""Push: slide the object along the table to a goal with the closed gripper.

Friction decides how far the object coasts after a push (the same hit: ~33 cm on friction 0.1,
~2 cm on 1.0), so coarse moves suit a grippy object and fine moves a slippery one; mass decides how
fast a hit launches it (the same hit: ~12 cm at 0.1 kg, ~4 cm at 4 kg); the shape decides whether
it slides or rolls.
"""

from __future__ import annotations

import numpy as np

from robot_meta.envs.tasks.base import NOOP, ObjectTask, axis_moves

__all__ = ["PushTask"]


class PushTask(ObjectTask):
    family = "push"
    discrete_actions = (NOOP, *axis_moves(0.025), *axis_moves(0.005, "xy", tag=" fine"))
    continuous_scale = (0.025, 0.025, 0.025)
    ee_low = (-0.35, -0.3, 0.0)
    ee_high = (0.35, 0.3, 0.2)
    reach_shaping = 0.2

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([-0.22 + rng.uniform(-0.02, 0.02), rng.uniform(-0.05, 0.05), 0.02])

    def reset_task(self, rng: np.random.Generator) -> None:
        obj_xy = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.12, 0.12)])
        while True:
            goal_xy = np.array([rng.uniform(-0.12, 0.2), rng.uniform(-0.15, 0.15)])
            if np.linalg.norm(goal_xy - obj_xy) > 0.1:
                break
        self.scene.place_object(float(obj_xy[0]), float(obj_xy[1]), yaw=float(rng.uniform(-0.3, 0.3)))
        self.goal = self.goal_on_surface(float(goal_xy[0]), float(goal_xy[1]))
