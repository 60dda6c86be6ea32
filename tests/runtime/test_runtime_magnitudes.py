"""Finite but absurd runtime inputs: refused at `observe`, rolled back at `adapt`, z kept in a trust region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_meta.meta import TrainedRun
from robot_meta.runtime import AdaptConfig, AdaptivePolicy, TransitionError
from robot_meta.runtime.policy import MAX_ABS_INPUT


def _obs(policy: AdaptivePolicy, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=policy.obs_dim).astype(np.float32)


@pytest.mark.parametrize("flag", ["yes", "", None, 2, -1, 0.5, [True]])
def test_terminated_must_be_a_bool_or_0_1(mdqn_export: tuple[TrainedRun, Path], flag: object) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    o = _obs(policy)
    with pytest.raises(TransitionError, match="terminated"):
        policy.observe(o, 0, 0.0, o, flag)  # type: ignore[arg-type]
    assert policy.buffered == 0


@pytest.mark.parametrize("flag", [True, False, 0, 1, np.bool_(True), np.int64(1)])
def test_terminated_accepts_bools_and_0_1(mdqn_export: tuple[TrainedRun, Path], flag: object) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    o = _obs(policy)
    policy.observe(o, 0, 0.0, o, flag)  # type: ignore[arg-type]
    assert policy.buffered == 1


@pytest.mark.parametrize("reward", [1e30, -1e7, MAX_ABS_INPUT * 1.01])
def test_absurd_rewards_are_refused(mdqn_export: tuple[TrainedRun, Path], reward: float) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    o = _obs(policy)
    with pytest.raises(TransitionError, match=r"reward .* exceeds the bound"):
        policy.observe(o, 0, reward, o, False)
    policy.observe(o, 0, MAX_ABS_INPUT, o, False)  # the bound itself is accepted
    assert policy.buffered == 1


def test_absurd_observations_are_refused(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    o = _obs(policy)
    big = o.copy()
    big[0] = 1e20
    with pytest.raises(TransitionError, match="next_obs has an entry of magnitude"):
        policy.observe(o, 0, 0.0, big, False)
    with pytest.raises(TransitionError, match="obs has an entry of magnitude"):
        policy.observe(big, 0, 0.0, o, False)
    assert policy.buffered == 0


def test_adapt_rolls_back_when_the_loss_is_absurd(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1], config=AdaptConfig(max_loss=1e-9, trust_region=1e9))
    w0, b0 = policy.head
    for i in range(8):
        policy.observe(_obs(policy, i), i % policy.n_actions, 100.0, _obs(policy, i + 1), False)
    report = policy.adapt()
    assert report.rolled_back and not report.applied and "TD loss" in report.reason
    w, b = policy.head
    assert np.array_equal(w, w0) and np.array_equal(b, b0)


def test_context_z_outside_the_trust_region_is_not_applied(context_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(context_export[1], config=AdaptConfig(z_trust_region=1e-12))
    z0 = policy.z
    assert z0 is not None
    for i in range(8):
        policy.observe(_obs(policy, i), i % policy.n_actions, 1.0, _obs(policy, i + 1), False)
    report = policy.adapt()
    if report.rolled_back:  # the encoder moved z at all: the tiny radius refuses it
        assert not report.applied and "trust radius" in report.reason
        assert np.array_equal(policy.z, z0)
    loose = AdaptivePolicy.load(context_export[1])
    for i in range(8):
        loose.observe(_obs(loose, i), i % loose.n_actions, 1.0, _obs(loose, i + 1), False)
    assert loose.adapt().applied


@pytest.mark.parametrize("field", ["z_trust_region", "max_abs_input", "max_loss"])
def test_adapt_config_bounds_must_be_positive_and_finite(field: str) -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=field):
            AdaptConfig(**{field: bad})
