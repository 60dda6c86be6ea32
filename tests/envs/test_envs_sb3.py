"""Stable-Baselines3 trains straight from `gym.make`, as any SB3 user would."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import robot_meta  # noqa: F401  (registers the ids)

sb3 = pytest.importorskip("stable_baselines3")


def test_dqn_learns_a_few_hundred_steps_on_the_discrete_push_env() -> None:
    env = gym.make("robot_meta/PandaPush-v0")
    try:
        model = sb3.DQN(
            "MlpPolicy",
            env,
            learning_starts=50,
            buffer_size=1_000,
            batch_size=32,
            train_freq=4,
            policy_kwargs={"net_arch": [64, 64]},
            seed=0,
            device="cpu",
        )
        model.learn(300)
        assert model.num_timesteps == 300
        assert model._n_updates > 0, "DQN never took a gradient step"
        assert model.replay_buffer is not None and model.replay_buffer.size() == 300
        obs, _ = env.reset(seed=1)
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(int(action))
        env.step(action)
    finally:
        env.close()


def test_sac_learns_a_few_hundred_steps_on_the_continuous_push_env() -> None:
    env = gym.make("robot_meta/PandaPush-v0", action_mode="continuous")
    try:
        model = sb3.SAC(
            "MlpPolicy",
            env,
            learning_starts=50,
            buffer_size=1_000,
            batch_size=32,
            train_freq=4,
            policy_kwargs={"net_arch": [64, 64]},
            seed=0,
            device="cpu",
        )
        model.learn(300)
        assert model.num_timesteps == 300
        assert model._n_updates > 0, "SAC never took a gradient step"
        obs, _ = env.reset(seed=1)
        action, _ = model.predict(obs, deterministic=True)
        assert action.shape == env.action_space.shape
        assert np.all(np.abs(action) <= 1.0)
        env.step(action)
    finally:
        env.close()


def test_ppo_learns_on_the_continuous_pick_and_place_env() -> None:
    env = gym.make("robot_meta/PandaPickPlace-v0", action_mode="continuous")
    try:
        model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=32, n_epochs=2, seed=0, device="cpu")
        model.learn(256)
        assert model.num_timesteps == 256
    finally:
        env.close()
