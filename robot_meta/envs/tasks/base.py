"""What every task family shares: actions, workspace, observation assembly, reward and success."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from robot_meta.envs.robot import PandaRobot
from robot_meta.envs.scene import Scene
from robot_meta.envs.sim import PyBulletSim

__all__ = ["DiscreteAction", "RewardType", "StepResult", "Task"]

RewardType = Literal["dense", "sparse"]


@dataclass(frozen=True)
class DiscreteAction:
    """One entry of a family's discrete action set: an end-effector displacement and a gripper command."""

    label: str
    move: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """End-effector displacement commanded in one control step, m (world frame)."""
    gripper: float | None = None
    """Finger opening command in [-1, 1] (-1 closed, +1 open); None keeps the current one."""
    velocity: tuple[float, float, float] | None = None
    """If set, drive the end effector at this velocity (m/s) for the step instead of moving to a target."""

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "move": list(self.move),
            "gripper": self.gripper,
            "velocity": None if self.velocity is None else list(self.velocity),
        }


def axis_moves(step: float, axes: str = "xyz", tag: str = "") -> tuple[DiscreteAction, ...]:
    """±`step` moves along each of `axes`, labelled like ``+x`` (with an optional tag)."""
    out = []
    for i, axis in enumerate("xyz"):
        if axis in axes:
            for sign in (1.0, -1.0):
                move = [0.0, 0.0, 0.0]
                move[i] = sign * step
                out.append(
                    DiscreteAction(f"{'+' if sign > 0 else '-'}{axis}{tag}", (move[0], move[1], move[2]))
                )
    return tuple(out)


NOOP = DiscreteAction("stay")
GRIPPER_ACTIONS = (DiscreteAction("open", gripper=1.0), DiscreteAction("close", gripper=-1.0))


@dataclass
class StepResult:
    obs: np.ndarray
    reward: float
    success: bool
    failed: bool
    distance: float


class Task(ABC):
    """A task family: sampled initial state and goal, observation, reward and success.

    Subclasses set the class attributes and implement `reset_task` and `evaluate`.
    """

    family: ClassVar[str]
    uses_gripper: ClassVar[bool] = False
    discrete_actions: ClassVar[tuple[DiscreteAction, ...]]
    continuous_scale: ClassVar[tuple[float, float, float]]
    distance_threshold: ClassVar[float] = 0.05
    settle_speed: ClassVar[float | None] = 0.05
    """The object must move slower than this (m/s) to count as a success (None: no requirement)."""
    ee_low: ClassVar[tuple[float, float, float]] = (-0.35, -0.35, 0.0)
    ee_high: ClassVar[tuple[float, float, float]] = (0.35, 0.35, 0.4)
    ee_min_clearance: ClassVar[float] = 0.015
    """Lowest end-effector height above the support surface, m."""
    observation_layout: ClassVar[tuple[tuple[str, int], ...]]

    def __init__(
        self, sim: PyBulletSim, robot: PandaRobot, scene: Scene, reward_type: RewardType = "dense"
    ) -> None:
        if reward_type not in ("dense", "sparse"):
            raise ValueError(f"reward_type={reward_type!r} is unknown: choose 'dense' or 'sparse'")
        self.sim = sim
        self.robot = robot
        self.scene = scene
        self.reward_type = reward_type
        self.goal = np.zeros(3)
        self._low = np.array(self.ee_low)
        self._high = np.array(self.ee_high)
        self._scale = np.array(self.continuous_scale)
        self.obs_dim = sum(n for _, n in self.observation_layout)

    # -- actions ----------------------------------------------------------------------------------
    @property
    def n_continuous(self) -> int:
        return 4 if self.uses_gripper else 3

    def decode_continuous(self, action: np.ndarray) -> tuple[np.ndarray, float | None]:
        move = action[:3] * self._scale
        return move, (float(action[3]) if self.uses_gripper else None)

    def ee_target(self, ee_pos: np.ndarray, move: np.ndarray) -> np.ndarray:
        """Clip a displaced end-effector position to the workspace and above the surface."""
        target = np.clip(ee_pos + move, self._low, self._high)
        floor = self.scene.surface_height(float(target[0]), float(target[1])) + self.ee_min_clearance
        if target[2] < floor:
            target[2] = floor
        return target

    # -- episode ------------------------------------------------------------------------------------
    def start_ee(self, rng: np.random.Generator) -> np.ndarray | None:
        """Initial end-effector position, or None for the robot's neutral pose."""
        return None

    @abstractmethod
    def reset_task(self, rng: np.random.Generator) -> None:
        """Place the object (and anything else) and sample `self.goal`; the arm is already reset."""

    @abstractmethod
    def evaluate(self, ee_pos: np.ndarray, ee_vel: np.ndarray) -> StepResult:
        """Observation, reward, success and failure of the current state."""

    def on_task_change(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Hook run after the scene is reconfigured for a new task (before `reset_task`)."""

    # -- helpers for object tasks ---------------------------------------------------------------------
    def reward(self, distance: float, success: bool, shaping: float = 0.0) -> float:
        if self.reward_type == "sparse":
            return 0.0 if success else -1.0
        return -distance - shaping

    def object_failed(self, pos: np.ndarray) -> bool:
        """The object left the table or fell through it: the episode cannot be recovered."""
        floor = self.scene.surface_height(float(pos[0]), float(pos[1])) - 0.05
        return bool(
            pos[2] < floor or abs(pos[1]) > 0.58 or not -0.7 < pos[0] < 1.0 or not np.isfinite(pos).all()
        )

    def goal_on_surface(self, x: float, y: float) -> np.ndarray:
        g = self.scene.geometry
        return np.array([x, y, self.scene.surface_height(x, y) + g.half_height])


OBJECT_LAYOUT: tuple[tuple[str, int], ...] = (
    ("ee_position", 3),
    ("ee_velocity", 3),
    ("object_position", 3),
    ("object_quaternion", 4),
    ("object_velocity", 3),
    ("object_angular_velocity", 3),
    ("goal_position", 3),
    ("object_minus_ee", 3),
    ("goal_minus_object", 3),
)


class ObjectTask(Task):
    """A family that moves the object to a goal (push, slide, pick-and-place)."""

    observation_layout = OBJECT_LAYOUT
    planar_success: ClassVar[bool] = True
    """Success measured in the horizontal plane (push, slide) or in 3-D (pick-and-place)."""
    reach_shaping: ClassVar[float] = 0.0
    """Dense reward also subtracts this times the end-effector-to-object distance."""

    def evaluate(self, ee_pos: np.ndarray, ee_vel: np.ndarray) -> StepResult:
        pos, orn, lin, ang = self.scene.object_state()
        to_goal = self.goal - pos
        dist = float(np.hypot(to_goal[0], to_goal[1]) if self.planar_success else np.linalg.norm(to_goal))
        success = dist < self.distance_threshold
        if success and self.settle_speed is not None:
            success = float(np.linalg.norm(lin)) < self.settle_speed
        parts = [ee_pos, ee_vel]
        if self.uses_gripper:
            parts.append(np.array([self.robot.finger_width()]))
        parts += [pos, orn, lin, ang, self.goal, pos - ee_pos, to_goal]
        obs = np.concatenate(parts).astype(np.float32)
        shaping = self.reach_shaping * float(np.linalg.norm(pos - ee_pos)) if self.reach_shaping else 0.0
        return StepResult(obs, self.reward(dist, success, shaping), success, self.object_failed(pos), dist)
