"""The per-family SB3 DQN tuning table (issue 15): coverage, validity, and that every baseline uses it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from toy_env import ToyEnv

import robot_meta.meta.baselines as baselines
from robot_meta._registration import ENV_FAMILIES
from robot_meta.envs.tasks import TASK_FAMILIES
from robot_meta.meta.baselines import (
    SB3_TUNED,
    SB3DQNConfig,
    load_sb3_dqn,
    make_sb3_dqn,
    sb3_config_for_env,
    train_policy_baseline,
    tuned_sb3_config,
)
from robot_meta.meta.eval import kshot
from robot_meta.meta.eval.baseline_methods import ScratchMethod
from robot_meta.meta.rollout import GymEnvFactory

#: A distinctive row (every value differs from the default) to see which config a baseline was built with.
MARKED = SB3DQNConfig(
    hidden=(48, 40),
    learning_rate=7.7e-4,
    buffer_size=3_333,
    learning_starts=150,
    batch_size=96,
    train_freq=2,
    gradient_steps=-1,
    target_update_interval=123,
    exploration_steps=300,
    exploration_final_eps=0.1,
    gamma=0.97,
    max_grad_norm=5.0,
    obs_stats_steps=100,
)


def test_table_covers_every_family_with_valid_configs() -> None:
    assert set(SB3_TUNED) == set(TASK_FAMILIES)
    for family, cfg in SB3_TUNED.items():
        assert isinstance(cfg, SB3DQNConfig), family
        assert cfg.hidden and all(isinstance(h, int) and h > 0 for h in cfg.hidden), family
        assert 0 < cfg.learning_rate < 1 and 0 < cfg.gamma <= 1, family
        assert cfg.batch_size > 0 and cfg.buffer_size >= cfg.batch_size, family
        assert cfg.learning_starts >= 0 and cfg.train_freq >= 1, family
        assert cfg.gradient_steps >= 1 or cfg.gradient_steps == -1, family
        assert cfg.target_update_interval >= 1 and cfg.exploration_steps >= 1, family
        assert 0 <= cfg.exploration_final_eps <= 1 and cfg.max_grad_norm > 0, family
        assert cfg.obs_stats_steps >= 0, family
        # JSON round trip (the baseline's spec in baseline.json)
        d = cfg.to_dict()
        assert SB3DQNConfig(**{**d, "hidden": tuple(d["hidden"])}) == cfg
        assert tuned_sb3_config(family) is cfg
    for env_id, family in ENV_FAMILIES.items():
        assert sb3_config_for_env(env_id) is SB3_TUNED[family]
    assert sb3_config_for_env("toy") == SB3DQNConfig() == sb3_config_for_env(None)
    with pytest.raises(ValueError, match="unknown task family 'ballet'"):
        tuned_sb3_config("ballet")


@pytest.mark.parametrize("family", sorted(TASK_FAMILIES))
def test_every_row_builds_an_sb3_dqn_with_its_values(family: str) -> None:
    cfg = SB3_TUNED[family]
    model = make_sb3_dqn(gym.wrappers.TimeLimit(ToyEnv(), 20), cfg, seed=0, planned_steps=60_000)
    assert model.learning_rate == cfg.learning_rate and model.batch_size == cfg.batch_size
    assert model.buffer_size == cfg.buffer_size and model.gamma == cfg.gamma
    assert model.target_update_interval == cfg.target_update_interval
    assert model.gradient_steps == cfg.gradient_steps
    assert model.policy_kwargs["net_arch"] == list(cfg.hidden)


def _assert_built_with(model: Any, cfg: SB3DQNConfig) -> None:
    assert model.learning_rate == cfg.learning_rate
    assert model.batch_size == cfg.batch_size
    assert model.buffer_size == cfg.buffer_size
    assert model.learning_starts == cfg.learning_starts
    assert model.gamma == cfg.gamma
    assert model.target_update_interval == cfg.target_update_interval
    assert model.gradient_steps == cfg.gradient_steps
    assert model.exploration_final_eps == cfg.exploration_final_eps
    assert model.policy_kwargs["net_arch"] == list(cfg.hidden)


def test_policy_baseline_defaults_to_its_familys_row_and_explicit_config_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SB3_TUNED, "push", MARKED)
    path = train_policy_baseline(
        "oracle",
        tmp_path / "tuned",
        env_id="robot_meta/PandaPush-v0",
        preset="push",
        steps=200,
        seed=0,
        env=gym.wrappers.TimeLimit(ToyEnv(), 20),  # the toy env stands in for PyBullet
    )
    _assert_built_with(load_sb3_dqn(path), MARKED)
    explicit = dataclasses.replace(MARKED, learning_rate=2e-4, batch_size=32, hidden=(16,))
    path = train_policy_baseline(
        "oracle",
        tmp_path / "explicit",
        env_id="robot_meta/PandaPush-v0",
        preset="push",
        steps=200,
        seed=0,
        config=explicit,
        env=gym.wrappers.TimeLimit(ToyEnv(), 20),
    )
    _assert_built_with(load_sb3_dqn(path), explicit)


def test_scratch_defaults_to_its_familys_row_and_explicit_config_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(SB3_TUNED, "slide", MARKED)
    scratch = ScratchMethod(GymEnvFactory("robot_meta/PandaSlide-v0"))
    # the scratch baseline starts learning after at most 100 transitions (its budgets are small)
    assert scratch.config == dataclasses.replace(MARKED, learning_starts=100)
    assert ScratchMethod(ToyEnv).config == dataclasses.replace(SB3DQNConfig(), learning_starts=100)
    explicit = dataclasses.replace(MARKED, learning_rate=2e-4)
    assert ScratchMethod(GymEnvFactory("robot_meta/PandaSlide-v0"), config=explicit).config == (
        dataclasses.replace(explicit, learning_starts=100)
    )


class _Captured(Exception):
    pass


def test_kshot_baselines_use_the_row_with_the_budgets_overrides_on_top(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(SB3_TUNED, "reach", MARKED)
    seen: dict[str, Any] = {}

    def fake_train(kind: str, out: Path, **kwargs: Any) -> Path:
        seen.update(kwargs)
        raise _Captured

    monkeypatch.setattr(baselines, "train_policy_baseline", fake_train)
    budget = kshot.BUDGETS["small"]
    store = kshot.KShotStore(tmp_path / "cells", tmp_path / "runs")
    with pytest.raises(_Captured):
        kshot.train_baseline(budget, "reach", "oracle", 0, store)
    assert seen["config"] == dataclasses.replace(MARKED, **budget.baseline_overrides)
    assert seen["config"].learning_rate == MARKED.learning_rate  # from the row
    assert seen["config"].learning_starts == budget.baseline_overrides["learning_starts"]  # override wins
