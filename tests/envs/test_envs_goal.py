"""Goal-conditioned envs: Gymnasium-Robotics Dict observations, a vectorised compute_reward, HER."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import DQN, HerReplayBuffer
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from robot_meta.envs import ENV_IDS, GoalConditionedEnv, RobotTaskEnv
from robot_meta.envs.goal import GOAL_KEYS

REWARD_TYPES = ("dense", "sparse")


def _rollout(
    env: gym.Env[Any, Any], seed: int, actions: list[Any]
) -> list[tuple[Any, float, bool, dict[str, Any]]]:
    """(obs after the step, reward, terminated, info) of each step of a seeded rollout, up to termination."""
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, info))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_dict_observation_follows_gymnasium_robotics(env_id: str) -> None:
    flat = gym.make(env_id)
    env = gym.make(env_id, goal_conditioned=True)
    try:
        space = env.observation_space
        assert isinstance(space, gym.spaces.Dict) and set(space.spaces) == set(GOAL_KEYS)
        obs, info = env.reset(seed=3)
        flat_obs, _ = flat.reset(seed=3)
        assert space.contains(obs)
        base = env.unwrapped
        np.testing.assert_array_equal(obs["desired_goal"], base.task.goal.astype(np.float32))  # type: ignore[attr-defined]
        np.testing.assert_array_equal(obs["achieved_goal"], base.task.achieved_goal().astype(np.float32))  # type: ignore[attr-defined]
        # `observation` is the flat observation without its goal-dependent segments
        layout = flat.unwrapped.observation_layout  # type: ignore[attr-defined]
        keep = np.concatenate(
            [
                np.arange(start, start + n)
                for (name, n), start in zip(layout, np.cumsum([0] + [n for _, n in layout])[:-1], strict=True)
                if not name.startswith("goal_")
            ]
        )
        assert len(keep) == flat_obs.shape[0] - 6
        np.testing.assert_array_equal(obs["observation"], flat_obs[keep])
        assert {"is_success", "distance", "task"} <= set(info)
    finally:
        env.close()
        flat.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action_mode", ["discrete", "continuous"])
def test_checkers_pass(env_id: str, action_mode: str) -> None:
    env = gym.make(env_id, goal_conditioned=True, action_mode=action_mode)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no checker warning either, except the one the flat
            # observation space gets too: gymnasium's note on unbounded (-inf, inf) Box limits
            warnings.filterwarnings("ignore", message=r".*Box observation space (minimum|maximum) value is")
            gym_check_env(env.unwrapped, skip_render_check=True)
            # SB3's checker calls env.compute_reward on the env it is given (gymnasium >= 1.0 wrappers do
            # not forward attributes; HER reaches it through the VecEnv's env_method): the unwrapped env
            sb3_check_env(
                env.unwrapped, warn=True, skip_render_check=True
            )  # compute_reward, single + batched
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("reward_type", REWARD_TYPES)
def test_step_reward_is_compute_reward_of_the_goal_distance(env_id: str, reward_type: str) -> None:
    flat = gym.make(env_id, reward_type=reward_type)
    env = gym.make(env_id, goal_conditioned=True, reward_type=reward_type)
    try:
        rng = np.random.default_rng(0)
        actions = [int(a) for a in rng.integers(env.action_space.n, size=50)]  # type: ignore[attr-defined]
        goal_steps = _rollout(env, 11, actions)
        flat_steps = _rollout(flat, 11, actions)
        assert len(goal_steps) == len(flat_steps)  # the same episode: the physics is unchanged
        base = env.unwrapped
        threshold = base.task.distance_threshold  # type: ignore[attr-defined]
        for (obs, reward, term, info), (_, flat_reward, flat_term, flat_info) in zip(
            goal_steps, flat_steps, strict=True
        ):
            assert reward == base.compute_reward(obs["achieved_goal"], obs["desired_goal"], {})  # type: ignore[attr-defined]
            assert term == flat_term and info["is_success"] == flat_info["is_success"]
            assert info["distance"] == flat_info["distance"]
            # the flat env's success distance (float64), here from the float32 goals
            if reward_type == "dense":
                assert reward == pytest.approx(-info["distance"], abs=1e-6)
                if env_id.endswith(("Reach-v0", "Slide-v0")):  # no shaping term in these families
                    assert reward == pytest.approx(flat_reward, abs=1e-6)
                else:
                    assert reward > flat_reward  # the flat reward also subtracts the reach shaping
            elif abs(info["distance"] - threshold) > 1e-5:
                assert reward == (0.0 if info["distance"] < threshold else -1.0)
        if reward_type == "sparse":
            assert {r for _, r, _, _ in goal_steps} <= {0.0, -1.0}
    finally:
        env.close()
        flat.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_compute_reward_is_vectorised(env_id: str) -> None:
    env = gym.make(env_id, goal_conditioned=True)
    try:
        steps = _rollout(
            env, 5, [int(a) for a in np.random.default_rng(1).integers(env.action_space.n, size=20)]
        )  # type: ignore[attr-defined]
        base = env.unwrapped
        ag = np.stack([s[0]["achieved_goal"] for s in steps])
        dg = np.stack([s[0]["desired_goal"] for s in steps])
        infos = np.array([s[3] for s in steps])
        batch = base.compute_reward(ag, dg, infos)  # type: ignore[attr-defined]
        assert isinstance(batch, np.ndarray) and batch.shape == (len(steps),)
        singles = [base.compute_reward(a, d, i) for a, d, i in zip(ag, dg, infos, strict=True)]  # type: ignore[attr-defined]
        assert batch.tolist() == singles == [s[1] for s in steps]
        assert all(isinstance(r, float) for r in singles)
        # HER's call: empty info dicts; and a (2, n, 3) batch
        assert (base.compute_reward(ag, dg, [{}] * len(steps)) == batch).all()  # type: ignore[attr-defined]
        two = base.compute_reward(np.stack([ag, ag]), np.stack([dg, dg]), None)  # type: ignore[attr-defined]
        assert two.shape == (2, len(steps)) and (two == batch).all()
        assert (base.compute_reward(dg, dg, None) == 0.0).all()  # type: ignore[attr-defined]
        far = base.compute_reward(dg + np.float32(1.0), dg, None)  # type: ignore[attr-defined]
        assert (far < -1.0).all()  # at least the 1 m (planar: sqrt 2) offset
        with pytest.raises(ValueError, match="dimension of 3"):
            base.compute_reward(ag[:, :2], dg[:, :2], infos)  # type: ignore[attr-defined]
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sparse_compute_reward_uses_the_success_radius(env_id: str) -> None:
    env = gym.make(env_id, goal_conditioned=True, reward_type="sparse")
    try:
        base = env.unwrapped
        r = base.task.distance_threshold  # type: ignore[attr-defined]
        goal = np.array([0.1, 0.0, 0.1])
        offsets = np.array([[0.0, 0.0, 0.0], [0.9 * r, 0.0, 0.0], [1.1 * r, 0.0, 0.0], [0.0, 0.0, 1.1 * r]])
        rewards = base.compute_reward(goal + offsets, np.broadcast_to(goal, offsets.shape), None)  # type: ignore[attr-defined]
        planar = env_id.endswith(("Push-v0", "Slide-v0"))
        assert rewards.tolist() == [0.0, 0.0, -1.0, 0.0 if planar else -1.0]
    finally:
        env.close()


def test_only_the_goal_conditioned_env_has_compute_reward() -> None:
    # SB3's checker and HER take any env with compute_reward for a goal env: the flat one has none
    flat, goal = gym.make(ENV_IDS[1]), gym.make(ENV_IDS[1], goal_conditioned=True)
    direct = RobotTaskEnv(family="push", goal_conditioned=True)
    try:
        assert not hasattr(flat.unwrapped, "compute_reward")
        assert type(flat.unwrapped) is RobotTaskEnv and not flat.unwrapped.goal_conditioned  # type: ignore[attr-defined]
        for env in (goal.unwrapped, direct):
            assert isinstance(env, GoalConditionedEnv) and env.goal_conditioned
            assert isinstance(env.observation_space, gym.spaces.Dict)
    finally:
        flat.close()
        goal.close()
        direct.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("reward_type", REWARD_TYPES)
def test_relabelled_goal_reward_equals_the_env_reward_with_that_goal(env_id: str, reward_type: str) -> None:
    """What HER assumes: compute_reward(achieved, g', info) is the reward the env would have given had g'
    been the goal. Checked by replaying the same seeded episode with the goal replaced by a future
    achieved goal (the physics does not depend on the goal)."""
    env = gym.make(env_id, goal_conditioned=True, reward_type=reward_type)
    try:
        base = env.unwrapped
        n = env.action_space.n  # type: ignore[attr-defined]
        actions = [int(a) for a in np.random.default_rng(2).integers(n, size=30)]
        original = _rollout(env, 21, actions)
        k = len(original) - 1  # HER's "future" goal: the last achieved goal of the episode
        relabelled = original[k][0]["achieved_goal"].astype(np.float64)
        env.reset(seed=21)
        base.task.goal = relabelled  # type: ignore[attr-defined]
        for t in range(k + 1):
            obs, reward, terminated, _, _ = env.step(actions[t])
            np.testing.assert_array_equal(obs["achieved_goal"], original[t][0]["achieved_goal"])
            np.testing.assert_array_equal(obs["desired_goal"], relabelled.astype(np.float32))
            expected = base.compute_reward(original[t][0]["achieved_goal"], relabelled, {})  # type: ignore[attr-defined]
            assert reward == expected, t
            if terminated:
                break
        if reward_type == "sparse":
            assert reward == 0.0  # the relabelled goal is reached at step k
    finally:
        env.close()


def test_sb3_her_with_dqn_trains_on_the_goal_conditioned_push_env() -> None:
    env = gym.make("robot_meta/PandaPush-v0", goal_conditioned=True)
    try:
        model = DQN(
            "MultiInputPolicy",
            env,
            replay_buffer_class=HerReplayBuffer,
            replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
            learning_starts=100,
            buffer_size=2_000,
            batch_size=32,
            train_freq=4,
            policy_kwargs={"net_arch": [32, 32]},
            seed=0,
            device="cpu",
        )
        model.learn(300)
        assert model.num_timesteps == 300 and model._n_updates > 0
        buf = model.replay_buffer
        assert isinstance(buf, HerReplayBuffer) and buf.size() == 300
        base = env.unwrapped
        # every stored transition: compute_reward of its (next achieved, desired) goals is the
        # reward the env gave at that step
        n = buf.size()
        stored = base.compute_reward(  # type: ignore[attr-defined]
            buf.next_observations["achieved_goal"][:n, 0],
            buf.observations["desired_goal"][:n, 0],
            [{}] * n,
        )
        np.testing.assert_array_equal(stored.astype(np.float32), buf.rewards[:n, 0])
        # sampled batches relabel goals (with "future", 80 % of them) and recompute their rewards
        samples = buf.sample(256, env=model.get_vec_normalize_env())
        relabelled = samples.observations["desired_goal"].numpy()
        assert samples.rewards.shape == (256, 1)
        original_goals = {tuple(g) for g in buf.observations["desired_goal"][:n, 0].tolist()}
        n_relabelled = sum(tuple(g) not in original_goals for g in relabelled.tolist())
        assert n_relabelled > 100
        obs, _ = env.reset(seed=1)
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(int(action))
    finally:
        env.close()
