"""What every task family shares: actions, workspace, observation assembly, reward and success."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pybullet

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


def strike_actions(speeds: Sequence[float]) -> tuple[DiscreteAction, ...]:
    """One-step strikes along +x at each of `speeds` (m/s), labelled like ``strike 0.90 m/s``."""
    return tuple(DiscreteAction(f"strike {v:.2f} m/s", velocity=(v, 0.0, 0.0)) for v in speeds)


def _clamp(v: float, lo: float, hi: float) -> float:
    """``min(max(v, lo), hi)`` as comparisons (the same result, NaN included: the builtins keep their
    first argument unless another compares greater / less), without two builtin calls on the hot path."""
    v = lo if lo > v else v
    return hi if hi < v else v


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
    strike_torque_scale: ClassVar[float] = 1.0
    """Joint torque limit during a velocity (strike) action, as a fraction of the URDF's rated torques."""
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
        self.obs_dim = sum(n for _, n in self.observation_layout)

    # -- actions ----------------------------------------------------------------------------------
    @property
    def n_continuous(self) -> int:
        return 4 if self.uses_gripper else 3

    def decode_continuous(self, action: Sequence[float]) -> tuple[tuple[float, float, float], float | None]:
        """End-effector displacement (m) and gripper command of a continuous action (floats in [-1, 1])."""
        sx, sy, sz = self.continuous_scale
        move = (action[0] * sx, action[1] * sy, action[2] * sz)
        return move, (float(action[3]) if self.uses_gripper else None)

    def ee_target(
        self, ee_pos: Sequence[float] | np.ndarray, move: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Clip a displaced end-effector position to the workspace and above the surface."""
        return np.array(self.clip_ee(ee_pos[0] + move[0], ee_pos[1] + move[1], ee_pos[2] + move[2]))

    def clip_ee(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """`ee_target` on plain floats (the env's hot path): (x, y, z) clipped to the workspace and
        raised to `ee_min_clearance` above the surface."""
        lo, hi = self.ee_low, self.ee_high
        x = _clamp(x, lo[0], hi[0])
        y = _clamp(y, lo[1], hi[1])
        z = _clamp(z, lo[2], hi[2])
        floor = self.scene.surface_height(x, y) + self.ee_min_clearance
        return x, y, (floor if floor > z else z)  # max(z, floor)

    # -- episode ------------------------------------------------------------------------------------
    def start_ee(self, rng: np.random.Generator) -> np.ndarray | None:
        """Initial end-effector position, or None for the robot's neutral pose."""
        return None

    @abstractmethod
    def reset_task(self, rng: np.random.Generator) -> None:
        """Place the object (and anything else) and sample `self.goal`; the arm is already reset."""

    @abstractmethod
    def evaluate(self, ee_pos: Sequence[float], ee_vel: Sequence[float]) -> StepResult:
        """Observation, reward, success and failure of the current state (end-effector position, m,
        and velocity, m/s)."""

    def outcome_decided(self, struck: bool) -> bool:
        """True once nothing the policy can still do changes the episode's outcome (not a success).

        `struck`: a strike (velocity) action has been played this episode. Families without such a
        point of no return keep the default (False); the env's ``end_when_decided`` asks this.
        """
        return False

    def on_task_change(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Hook run after the scene is reconfigured for a new task (before `reset_task`)."""

    def achieved_goal(self) -> np.ndarray:
        """The position that must reach `goal` (goal-conditioned envs): the object's, by default."""
        pos, _ = self.sim.getBasePositionAndOrientation(self.scene.body)
        return np.array(pos)

    # -- helpers for object tasks ---------------------------------------------------------------------
    def reward(self, distance: float, success: bool, shaping: float = 0.0) -> float:
        if self.reward_type == "sparse":
            return 0.0 if success else -1.0
        return -distance - shaping

    def object_failed(self, pos: Sequence[float]) -> bool:
        """The object left the table or fell through it: the episode cannot be recovered."""
        x, y, z = pos
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            return True
        return z < self.scene.surface_height(x, y) - 0.05 or abs(y) > 0.58 or not -0.7 < x < 1.0

    def ee_behind_object(self, x: float, y: float) -> np.ndarray:
        """End effector with the fingertips ~1 cm behind (-x) an object resting at (x, y), at its centre
        height: the pose from which a strike drives it along +x."""
        g = self.scene.geometry
        ex = x - g.half_extent_x - 0.025
        z = self.scene.surface_height(ex, y) + max(g.half_height, self.ee_min_clearance)
        return np.array([ex, y, z])

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

    def evaluate(self, ee_pos: Sequence[float], ee_vel: Sequence[float]) -> StepResult:
        # Hot path: plain float arithmetic on 3-vectors and one array at the end (after a physics
        # step, numpy's per-call overhead on tiny arrays costs more than the arithmetic itself).
        client, body = self.sim.client, self.scene.body  # pybullet directly, the client positionally
        pos, orn = pybullet.getBasePositionAndOrientation(body, client)
        lin, ang = pybullet.getBaseVelocity(body, client)
        gx, gy, gz = self.goal.tolist()
        dx, dy, dz = gx - pos[0], gy - pos[1], gz - pos[2]
        dist = math.hypot(dx, dy) if self.planar_success else math.sqrt(dx * dx + dy * dy + dz * dz)
        success = dist < self.distance_threshold
        if success and self.settle_speed is not None:
            success = math.sqrt(lin[0] ** 2 + lin[1] ** 2 + lin[2] ** 2) < self.settle_speed
        ex, ey, ez = ee_pos
        rel = (pos[0] - ex, pos[1] - ey, pos[2] - ez)
        values = [ex, ey, ez, *ee_vel]
        if self.uses_gripper:
            values.append(self.robot.finger_width())
        values += (*pos, *orn, *lin, *ang, gx, gy, gz, *rel, dx, dy, dz)
        obs = np.array(values, dtype=np.float32)
        shaping = (
            self.reach_shaping * math.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)
            if self.reach_shaping
            else 0.0
        )
        return StepResult(obs, self.reward(dist, success, shaping), success, self.object_failed(pos), dist)
