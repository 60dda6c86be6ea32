"""A PyBullet client that dies mid-episode is detected, and the next reset recreates it with the task.

`pybullet.disconnect(physicsClientId=...)` from outside the env stands in for a physics server that
crashed. The contract: the next `step()` raises `PhysicsDisconnectedError` (never a bare
``pybullet.error``) telling the caller to reset; `reset()` starts a new client, rebuilds robot, scene
and task in it and keeps the task; if no client can be started, the error says so.
"""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pybullet
import pytest
from envs_helpers import PUSH, make_env, raw

from robot_meta.envs import TaskParams
from robot_meta.envs.sim import PhysicsDisconnectedError

TASK = TaskParams(
    object_mass=0.8, object_shape="cylinder", object_size=0.05, lateral_friction=0.4, terrain="tilted",
    terrain_slope_deg=3.0,
)  # fmt: skip


def test_disconnect_mid_episode_is_detected_and_reset_restores_the_task() -> None:
    with make_env(PUSH, task=TASK) as env, make_env(PUSH, task=TASK) as fresh:
        u = raw(env)
        env.reset(seed=3)
        for _ in range(5):
            env.step(0)
        old_client = u.sim.client
        pybullet.disconnect(physicsClientId=old_client)

        with pytest.raises(PhysicsDisconnectedError, match=r"disconnected mid-episode.*call env\.reset\(\)"):
            env.step(0)
        with pytest.raises(RuntimeError, match=r"call env\.reset\(\) first"):
            env.step(0)  # the env knows it needs a reset; it does not touch the dead client again

        obs, info = env.reset(seed=11)
        assert u.sim.is_connected and u.sim.connects == 2
        assert info["task"] == TASK and u.get_task() == TASK
        assert u.scene.object_state()[0][2] > 0  # the object exists again, above the floor
        # The rebuilt world is the same world: a seeded reset matches a never-disconnected env's.
        obs_fresh, _ = fresh.reset(seed=11)
        np.testing.assert_array_equal(obs, obs_fresh)
        for _ in range(10):
            a = env.step(1)
            b = fresh.step(1)
            np.testing.assert_array_equal(a[0], b[0])
            assert np.isfinite(a[0]).all()


def test_disconnect_between_episodes_recovers_on_reset_with_a_distribution() -> None:
    with make_env(PUSH, distribution="push") as env:
        u = raw(env)
        env.reset(seed=0)
        pybullet.disconnect(physicsClientId=u.sim.client)
        assert not u.sim.is_connected
        obs, info = env.reset(options={"task": TASK})  # an explicit task survives the reconnect
        assert info["task"] == TASK and u.sim.connects == 2 and np.isfinite(obs).all()
        obs, info = env.reset()  # and the distribution keeps drawing tasks afterwards
        assert info["task"] != TASK and np.isfinite(obs).all()
        _, _, _, _, info = env.step(0)
        assert np.isfinite(info["distance"])


def test_reconnect_that_fails_gives_a_clear_error_then_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    with make_env(PUSH, task=TASK) as env:
        u = raw(env)
        env.reset(seed=0)
        pybullet.disconnect(physicsClientId=u.sim.client)
        monkeypatch.setattr(pybullet, "connect", lambda *a, **k: -1)  # no physics server can start
        with pytest.raises(
            PhysicsDisconnectedError, match="could not start a PyBullet DIRECT physics client"
        ):
            env.reset()
        monkeypatch.undo()
        _, info = env.reset()  # once a client can start again, the env works with the same task
        assert info["task"] == TASK and u.sim.is_connected


def test_closed_env_is_not_silently_reconnected() -> None:
    with make_env(PUSH, task=TASK) as env:
        env.reset(seed=0)
        env.close()
        with pytest.raises(RuntimeError, match="closed: create a new one"):
            env.reset()


@pytest.mark.slow
def test_reconnects_and_world_rebuilds_leak_no_memory() -> None:
    """The recovery path and the seeded reset (both rebuild the world) return their memory.

    Task-changing resets are covered by test_envs_memory.py (1,000 resets) and, 10,000 of them, by
    benchmarks/soak_env.py. Measured growth here: 0.0 MB (bound: 2 MB, as there).
    """
    process = psutil.Process()
    with make_env(PUSH, distribution="manipulation-all") as env:
        u = raw(env)
        for i in range(4):  # warm-up: both paths once or twice
            env.reset(seed=i)
            env.step(0)
            pybullet.disconnect(physicsClientId=u.sim.client)
            env.reset()
        gc.collect()
        rss_before = process.memory_info().rss
        for i in range(10):
            env.reset(seed=100 + i)  # a seeded reset after steps rebuilds the world in the same client
            env.step(0)
            pybullet.disconnect(physicsClientId=u.sim.client)
            _, info = env.reset()
            assert np.isfinite(env.step(0)[0]).all() and info["task"] == u.get_task()
        gc.collect()
        growth = process.memory_info().rss - rss_before
        assert u.sim.connects == 15  # 1 + 4 warm-up + 10 measured reconnects
        assert growth < 2 * 1024 * 1024, f"RSS grew {growth / 1e6:.2f} MB over 10 rebuilds + 10 reconnects"
