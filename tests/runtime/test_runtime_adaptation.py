"""The numpy head rule equals torch's `adapt_head` on identical transitions; guards and ridge."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robot_meta.meta import HeadAdaptation, adapt_head
from robot_meta.runtime import ridge_adapt, successor_flags, td_adapt

HAS_NSTEP = "n_step" in {f.name for f in dataclasses.fields(HeadAdaptation)}


def _episode_set(rng: np.random.Generator, n: int, obs_dim: int = 6, n_actions: int = 5, feat: int = 16):
    """Transitions of a few chained episodes (next_obs[i] == obs[i+1] inside an episode) plus features."""
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    next_obs = obs[1:].copy()
    obs = obs[:-1].copy()
    for cut in (n // 3, 2 * n // 3):  # episode breaks: the next transition starts elsewhere
        obs[cut] = rng.normal(size=obs_dim).astype(np.float32)
    actions = rng.integers(0, n_actions, size=n)
    rewards = rng.normal(size=n).astype(np.float32)
    terminated = np.zeros(n, np.float32)
    terminated[n // 3 - 1] = 1.0
    phi = np.tanh(rng.normal(size=(n, feat))).astype(np.float32)
    phi_next = np.tanh(rng.normal(size=(n, feat))).astype(np.float32)
    w = (rng.normal(size=(n_actions, feat)) * 0.5).astype(np.float32)
    b = rng.normal(size=n_actions).astype(np.float32)
    return obs, next_obs, actions, rewards, terminated, phi, phi_next, w, b


@pytest.mark.parametrize("n", [1, 7, 64])
def test_td_rule_matches_torch_adapt_head(n: int) -> None:
    rng = np.random.default_rng(n)
    _, _, a, r, d, phi, phi_next, w, b = _episode_set(rng, n)
    rule = HeadAdaptation(steps=5, lr=0.3, gamma=0.95, huber_delta=0.7)
    wt, bt = adapt_head(
        torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(phi), torch.from_numpy(a),
        torch.from_numpy(r), torch.from_numpy(phi_next), torch.from_numpy(d), rule,
    )  # fmt: skip
    step = td_adapt(w, b, phi, a, r, phi_next, d, steps=5, lr=0.3, gamma=0.95, huber_delta=0.7)
    assert step.steps == 5 and not step.rolled_back
    assert step.weight.dtype == np.float32
    np.testing.assert_allclose(step.weight, wt.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(step.bias, bt.numpy(), atol=1e-6, rtol=0)
    assert not np.allclose(step.weight, w)  # it did move
    assert step.loss_after < step.loss_before


@pytest.mark.skipif(not HAS_NSTEP, reason="this checkout's HeadAdaptation has no n_step")
@pytest.mark.parametrize("n_step", [2, 5])
def test_nstep_rule_matches_torch(n_step: int) -> None:
    from robot_meta.meta.adaptation import successor_flags as torch_successor

    rng = np.random.default_rng(n_step)
    obs, next_obs, a, r, d, phi, phi_next, w, b = _episode_set(rng, 30)
    succ = successor_flags(obs, next_obs)
    succ_t = torch_successor(torch.from_numpy(obs), torch.from_numpy(next_obs))
    np.testing.assert_array_equal(succ, succ_t.numpy())
    rule = HeadAdaptation(steps=4, lr=0.2, gamma=0.9, huber_delta=1.0, n_step=n_step)  # type: ignore[call-arg]
    wt, bt = adapt_head(
        torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(phi), torch.from_numpy(a),
        torch.from_numpy(r), torch.from_numpy(phi_next), torch.from_numpy(d), rule, successor=succ_t,
    )  # type: ignore[call-arg]  # fmt: skip
    step = td_adapt(
        w,
        b,
        phi,
        a,
        r,
        phi_next,
        d,
        steps=4,
        lr=0.2,
        gamma=0.9,
        huber_delta=1.0,
        n_step=n_step,
        successor=succ,
    )
    np.testing.assert_allclose(step.weight, wt.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(step.bias, bt.numpy(), atol=1e-6, rtol=0)


def test_successor_flags() -> None:
    obs = np.array([[0.0], [1.0], [5.0], [6.0]], np.float32)
    nxt = np.array([[1.0], [2.0], [6.0], [7.0]], np.float32)
    np.testing.assert_array_equal(successor_flags(obs, nxt), [1.0, 0.0, 1.0, 0.0])


def test_empty_set_leaves_head() -> None:
    w, b = np.ones((3, 4), np.float32), np.zeros(3, np.float32)
    e = np.zeros((0, 4), np.float32)
    step = td_adapt(
        w, b, e, np.zeros(0, int), np.zeros(0), e, np.zeros(0), steps=3, lr=0.1, gamma=0.9, huber_delta=1.0
    )
    assert step.steps == 0 and np.array_equal(step.weight, w)


def test_trust_region_rolls_back_the_step_that_leaves_it() -> None:
    rng = np.random.default_rng(0)
    _, _, a, r, d, phi, phi_next, w, b = _episode_set(rng, 32)
    free = td_adapt(w, b, phi, a, r, phi_next, d, steps=10, lr=0.5, gamma=0.9, huber_delta=1.0)
    moved = [0.0]
    for k in range(1, 11):  # distance after k steps
        sk = td_adapt(w, b, phi, a, r, phi_next, d, steps=k, lr=0.5, gamma=0.9, huber_delta=1.0)
        moved.append(float(np.sqrt(np.sum((sk.weight - w) ** 2) + np.sum((sk.bias - b) ** 2))))
    radius = (moved[3] + moved[4]) / 2  # step 4 leaves the region
    guarded = td_adapt(
        w, b, phi, a, r, phi_next, d, steps=10, lr=0.5, gamma=0.9, huber_delta=1.0, trust_radius=radius
    )
    assert guarded.rolled_back and guarded.steps == 3 and "trust region" in guarded.reason
    s3 = td_adapt(w, b, phi, a, r, phi_next, d, steps=3, lr=0.5, gamma=0.9, huber_delta=1.0)
    np.testing.assert_array_equal(guarded.weight, s3.weight)
    assert not free.rolled_back


def test_non_finite_step_is_rolled_back() -> None:
    rng = np.random.default_rng(1)
    _, _, a, r, d, phi, phi_next, w, b = _episode_set(rng, 16)
    with np.errstate(over="ignore", invalid="ignore"):
        step = td_adapt(w, b, phi, a, r, phi_next, d, steps=5, lr=1e39, gamma=0.9, huber_delta=1.0)
    assert step.rolled_back and step.steps == 0 and "non-finite" in step.reason
    np.testing.assert_array_equal(step.weight, w)
    assert np.isfinite(step.weight).all()


def test_ridge_fits_linear_targets() -> None:
    rng = np.random.default_rng(2)
    n, h, n_act = 400, 8, 3
    phi = rng.normal(size=(n, h)).astype(np.float32)
    a = rng.integers(0, n_act, size=n)
    true_w = rng.normal(size=(n_act, h))
    r = (np.einsum("nh,nh->n", phi, true_w[a]) + 0.5).astype(np.float32)
    d = np.ones(n, np.float32)  # terminal: targets are the rewards
    w0, b0 = np.zeros((n_act, h), np.float32), np.zeros(n_act, np.float32)
    step = ridge_adapt(w0, b0, phi, a, r, phi, d, gamma=0.9, huber_delta=1.0, ridge_lambda=1e-6)
    np.testing.assert_allclose(step.weight, true_w, atol=1e-3)
    np.testing.assert_allclose(step.bias, 0.5, atol=1e-3)
    assert step.loss_after < 1e-6 < step.loss_before
    # A strong pull keeps it near the start; the trust region refuses a big jump.
    near = ridge_adapt(w0, b0, phi, a, r, phi, d, gamma=0.9, huber_delta=1.0, ridge_lambda=1e6)
    assert np.abs(near.weight).max() < 0.05
    refused = ridge_adapt(
        w0, b0, phi, a, r, phi, d, gamma=0.9, huber_delta=1.0, ridge_lambda=1e-6, trust_radius=0.1
    )
    assert refused.rolled_back and np.array_equal(refused.weight, w0)
