"""Pick and place: grasp the object and carry it to a goal on or above the table.

The fingers squeeze with the Panda's 20 N each, so the grasp holds only while
2 x 20 N x friction exceeds the weight: a heavy, slippery object must be carried carefully or
slips; the shape decides how it seats between the fingers.
"""

from __future__ import annotations

import numpy as np

from robot_meta.envs.tasks.base import GRIPPER_ACTIONS, NOOP, OBJECT_LAYOUT, ObjectTask, axis_moves

__all__ = ["PickPlaceTask"]


class PickPlaceTask(ObjectTask):
    family = "pick_place"
    uses_gripper = True
    discrete_actions = (NOOP, *axis_moves(0.02), *GRIPPER_ACTIONS)
    continuous_scale = (0.02, 0.02, 0.02)
    planar_success = False
    settle_speed = None
    reach_shaping = 0.2
    ee_low = (-0.3, -0.3, 0.0)
    ee_high = (0.3, 0.3, 0.35)
    ee_min_clearance = 0.012  # fingertips reach 7.4 mm below the grasp point: keep them off the table
    observation_layout = (OBJECT_LAYOUT[0], OBJECT_LAYOUT[1], ("finger_width", 1), *OBJECT_LAYOUT[2:])

    def start_ee(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 0.12])

    def reset_task(self, rng: np.random.Generator) -> None:
        obj_xy = rng.uniform(-0.1, 0.1, size=2)
        self.scene.place_object(float(obj_xy[0]), float(obj_xy[1]), yaw=float(rng.uniform(-0.5, 0.5)))
        start = self.scene.object_state()[0]
        while True:  # the goal is never already satisfied at the start
            goal_xy = rng.uniform(-0.15, 0.15, size=2)
            goal = self.goal_on_surface(float(goal_xy[0]), float(goal_xy[1]))
            goal[2] += float(rng.uniform(0.0, 0.15))
            if np.linalg.norm(goal - start) > 2 * self.distance_threshold:
                break
        self.goal = goal
