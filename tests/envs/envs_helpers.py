"""Shared helpers of the env tests: building envs, scripted rollouts and physics probes.

Every probe builds a fresh env (PyBullet keeps solver caches across episodes, so a probe that
reused one env would depend on what ran before it) and drives it through the public env API plus
the documented test hooks (`scene.object_state()`, `robot.teleport_ee()`, `scene.place_object()`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np

import robot_meta  # noqa: F401  (registers the ids)
from robot_meta.envs import RobotTaskEnv, TaskParams

PUSH = "robot_meta/PandaPush-v0"
SLIDE = "robot_meta/PandaSlide-v0"
REACH = "robot_meta/PandaReach-v0"
PICK = "robot_meta/PandaPickPlace-v0"

#: A goal no scripted probe can reach: keeps `step()` from terminating on a success.
FAR_GOAL = np.array([-0.3, 0.25, 0.0])


@contextmanager
def make_env(env_id: str, **kwargs: Any) -> Iterator[gym.Env[np.ndarray, Any]]:
    """`gym.make(env_id, **kwargs)`, closed on exit."""
    env = gym.make(env_id, **kwargs)
    try:
        yield env
    finally:
        env.close()


def raw(env: gym.Env[np.ndarray, Any]) -> RobotTaskEnv:
    """The `RobotTaskEnv` under Gymnasium's wrappers."""
    inner = env.unwrapped
    assert isinstance(inner, RobotTaskEnv)
    return inner


def action_index(env: gym.Env[np.ndarray, Any], label: str) -> int:
    """Index of the discrete action called `label` (``"+x"``, ``"stay"``, ``"strike 0.90 m/s"`` …)."""
    labels = [a.label for a in raw(env).actions]
    assert label in labels, f"no action {label!r} in {labels}"
    return labels.index(label)


def teleport_ee(env: gym.Env[np.ndarray, Any], target: Sequence[float]) -> None:
    """Put the arm at rest with the end effector at `target` and tell the env where it is.

    The env tracks the measured end effector (`_ee_pos`) and the integrated setpoint the next move
    starts from (`_setpoint`): both must follow the teleport, or the first move drags the arm back.
    """
    u = raw(env)
    err = u.robot.teleport_ee(np.asarray(target, dtype=float))
    assert err < 5e-3, f"could not teleport the end effector to {target}: {err * 1e3:.1f} mm off"
    u._ee_pos = u.robot.ee_state()[0]
    if hasattr(u, "_setpoint"):
        u._setpoint = u._ee_pos.copy()


def object_position(env: gym.Env[np.ndarray, Any]) -> np.ndarray:
    return raw(env).scene.object_state()[0]


def settle(env: gym.Env[np.ndarray, Any], n: int) -> None:
    """Advance the physics `n` control periods with the arm holding its pose (no episode logic)."""
    sim = raw(env).sim
    for _ in range(n):
        sim.step()


def push_displacement(task: TaskParams, gap: float = 0.05, height: float = 0.015) -> np.ndarray:
    """Object displacement (m) after a scripted hit along +x with the closed gripper.

    The object is put at rest at the origin and the fingertips `gap` behind it, `height` above the
    table; the policy plays ``+x`` 6 times, ``-x`` 4 times (the arm backs off, the object coasts)
    and ``stay`` 14 times (0.96 s in all).
    """
    with make_env(PUSH, task=task) as env:
        env.reset(seed=0)
        u = raw(env)
        u.task.goal = FAR_GOAL.copy()
        u.scene.place_object(0.0, 0.0)
        settle(env, 3)
        start = object_position(env)
        teleport_ee(env, [start[0] - u.scene.geometry.footprint_radius - gap, start[1], height])
        for label, n in (("+x", 6), ("-x", 4), ("stay", 14)):
            action = action_index(env, label)
            for i in range(n):
                _, _, terminated, truncated, _ = env.step(action)
                assert not (terminated or truncated), f"the push probe ended early at {label} #{i} ({task})"
        return object_position(env) - start


def lift_height(task: TaskParams, hold: int = 15) -> float:
    """How high (m) the object is after a scripted grasp-and-lift in the pick-and-place env.

    Open above the object, descend 12 cm, close for 5 steps, lift 16 cm, hold `hold` steps. The
    fingers squeeze with 20 N each, so the grasp holds only while 2 x 20 N x friction > weight.
    """
    with make_env(PICK, task=task) as env:
        env.reset(seed=0)
        u = raw(env)
        u.task.goal = np.array([0.3, 0.3, 0.3])
        u.scene.place_object(0.0, 0.0)
        settle(env, 3)
        start = object_position(env)
        teleport_ee(env, [start[0], start[1], start[2] + 0.06])
        for label, n in (("open", 3), ("-z", 6), ("close", 5), ("+z", 8), ("stay", hold)):
            action = action_index(env, label)
            for i in range(n):
                _, _, terminated, truncated, _ = env.step(action)
                assert not (terminated or truncated), f"the lift probe ended early at {label} #{i} ({task})"
        return float(object_position(env)[2] - start[2])


def resting_position(
    task: TaskParams, n: int = 25, xy: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """(placed, settled) object position (m) on the push env's surface, left alone for `n` periods.

    The arm is parked out of the way first, so nothing but gravity, contact and friction acts.
    """
    with make_env(PUSH, task=task) as env:
        env.reset(seed=0)
        teleport_ee(env, [-0.3, -0.25, 0.15])
        placed = raw(env).scene.place_object(*xy)
        settle(env, n)
        return placed, object_position(env)


def strike_distance(task: TaskParams, speed: float, n_after: int = 40, env_id: str = SLIDE) -> float:
    """Distance (m, along +x) the object travels after one strike (push: shove) at `speed` m/s, from
    the start pose of `env_id` (slide's puck by default; push's shove starts the same way)."""
    with make_env(env_id, task=task) as env:
        env.reset(seed=0)
        raw(env).task.goal = FAR_GOAL.copy()
        start = object_position(env)
        env.step(action_index(env, f"strike {speed:.2f} m/s"))
        stay = action_index(env, "stay")
        for _ in range(n_after):
            _, _, terminated, _, _ = env.step(stay)
            assert not terminated, f"the puck left the table ({task}, {speed} m/s)"
        return float(object_position(env)[0] - start[0])


def strike_launch_speed(task: TaskParams, speed: float, torque_scale: float | None = None) -> float:
    """Peak speed (m/s) of the slide puck after one strike at `speed` m/s; `torque_scale` overrides
    the strike's joint torque limit (None: the family's own, `SlideTask.strike_torque_scale`)."""
    with make_env(SLIDE, task=task) as env:
        env.reset(seed=0)
        raw(env).task.goal = FAR_GOAL.copy()
        if torque_scale is not None:
            raw(env).task.strike_torque_scale = torque_scale  # type: ignore[misc]  # this env's task only
        env.step(action_index(env, f"strike {speed:.2f} m/s"))
        peak = float(np.linalg.norm(raw(env).scene.object_state()[2]))
        stay = action_index(env, "stay")
        for _ in range(5):
            env.step(stay)
            peak = max(peak, float(np.linalg.norm(raw(env).scene.object_state()[2])))
        return peak


def rollout(
    env: gym.Env[np.ndarray, Any], seed: int, n_steps: int, action_seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards of `n_steps` seeded random actions (resetting on episode end)."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed if action_seed is None else action_seed)
    observations, rewards = [obs], []
    for _ in range(n_steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            observations.append(obs)
    return np.asarray(observations), np.asarray(rewards, dtype=np.float64)
