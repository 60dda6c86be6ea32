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
        # The gripper starts 3-5 cm behind the object (along -x), the goal lies 12-25 cm ahead of it
        # with a small lateral offset: the job is to push far enough without overshooting, which on
        # a slippery object means slowing down (fine moves) well before the goal.
        self._obj_xy = np.array([rng.uniform(-0.14, -0.06), rng.uniform(-0.08, 0.08)])
        g = self.scene.geometry
        x = float(self._obj_xy[0]) - g.half_extent_x - float(rng.uniform(0.03, 0.05))
        y = float(self._obj_xy[1]) + float(rng.uniform(-0.01, 0.01))
        return np.array([x, y, self.scene.surface_height(x, y) + 0.02])

    def reset_task(self, rng: np.random.Generator) -> None:
        x, y = float(self._obj_xy[0]), float(self._obj_xy[1])
        self.scene.place_object(x, y, yaw=float(rng.uniform(-0.3, 0.3)))
        self.goal = self.goal_on_surface(
            x + float(rng.uniform(0.12, 0.25)), y + float(rng.uniform(-0.05, 0.05))
        )
