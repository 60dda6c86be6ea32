"""Push: shove the object along the table onto a goal 15-35 cm ahead of it.

The gripper starts with its closed fingertips ~1 cm behind the object. It can push with coarse
(2.5 cm) or fine (0.5 cm) moves, or shove: drive the end effector forward at one of
`SHOVE_SPEEDS` for one control step (40 ms) and then hold, after which the object travels on its
own. Fine moves creep at ~0.5 cm per step, so the 50-step time limit rules out pushing the whole
way quasi-statically; coarse moves kick the object ahead of the fingers at ~0.65 m/s whatever the
task. How far a shove sends the object is a property of the hidden task:

* **friction** - a sliding object decelerates at ``g (mu cos a + sin a)`` and travels
  ``v^2 / (2 g (mu cos a + sin a))``: ~1/mu;
* **terrain** - on a slope ``a`` (positive rises along +x, the shove direction) the same shove
  travels further downhill and shorter uphill (friction 0.15, 4 deg: about 1.9x and 0.7x the flat
  distance); bumps of a few millimetres catch the object's edges and dissipate energy, so it
  stops short;
* **shape** - a sphere and a capsule (lying across the shove) roll: rolling resistance, not sliding
  friction, slows them, so under the same shove the sphere travels about 2.4x and the capsule
  1.2-1.5x as far as a sliding cube (friction 0.15); the standing cylinder and the held-out cuboid
  slide, but tip, yaw and pivot differently under the fingers.

The shove that lands the object within the 5 cm success radius therefore depends on friction,
terrain and shape together; mass matters little (the arm strikes at full torque and leaves every
mass at the commanded speed, as slide did before its torque limit). Rolling objects roll away on
any tilt: those tasks are out of reach for every controller.
"""

from __future__ import annotations

import numpy as np

from robot_meta.envs.tasks.base import NOOP, ObjectTask, axis_moves, strike_actions

__all__ = ["SHOVE_SPEEDS", "PushTask"]

#: End-effector shove speeds, m/s (a shove is a one-step strike, as in slide, at full torque). Seven
#: speeds ~20 % apart send the nominal cube ~10 cm further each, the width of the success circle;
#: 13 speeds 0.1 m/s apart measured the same headroom (+42 vs +39 points on `test`) but, as 13 of the
#: 24 random actions, made env steps 30 % slower (1.18x panda-gym, quick run; 1.42x with seven).
SHOVE_SPEEDS = (0.5, 0.65, 0.8, 0.95, 1.1, 1.3, 1.5)


class PushTask(ObjectTask):
    family = "push"
    discrete_actions = (
        NOOP,
        *axis_moves(0.025),
        *axis_moves(0.005, "xy", tag=" fine"),
        *strike_actions(SHOVE_SPEEDS),
    )
    continuous_scale = (0.025, 0.025, 0.025)
    ee_low = (-0.35, -0.3, 0.0)
    ee_high = (0.35, 0.3, 0.2)
    reach_shaping = 0.2

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        self._obj_xy = np.array([rng.uniform(-0.2, -0.1), rng.uniform(-0.08, 0.08)])
        return self.ee_behind_object(float(self._obj_xy[0]), float(self._obj_xy[1]))

    def reset_task(self, rng: np.random.Generator) -> None:
        x, y = float(self._obj_xy[0]), float(self._obj_xy[1])
        self.scene.place_object(x, y, yaw=float(rng.uniform(-0.3, 0.3)))
        self.goal = self.goal_on_surface(
            x + float(rng.uniform(0.15, 0.35)), y + float(rng.uniform(-0.02, 0.02))
        )
