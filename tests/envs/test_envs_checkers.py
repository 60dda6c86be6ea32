"""Gymnasium's and Stable-Baselines3's env checkers accept every id in both action modes."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from robot_meta.envs import ENV_IDS

CASES = [(env_id, mode) for env_id in ENV_IDS for mode in ("discrete", "continuous")]


@pytest.mark.parametrize(("env_id", "action_mode"), CASES)
def test_gymnasium_check_env(env_id: str, action_mode: str) -> None:
    env = gym.make(env_id, action_mode=action_mode)
    try:
        gym_check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize(("env_id", "action_mode"), CASES)
def test_sb3_check_env(env_id: str, action_mode: str) -> None:
    env = gym.make(env_id, action_mode=action_mode)
    try:
        sb3_check_env(env, warn=True, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env_with_rendering(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", render_size=(64, 48))
    try:
        gym_check_env(env.unwrapped, skip_render_check=False)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_action_spaces_per_mode(env_id: str) -> None:
    discrete = gym.make(env_id)
    continuous = gym.make(env_id, action_mode="continuous")
    try:
        assert isinstance(discrete.action_space, gym.spaces.Discrete)
        assert discrete.action_space.n == len(discrete.unwrapped.actions)  # type: ignore[attr-defined]
        assert isinstance(continuous.action_space, gym.spaces.Box)
        assert (continuous.action_space.low == -1).all() and (continuous.action_space.high == 1).all()
        assert discrete.observation_space == continuous.observation_space
    finally:
        discrete.close()
        continuous.close()
