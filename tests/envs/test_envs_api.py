"""The env's public API: tasks, privileged observations, info, refused actions, lifecycle, rendering."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from envs_helpers import PUSH, REACH, SLIDE, action_index, make_env, raw, teleport_ee
from gymnasium.error import ResetNeeded

from robot_meta.envs import ENV_IDS, PRIVILEGED_DIM, RobotTaskEnv, TaskDistribution, TaskParams

HEAVY_SPHERE = TaskParams(object_mass=3.0, object_shape="sphere", object_size=0.06, lateral_friction=0.2)

# -- hidden parameters, privileged observations, info ----------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_hide_the_task_unless_privileged(env_id: str) -> None:
    with (
        make_env(env_id, task=HEAVY_SPHERE) as plain,
        make_env(env_id, task=HEAVY_SPHERE, privileged=True) as priv,
    ):
        n = plain.observation_space.shape[0]  # type: ignore[index]
        assert priv.observation_space.shape == (n + PRIVILEGED_DIM,)
        assert [name for name, _ in raw(plain).observation_layout].count("task_parameters") == 0
        assert raw(priv).observation_layout[-1] == ("task_parameters", PRIVILEGED_DIM)
        assert sum(k for _, k in raw(plain).observation_layout) == n

        obs_plain, _ = plain.reset(seed=3)
        obs_priv, info_priv = priv.reset(seed=3)
        assert obs_plain.shape == (n,)
        assert obs_priv.shape == (n + PRIVILEGED_DIM,)
        np.testing.assert_array_equal(obs_priv[:n], obs_plain)
        np.testing.assert_array_equal(obs_priv[n:], info_priv["task"].to_vector())
        for _ in range(3):
            obs_plain, *_ = plain.step(0)
            obs_priv, _, _, _, info_priv = priv.step(0)
            assert obs_plain.shape == (n,)
            np.testing.assert_array_equal(obs_priv[n:], info_priv["task"].to_vector())
            np.testing.assert_array_equal(obs_priv[:n], obs_plain)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_plain_observation_does_not_depend_on_hidden_parameters_at_reset(env_id: str) -> None:
    """Two tasks that differ only in mass and friction give the same reset observation."""
    light = TaskParams(object_mass=0.1, lateral_friction=0.1, object_size=0.05)
    heavy = light.replace(object_mass=4.0, lateral_friction=1.5)
    with make_env(env_id, task=light) as a, make_env(env_id, task=heavy) as b:
        obs_a, _ = a.reset(seed=5)
        obs_b, _ = b.reset(seed=5)
        np.testing.assert_array_equal(obs_a, obs_b)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action_mode", ["discrete", "continuous"])
def test_info_has_is_success_and_task_after_reset_and_on_every_step(env_id: str, action_mode: str) -> None:
    with make_env(
        env_id, action_mode=action_mode, distribution=TaskDistribution.preset("manipulation-all")
    ) as env:
        _, info = env.reset(seed=0)
        assert isinstance(info["is_success"], bool)
        assert isinstance(info["task"], TaskParams)
        env.action_space.seed(0)
        for _ in range(60):  # crosses the 50-step time limit
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            assert isinstance(info["is_success"], bool)
            assert info["task"] == raw(env).get_task()
            if terminated or truncated:
                _, info = env.reset()
                assert isinstance(info["is_success"], bool) and isinstance(info["task"], TaskParams)


# -- choosing the task ------------------------------------------------------------------------------------


def _dynamics(env: gym.Env[np.ndarray, Any]) -> tuple[float, float]:
    """(mass, lateral friction) of the active object, read back from PyBullet."""
    u = raw(env)
    info = u.sim.getDynamicsInfo(u.scene.body, -1)
    return float(info[0]), float(info[1])


def test_reset_option_task_takes_effect() -> None:
    with make_env(PUSH) as env:
        _, info = env.reset(seed=0, options={"task": HEAVY_SPHERE})
        assert info["task"] == HEAVY_SPHERE
        assert raw(env).get_task() == HEAVY_SPHERE
        assert raw(env).scene.geometry.shape == "sphere"
        assert _dynamics(env) == pytest.approx((3.0, 0.2))
        _, _, _, _, info = env.step(0)
        assert info["task"] == HEAVY_SPHERE
        # a dict of fields is accepted too
        other = TaskParams(object_mass=0.2, lateral_friction=0.9)
        _, info = env.reset(options={"task": other.to_dict()})
        assert info["task"] == other
        assert _dynamics(env) == pytest.approx((0.2, 0.9))


def test_reset_option_task_overrides_the_distribution() -> None:
    with make_env(PUSH, distribution="push") as env:
        _, info = env.reset(seed=0, options={"task": HEAVY_SPHERE})
        assert info["task"] == HEAVY_SPHERE
        _, info = env.reset()
        assert info["task"] != HEAVY_SPHERE


def test_set_task_takes_effect_at_the_next_reset() -> None:
    with make_env(PUSH) as env:
        env.reset(seed=0)
        nominal = raw(env).get_task()
        raw(env).set_task(HEAVY_SPHERE)
        assert raw(env).get_task() == HEAVY_SPHERE
        _, info = env.reset()
        assert info["task"] == HEAVY_SPHERE
        assert _dynamics(env) == pytest.approx((3.0, 0.2))
        _, info = env.reset()  # sticks until changed
        assert info["task"] == HEAVY_SPHERE
        raw(env).set_task(nominal)
        _, info = env.reset()
        assert info["task"] == nominal
        assert raw(env).scene.geometry.shape == nominal.object_shape


def test_task_given_to_make_is_used() -> None:
    with make_env(PUSH, task=HEAVY_SPHERE) as env:
        _, info = env.reset(seed=0)
        assert info["task"] == HEAVY_SPHERE


@pytest.mark.parametrize("env_id", [PUSH, REACH])
def test_distribution_draws_a_new_task_at_every_reset(env_id: str) -> None:
    dist = TaskDistribution.preset("push")
    with make_env(env_id, distribution="push") as env:
        tasks = [env.reset(seed=0)[1]["task"]] + [env.reset()[1]["task"] for _ in range(19)]
        assert len(set(tasks)) >= 15, f"only {len(set(tasks))} distinct tasks in 20 resets"
        assert len({t.object_shape for t in tasks}) >= 2
        assert all(dist.contains(t) for t in tasks)
        # the draw comes from the env's own seeded RNG
        again = [env.reset(seed=0)[1]["task"]] + [env.reset()[1]["task"] for _ in range(19)]
        assert again == tasks


def test_distribution_split_preset_string_samples_that_split() -> None:
    interp = TaskDistribution.preset("push:interp")
    with make_env(PUSH, distribution="push:interp") as env:
        tasks = [env.reset(seed=1)[1]["task"]] + [env.reset()[1]["task"] for _ in range(9)]
        assert all(interp.contains(t) for t in tasks)
        assert not any(TaskDistribution.preset("push").contains(t) for t in tasks)


def test_test_split_env_draws_unseen_train_distribution_tasks() -> None:
    """``push:test`` resets draw from the train region, yet never the tasks a train env draws
    from the same seeds."""
    train = TaskDistribution.preset("push")
    with make_env(PUSH, distribution="push:test") as env, make_env(PUSH, distribution="push") as tr:
        tasks = [env.reset(seed=1)[1]["task"]] + [env.reset()[1]["task"] for _ in range(9)]
        pool = [tr.reset(seed=1)[1]["task"]] + [tr.reset()[1]["task"] for _ in range(9)]
        assert all(train.contains(t) for t in tasks)
        assert not set(tasks) & set(pool)


@pytest.mark.parametrize(
    "options", [{"tsak": TaskParams()}, {"task": TaskParams(), "seed": 3}, {"difficulty": 1}]
)
def test_unknown_reset_option_keys_raise_value_error(options: dict[str, Any]) -> None:
    with make_env(PUSH) as env:
        env.reset(seed=0)
        bad = sorted(set(options) - {"task"})
        with pytest.raises(ValueError, match=bad[0]):
            env.reset(seed=0, options=options)
        env.reset(seed=0)  # still usable
        env.step(0)


def test_invalid_task_is_refused_with_value_error() -> None:
    with make_env(PUSH) as env:
        with pytest.raises(ValueError, match="object_mass"):
            env.reset(seed=0, options={"task": {"object_mass": 0.0}})
        with pytest.raises(ValueError, match="colour"):
            raw(env).set_task({"colour": "red"})


# -- refused actions -------------------------------------------------------------------------------------


def _state(env: gym.Env[np.ndarray, Any]) -> np.ndarray:
    u = raw(env)
    joints = np.array(
        [s[:2] for s in u.sim.getJointStates(u.robot.body, range(u.sim.getNumJoints(u.robot.body)))]
    )
    pos, orn, lin, ang = u.scene.object_state()
    return np.concatenate([joints.ravel(), pos, orn, lin, ang])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_continuous_actions_are_refused_and_the_env_stays_usable(env_id: str) -> None:
    with make_env(env_id, action_mode="continuous") as env:
        env.reset(seed=0)
        n = env.action_space.shape[0]  # type: ignore[index]
        nan, inf, big = np.zeros(n), np.zeros(n), np.zeros(n)
        nan[0], inf[1], big[0] = np.nan, np.inf, 1.5
        cases: list[tuple[Any, str]] = [
            (nan, "NaN"),
            (inf, "inf"),
            (-inf, "inf"),
            (big, r"\[-1, 1\]"),
            (-big, r"\[-1, 1\]"),
            (np.zeros(n + 1), "shape"),
            (np.zeros((1, n)), "shape"),
            (np.zeros(n - 1), "shape"),
        ]
        before = _state(env)
        for action, message in cases:
            with pytest.raises(ValueError, match=message):
                env.step(action)
        np.testing.assert_array_equal(_state(env), before)  # nothing was simulated
        obs, reward, *_ = env.step(np.zeros(n, dtype=np.float32))
        assert np.isfinite(obs).all() and np.isfinite(reward)
        assert env.observation_space.contains(obs)
        env.step(env.action_space.sample())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_discrete_actions_are_refused_and_the_env_stays_usable(env_id: str) -> None:
    with make_env(env_id) as env:
        env.reset(seed=0)
        n = int(env.action_space.n)  # type: ignore[attr-defined]
        before = _state(env)
        for action in (-1, n, n + 5, 2.5, 1.0, "a", True, False, None, np.array([1, 2]), np.nan):
            with pytest.raises(ValueError, match="action"):
                env.step(action)
        np.testing.assert_array_equal(_state(env), before)
        for ok in (0, np.int64(n - 1), np.array(1), np.array([1])):
            obs, reward, *_ = env.step(ok)
            assert np.isfinite(obs).all() and np.isfinite(reward)


# -- lifecycle ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_raises(env_id: str) -> None:
    bare = RobotTaskEnv(family=raw_family(env_id))
    try:
        with pytest.raises(RuntimeError, match="reset"):
            bare.step(0)
    finally:
        bare.close()
    with make_env(env_id) as env:  # through gym.make, Gymnasium's order check answers first
        with pytest.raises((ResetNeeded, RuntimeError)):
            env.step(0)


def raw_family(env_id: str) -> str:
    family = gym.spec(env_id).kwargs["family"]
    assert isinstance(family, str)
    return family


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_close_twice_is_safe_and_step_after_close_raises(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", render_size=(32, 24))
    env.reset(seed=0)
    env.step(0)
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(0)
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    with pytest.raises(RuntimeError, match="closed"):
        env.render()
    env.close()


def test_closed_env_releases_its_physics_client() -> None:
    env = gym.make(PUSH)
    env.reset(seed=0)
    sim = raw(env).sim
    assert sim.is_connected
    env.close()
    assert not sim.is_connected


def test_step_after_termination_needs_reset() -> None:
    """Push the object off the back of the table: the episode fails and further steps are refused."""
    with make_env(PUSH) as env:
        env.reset(seed=0)
        u = raw(env)
        u.sim.resetBasePositionAndOrientation(u.scene.body, (0.0, 0.0, -1.0), (0, 0, 0, 1))
        _, _, terminated, _, _ = env.step(0)
        assert terminated
        with pytest.raises(RuntimeError, match="reset"):
            u.step(0)
        env.reset()
        env.step(0)


def test_constructor_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="action_mode"):
        gym.make(PUSH, action_mode="joystick")
    with pytest.raises(ValueError, match="render_mode"):
        RobotTaskEnv(family="push", render_mode="human")
    with pytest.raises(ValueError, match="family"):
        RobotTaskEnv(family="juggle")
    with pytest.raises(ValueError, match="no-such"):
        gym.make(PUSH, distribution="no-such")


# -- rendering ---------------------------------------------------------------------------------------------


def test_render_rgb_array_shows_the_arm_pose() -> None:
    with make_env(SLIDE, render_mode="rgb_array", render_size=(160, 120)) as env:
        env.reset(seed=0)
        teleport_ee(env, [-0.2, -0.15, 0.1])
        first = env.render()
        assert isinstance(first, np.ndarray)
        assert first.shape == (120, 160, 3)
        assert first.dtype == np.uint8
        assert first.std() > 10.0, "the image is (nearly) constant"
        assert len(np.unique(first.reshape(-1, 3), axis=0)) > 20
        teleport_ee(env, [0.15, 0.1, 0.2])
        second = env.render()
        assert second is not None and second.shape == first.shape
        changed = np.abs(first.astype(int) - second.astype(int)).max(axis=2) > 30
        assert changed.mean() > 0.005, (
            f"only {changed.mean():.2%} of the pixels changed between two arm poses"
        )
        # rendering does not advance the simulation
        before = _state(env)
        env.render()
        np.testing.assert_array_equal(_state(env), before)


def test_render_default_size_and_discrete_move_changes_the_image() -> None:
    with make_env(PUSH, render_mode="rgb_array") as env:
        env.reset(seed=0)
        first = env.render()
        assert first is not None and first.shape == (360, 480, 3) and first.dtype == np.uint8
        for _ in range(6):
            env.step(action_index(env, "+z"))
        second = env.render()
        assert second is not None
        assert not np.array_equal(first, second)


def test_render_without_render_mode_returns_none() -> None:
    with make_env(PUSH) as env:
        env.reset(seed=0)
        with pytest.warns(UserWarning, match="render_mode"):
            assert raw(env).render() is None
