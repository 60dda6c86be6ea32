"""`RobotTaskEnv`: one Gymnasium env composing a `PyBulletSim`, a `PandaRobot`, a `Scene` and a task."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import pybullet
from gymnasium import spaces

from robot_meta._registration import MAX_EPISODE_STEPS
from robot_meta.envs.goal import GoalConditioning
from robot_meta.envs.params import PRIVILEGED_DIM, TaskDistribution, TaskParams
from robot_meta.envs.robot import PandaRobot
from robot_meta.envs.scene import Scene
from robot_meta.envs.sim import PhysicsDisconnectedError, PyBulletSim
from robot_meta.envs.tasks import TASK_FAMILIES
from robot_meta.envs.tasks.base import DiscreteAction, RewardType, StepResult, _clamp

__all__ = ["ActionMode", "GoalConditionedEnv", "RobotTaskEnv"]

log = logging.getLogger(__name__)

ActionMode = Literal["discrete", "continuous"]

#: Largest distance the end-effector setpoint may lead the measured end effector, m.
MAX_LEAD = 0.03
#: Panda links that never collide with the support surface: base, link 1 and link 2 (the mount).
MOUNT_LINKS = (-1, 0, 1)
#: Continuous actions of these dtypes are checked as they are (others are converted to float64 first).
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _frozen(values: Sequence[float]) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.setflags(write=False)
    return arr


class RobotTaskEnv(gym.Env[Any, Any]):
    """A Panda task whose hidden physical parameters (`TaskParams`) vary from task to task.

    Args:
        family: ``reach``, ``push``, ``slide`` or ``pick_place``.
        task: the task to run (default: the family preset's nominal task).
        distribution: draw a new task at every reset from this distribution (a `TaskDistribution`
            or a preset name such as ``"push"`` or ``"push:test"``), using the env's seeded RNG.
        action_mode: ``discrete`` (end-effector moves, for DQN) or ``continuous`` (a Box in [-1, 1]).
        privileged: append the true task parameters to the observation (oracle baseline only).
        render_mode: None or ``rgb_array`` (headless TinyRenderer).
        reward_type: ``dense`` (minus the distance to the goal) or ``sparse`` (-1 until success).
        render_size: (width, height) of rendered frames, pixels.
        goal_conditioned: a Gymnasium-Robotics Dict observation (``observation``, ``achieved_goal``,
            ``desired_goal``) and a vectorised `compute_reward`, for HER (`robot_meta.envs.goal`).
        end_when_decided: end the episode (``terminated``, ``info["decided"]``) as soon as its
            outcome is decided (`Task.outcome_decided`: in slide, a struck puck at rest off the goal)
            instead of idling to the time limit. That step's reward also pays what the idle steps
            would have paid (its reward times the steps left of the registered ``MAX_EPISODE_STEPS``),
            so the episode's return is unchanged; learners see the outcome without a long tail to bootstrap through.
            Off by default; success is never affected. Not with ``goal_conditioned`` (HER recomputes
            rewards from goals alone).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012 (Gymnasium's contract)

    def __new__(cls, *args: Any, goal_conditioned: bool = False, **kwargs: Any) -> RobotTaskEnv:
        # goal_conditioned=True gives the subclass with `compute_reward`: checkers and HER detect a goal
        # env by that method, so the flat env must not have it.
        if goal_conditioned and not issubclass(cls, GoalConditionedEnv):
            cls = GoalConditionedEnv
        return super().__new__(cls)

    def __init__(
        self,
        family: str,
        task: TaskParams | dict[str, Any] | None = None,
        distribution: TaskDistribution | str | None = None,
        action_mode: ActionMode = "discrete",
        privileged: bool = False,
        render_mode: str | None = None,
        reward_type: RewardType = "dense",
        render_size: tuple[int, int] = (480, 360),
        goal_conditioned: bool = False,
        end_when_decided: bool = False,
    ) -> None:
        super().__init__()
        if family not in TASK_FAMILIES:
            raise ValueError(f"unknown task family {family!r}: choose one of {list(TASK_FAMILIES)}")
        if action_mode not in ("discrete", "continuous"):
            raise ValueError(f"action_mode={action_mode!r} is unknown: choose 'discrete' or 'continuous'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported: use None or 'rgb_array'")
        if isinstance(distribution, str):
            distribution = TaskDistribution.preset(distribution)
        if distribution is not None and not isinstance(distribution, TaskDistribution):
            raise TypeError(
                f"distribution must be a TaskDistribution or a preset name, got {type(distribution).__name__}"
            )
        if not isinstance(end_when_decided, bool):
            raise ValueError(f"end_when_decided must be True or False, got {end_when_decided!r}")
        if end_when_decided and (goal_conditioned or isinstance(self, GoalConditionedEnv)):
            raise ValueError(
                "end_when_decided=True cannot be combined with goal_conditioned=True: its terminal reward "
                "is not a function of the goals, which HER's compute_reward needs; use one or the other"
            )
        self.end_when_decided = end_when_decided
        self._steps = 0
        self._struck = False
        self.family = family
        self.distribution = distribution
        self.action_mode: ActionMode = action_mode
        self.privileged = bool(privileged)
        self.render_mode = render_mode
        self.render_size = (int(render_size[0]), int(render_size[1]))

        self.reward_type: RewardType = reward_type
        self.sim = PyBulletSim()
        self._build_world()

        default = (
            TaskDistribution.preset(family).nominal
            if family in TaskDistribution.preset_names()
            else TaskParams()
        )
        self._params: TaskParams = self._coerce_task(task) if task is not None else default

        obs_dim = self.task.obs_dim + (PRIVILEGED_DIM if self.privileged else 0)
        self.observation_space: spaces.Space[Any] = spaces.Box(
            -np.inf, np.inf, shape=(obs_dim,), dtype=np.float32
        )
        self.goal_conditioned = bool(goal_conditioned) or isinstance(self, GoalConditionedEnv)
        self._goal: GoalConditioning | None = None
        if self.goal_conditioned:
            self._goal = GoalConditioning(self.task, self.observation_layout, reward_type)
            self.observation_space = self._goal.space
        self.actions: tuple[DiscreteAction, ...] = self.task.discrete_actions
        # Each strike's velocity as a (read-only) array, built once instead of at every strike.
        self._velocities = [None if a.velocity is None else _frozen(a.velocity) for a in self.actions]
        if action_mode == "discrete":
            self.action_space: spaces.Space[Any] = spaces.Discrete(len(self.actions))
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(self.task.n_continuous,), dtype=np.float32)
        # Measured end effector and setpoint, m: plain floats (tests and tools may set arrays).
        self._ee_pos: Sequence[float] = (0.0, 0.0, 0.0)
        self._setpoint: Sequence[float] = (0.0, 0.0, 0.0)
        self._last: StepResult | None = None
        self._needs_reset = True
        self._closed = False

    def _build_world(self) -> None:
        """(Re)build robot, scene and task in the sim's (empty) world."""
        self.robot = PandaRobot(self.sim)
        self.scene = Scene(self.sim)
        self.task = TASK_FAMILIES[self.family](self.sim, self.robot, self.scene, self.reward_type)
        # The arm is mounted on the table. The surface tilts about x = 0, so a steep tilt towards the
        # robot (terrain_slope_deg below about -10) would push it through the base and shoulder
        # links, and the solver would throw the object at 20-300 m/s (found by the property tests).
        for link in MOUNT_LINKS:
            self.sim.setCollisionFilterPair(self.robot.body, self.scene.surface, link, -1, 0)
        self._applied: TaskParams | None = None
        self._world_dirty = False

    # -- task -----------------------------------------------------------------------------------------
    @staticmethod
    def _coerce_task(task: Any) -> TaskParams:
        if isinstance(task, TaskParams):
            return task
        if isinstance(task, dict):
            return TaskParams.from_dict(task)
        raise TypeError(f"task must be a TaskParams or a dict of its fields, got {type(task).__name__}")

    def set_task(self, params: TaskParams | dict[str, Any]) -> None:
        """Use `params` from the next `reset()` on (the current episode is not changed)."""
        self._params = self._coerce_task(params)

    def get_task(self) -> TaskParams:
        """The task of the current episode (or of the next one, after `set_task`)."""
        return self._params

    @property
    def observation_layout(self) -> tuple[tuple[str, int], ...]:
        """Named segments of the observation vector, in order."""
        layout = self.task.observation_layout
        return (*layout, ("task_parameters", PRIVILEGED_DIM)) if self.privileged else layout

    # -- Gymnasium API ----------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._check_open()
        options = options or {}
        unknown = set(options) - {"task"}
        if unknown:
            raise ValueError(
                f"reset(options=...) got unknown key(s) {sorted(unknown)}; the only option is 'task'"
            )
        if options.get("task") is not None:
            self._params = self._coerce_task(options["task"])
        elif self.distribution is not None:
            self._params = self.distribution.space.sample_one(self.np_random)
        try:
            return self._reset_world_and_task(seed)
        except (PhysicsDisconnectedError, pybullet.error) as exc:
            self._needs_reset = True
            if self.sim.is_connected:
                raise
            raise PhysicsDisconnectedError(
                f"the physics client disconnected during reset() ({exc}); call env.reset() again to "
                "start a new one (the task is kept)"
            ) from exc

    def _reset_world_and_task(self, seed: int | None) -> tuple[Any, dict[str, Any]]:
        if not self.sim.is_connected:
            # The physics server died (or was disconnected) since the last call: start a fresh
            # client and rebuild robot, scene and task in it; the task of this reset is kept.
            log.warning(
                "physics client %d is disconnected: reconnecting and rebuilding the world (task %s)",
                self.sim.client,
                self._params,
            )
            self.sim.reconnect()
            self._build_world()
        elif seed is not None and self._world_dirty:
            # A seeded reset replays bitwise: start from a freshly built world (~0.1 s, same client).
            self.sim.reset_world()
            self._build_world()
        self._bind_goal()
        params = self._params
        if params != self._applied:
            self.scene.apply(params)
            self.task.on_task_change()
            self._applied = params
        self.robot.reset()
        start = self.task.start_ee(self.np_random)
        if start is not None:
            self._place_ee(start)
        self.task.reset_task(self.np_random)
        self.scene.show_goal(self.task.goal)
        self._ee_pos, ee_vel = self.robot.ee_state_floats()
        self._setpoint = self._ee_pos
        self._last = self.task.evaluate(self._ee_pos, ee_vel)
        self._needs_reset = False
        self._steps = 0
        self._struck = False
        return self._obs(self._last), self._info(self._last)

    def _bind_goal(self) -> None:
        """Point the goal conditioning at the current task object (rebuilt by a world rebuild)."""
        if self._goal is not None and self._goal.task is not self.task:
            self._goal.task = self.task

    def _place_ee(self, target: np.ndarray) -> None:
        """Teleport the arm so that the end effector is at `target` (IK, refined twice)."""
        target = self.task.ee_target(target, np.zeros(3))
        err = self.robot.teleport_ee(target)
        if err > 5e-3:
            log.warning("start pose %s reached only within %.1f mm", np.round(target, 3).tolist(), err * 1e3)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            self._check_open()
            raise RuntimeError(
                "step() called before reset() (or after the episode terminated): call env.reset() first"
            )
        velocity = None
        if self.action_mode == "discrete":
            idx = self._check_discrete(action)
            chosen = self.actions[idx]
            move, gripper, velocity = chosen.move, chosen.gripper, self._velocities[idx]
        else:
            move, gripper = self.task.decode_continuous(self._check_continuous(action))
        try:
            if velocity is None:
                # The setpoint integrates the commanded moves (so tracking errors do not accumulate
                # into drift) but never leads the measured end effector by more than MAX_LEAD
                # (anti-windup when the arm is blocked by a heavy object or the table).
                # Plain floats throughout: numpy's per-call overhead on 3-vectors costs more here.
                # `_clamp` is min(max(v, lo), hi) without the two builtin calls (the same result).
                sx, sy, sz = self._setpoint
                tx, ty, tz = self.task.clip_ee(sx + move[0], sy + move[1], sz + move[2])
                ex, ey, ez = self._ee_pos
                target = (
                    _clamp(tx, ex - MAX_LEAD, ex + MAX_LEAD),
                    _clamp(ty, ey - MAX_LEAD, ey + MAX_LEAD),
                    _clamp(tz, ez - MAX_LEAD, ez + MAX_LEAD),
                )
                self._setpoint = target
                self.robot.command(target, gripper)
            else:
                self.robot.command_velocity(velocity, self.task.strike_torque_scale)
            self._world_dirty = True
            self.sim.step()
            self._ee_pos, ee_vel = self.robot.ee_state_floats()
        except (PhysicsDisconnectedError, pybullet.error) as exc:
            self._needs_reset = True
            if self.sim.is_connected:
                raise
            raise PhysicsDisconnectedError(
                f"the physics client disconnected mid-episode ({exc}); call env.reset() to reconnect: "
                "it starts a new client and restores the same task"
            ) from exc
        if velocity is not None:
            # Hold where the strike ended, at the height it started from (the arm sags a little
            # while it is velocity-controlled).
            self._setpoint = (self._ee_pos[0], self._ee_pos[1], self._setpoint[2])
        res = self.task.evaluate(self._ee_pos, ee_vel)
        self._last = res
        if not all(map(math.isfinite, res.obs.tolist())):  # plain floats: cheaper than numpy on ~25 values
            self._needs_reset = True
            raise FloatingPointError(
                f"the simulation became non-finite (task {self._params}); reset the env. "
                "Please report this task: it should not be reachable with validated parameters."
            )
        self._steps += 1
        self._struck = self._struck or velocity is not None
        terminated = res.success or res.failed
        reward = res.reward
        decided = self.end_when_decided and not terminated and self.task.outcome_decided(struck=self._struck)
        if decided:
            terminated = True
            reward *= 1 + max(0, MAX_EPISODE_STEPS - self._steps)
        if terminated:
            self._needs_reset = True
        obs, info = self._obs(res), self._info(res)
        if self.end_when_decided:
            info["decided"] = decided
        if self._goal is not None:  # exactly what compute_reward gives for this transition (HER)
            reward = float(self._goal.compute_reward(obs["achieved_goal"], obs["desired_goal"], info))
        return obs, reward, terminated, False, info

    def _check_discrete(self, action: Any) -> int:
        if type(action) is int and 0 <= action < len(self.actions):  # the common case, checked first
            return action
        if isinstance(action, np.ndarray) and action.shape in ((), (1,)):
            action = action.reshape(()).item()
        if isinstance(action, bool) or not isinstance(action, int | np.integer):
            raise ValueError(
                f"action {action!r} is not an integer: this env's action space is {self.action_space}"
            )
        idx = int(action)
        if not 0 <= idx < len(self.actions):
            raise ValueError(f"action {idx} is out of range: valid actions are 0..{len(self.actions) - 1}")
        return idx

    def _check_continuous(self, action: Any) -> list[float]:
        # A float array's values convert to the same Python floats directly (no float64 copy first).
        arr = (
            action
            if isinstance(action, np.ndarray) and action.dtype in FLOAT_DTYPES
            else np.asarray(action, dtype=np.float64)
        )
        n = self.task.n_continuous
        if arr.shape != (n,):
            raise ValueError(f"action has shape {arr.shape}; this env expects shape ({n},) in [-1, 1]")
        # Hot path: plain floats on a 3- or 4-vector (numpy's per-call overhead dominates here), one
        # pass when the action is valid (NaN fails every comparison, so it takes the checks below).
        values = arr.tolist()
        bound = 1.0 + 1e-6
        if all(-bound <= v <= bound for v in values):
            return [min(max(v, -1.0), 1.0) for v in values]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"action {values} contains NaN or inf: refused (it would corrupt the physics state)"
            )
        raise ValueError(f"action {values} is outside [-1, 1]: clip it to the action space first")

    def _obs(self, res: StepResult) -> Any:
        flat = np.concatenate([res.obs, self._params.to_vector()]) if self.privileged else res.obs
        return flat if self._goal is None else self._goal.observation(flat)

    def _info(self, res: StepResult) -> dict[str, Any]:
        return {"is_success": bool(res.success), "task": self._params, "distance": res.distance}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None: pass render_mode='rgb_array' to gym.make")
            return None
        self._check_open()
        w, h = self.render_size
        return self.sim.render(w, h)

    def close(self) -> None:
        if not self._closed:
            self.sim.close()
            self._closed = True
            self._needs_reset = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this env is closed: create a new one with gym.make")

    # -- diagnostics -------------------------------------------------------------------------------------
    @property
    def control_dt(self) -> float:
        """Duration of one step, s."""
        return self.sim.control_dt

    def describe_actions(self) -> list[dict[str, object]]:
        """The discrete action map (index -> end-effector command), for manifests and logs."""
        return [a.to_dict() for a in self.actions]

    def __repr__(self) -> str:
        return f"RobotTaskEnv(family={self.family!r}, action_mode={self.action_mode!r}, task={self._params})"


class GoalConditionedEnv(RobotTaskEnv):
    """`RobotTaskEnv` with ``goal_conditioned=True``: the Gymnasium-Robotics Dict observation and
    `compute_reward` (`robot_meta.envs.goal`). ``gym.make(env_id, goal_conditioned=True)`` makes one."""

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any = None) -> np.ndarray | float:
        """The reward of `achieved_goal` against `desired_goal` (goal-conditioned envs; vectorised for HER).

        See `robot_meta.envs.goal`: batches of goals (shape (..., 3)) give an array of rewards, one
        goal pair a float; it depends on the goals alone (`info`, Gymnasium-Robotics' third argument,
        is not used).
        """
        assert self._goal is not None
        return self._goal.compute_reward(achieved_goal, desired_goal, info)
