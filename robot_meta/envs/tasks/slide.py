"""Slide: strike a puck so that it comes to rest on a goal beyond the arm's reach.

A strike moves the end effector forward by a fixed distance within one control step (a strike
speed); the distance the puck then travels grows with the square of its speed and shrinks with
friction, uphill slope and (through the force-limited arm) mass. The strength that lands the puck
on the goal is therefore a property of the hidden task.
"""

from __future__ import annotations

import numpy as np

from robot_meta.envs.tasks.base import NOOP, DiscreteAction, ObjectTask, axis_moves

__all__ = ["STRIKE_SPEEDS", "SlideTask"]

#: End-effector strike speeds, m/s (forward displacement per 40 ms control step = speed x 0.04 s).
STRIKE_SPEEDS = (0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.2, 1.4)


class SlideTask(ObjectTask):
    family = "slide"
    discrete_actions = (
        NOOP,
        *axis_moves(0.01),
        *(DiscreteAction(f"strike {v:.2f} m/s", (v * 0.04, 0.0, 0.0)) for v in STRIKE_SPEEDS),
    )
    continuous_scale = (STRIKE_SPEEDS[-1] * 0.04, 0.01, 0.01)
    distance_threshold = 0.07
    settle_speed = 0.02
    ee_low = (-0.35, -0.2, 0.0)
    ee_high = (0.3, 0.2, 0.15)

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        self._puck_xy = np.array([rng.uniform(-0.15, -0.05), rng.uniform(-0.05, 0.05)])
        g = self.scene.geometry
        x = float(self._puck_xy[0]) - g.footprint_radius - 0.03
        z = self.scene.surface_height(x, float(self._puck_xy[1])) + max(g.half_height, self.ee_min_clearance)
        return np.array([x, self._puck_xy[1], z])

    def reset_task(self, rng: np.random.Generator) -> None:
        x, y = float(self._puck_xy[0]), float(self._puck_xy[1])
        self.scene.place_object(x, y)
        self.goal = self.goal_on_surface(x + float(rng.uniform(0.3, 0.6)), y + float(rng.uniform(-0.05, 0.05)))
