"""Slide: strike a puck so that it comes to rest on a goal beyond the arm's reach.

A strike drives the end effector forward at a chosen speed for one control step (40 ms) and then
holds; the distance the puck then travels grows with the square of its launch speed and shrinks
with friction and uphill slope.

The strike is **torque-limited** (`STRIKE_TORQUE_SCALE`): while it lasts, the joint motors may use
only 4 % of the Panda's rated torques (3.5 N m on joints 1-4, 0.48 N m on joints 5-7), as in a
collaborative, force-limited contact mode. That is enough to swing the light distal links up to the
commanded speed over the ~1 cm gap before contact, but not to force a heavy puck along: once they
touch, the motors can add only bounded momentum, so the launch speed falls with the puck's mass
(measured, 1.0 m/s strike: ~1.0 m/s up to 0.5 kg, ~0.85 m/s at 1 kg, ~0.6 m/s at 2 kg, ~0.35 m/s
at 4 kg). With full torque the arm strikes with whatever force it takes and the launch speed does
not depend on mass (< 3 % from 0.1 to 4 kg), so mass was a nuisance parameter; now the strike that
lands a goal depends on mass as well as on friction and slope. Rolling shapes roll off the table at
any strike, so the held-out shape of the slide preset is a sliding one. The strength that lands the
puck on the goal is therefore a property of the hidden task.
"""

from __future__ import annotations

import math

import numpy as np

from robot_meta.envs.tasks.base import NOOP, ObjectTask, axis_moves, strike_actions

__all__ = ["STRIKE_SPEEDS", "STRIKE_TORQUE_SCALE", "SlideTask"]

#: End-effector strike speeds, m/s.
STRIKE_SPEEDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4)
#: Joint torque limit during a strike, as a fraction of the rated torques (see the module docstring).
STRIKE_TORQUE_SCALE = 0.04


class SlideTask(ObjectTask):
    family = "slide"
    discrete_actions = (
        NOOP,
        *axis_moves(0.01),
        *strike_actions(STRIKE_SPEEDS),
    )
    continuous_scale = (0.05, 0.01, 0.01)
    distance_threshold = 0.07
    strike_torque_scale = STRIKE_TORQUE_SCALE
    settle_speed = 0.02
    ee_low = (-0.35, -0.2, 0.0)
    ee_high = (0.3, 0.2, 0.15)

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        self._puck_xy = np.array([rng.uniform(-0.15, -0.05), rng.uniform(-0.05, 0.05)])
        return self.ee_behind_object(float(self._puck_xy[0]), float(self._puck_xy[1]))

    def reset_task(self, rng: np.random.Generator) -> None:
        x, y = float(self._puck_xy[0]), float(self._puck_xy[1])
        self.scene.place_object(x, y)
        self.goal = self.goal_on_surface(
            x + float(rng.uniform(0.3, 0.6)), y + float(rng.uniform(-0.05, 0.05))
        )

    def outcome_decided(self, struck: bool) -> bool:
        """After the strike, once the puck is at rest (slower than `settle_speed`) off the goal.

        A slide is one strike: the arm then holds, and a puck at rest stays where it is.
        """
        if not struck:
            return False
        lin, _ = self.sim.getBaseVelocity(self.scene.body)
        return math.sqrt(lin[0] ** 2 + lin[1] ** 2 + lin[2] ** 2) < float(self.settle_speed or 0.0)
