"""Replay buffers, support banks, DQN targets/losses/schedules and the config dataclasses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robot_meta.meta import (
    ContextDQNConfig,
    LinearSchedule,
    MetaDQNConfig,
    ReplayBuffer,
    ReptileConfig,
    Transitions,
    config_class,
    double_dqn_targets,
    epsilon_greedy,
    make_config,
    parse_override,
    td_loss,
)
from robot_meta.meta.replay import SupportBank


def _transitions(start: int, n: int, obs_dim: int = 2) -> Transitions:
    ids = np.arange(start, start + n)
    return Transitions(
        np.repeat(ids[:, None], obs_dim, 1).astype(np.float32),
        ids.astype(np.int64),
        ids.astype(np.float32),
        np.repeat(ids[:, None] + 0.5, obs_dim, 1).astype(np.float32),
        (ids % 2).astype(np.float32),
    )


def test_replay_ring_buffer_keeps_the_latest_and_round_trips() -> None:
    buf = ReplayBuffer(capacity=5, obs_dim=2)
    buf.add(_transitions(0, 3))
    buf.add(_transitions(3, 4))
    assert len(buf) == 5
    np.testing.assert_array_equal(buf.all().actions, [2, 3, 4, 5, 6])
    buf.add(_transitions(100, 12))  # more than the capacity at once
    np.testing.assert_array_equal(buf.all().actions, [107, 108, 109, 110, 111])
    other = ReplayBuffer(capacity=5, obs_dim=2)
    other.load_state_dict(buf.state_dict())
    for f in Transitions._fields:
        np.testing.assert_array_equal(getattr(other.all(), f), getattr(buf.all(), f))
    s1, s2 = buf.sample(50, np.random.default_rng(3)), other.sample(50, np.random.default_rng(3))
    np.testing.assert_array_equal(s1.obs, s2.obs)
    assert set(s1.actions.tolist()) <= set(range(107, 112))
    np.testing.assert_array_equal(s1.obs[:, 0], s1.actions)  # fields of one transition stay together
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2).sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(4, 2).load_state_dict(buf.state_dict())


def _episode(start: float, n: int, *, terminal: bool) -> Transitions:
    """One chained episode: obs start, start+1, ...; reward = 10 * its obs; last step terminal if asked."""
    obs = start + np.arange(n, dtype=np.float32)
    term = np.zeros(n, np.float32)
    term[-1] = float(terminal)
    return Transitions(obs[:, None], np.zeros(n, np.int64), 10 * obs, obs[:, None] + 1, term)


def test_nstep_sampling_sums_along_episodes_and_stops_at_their_ends() -> None:
    g = 0.5
    buf = ReplayBuffer(capacity=16, obs_dim=1)
    buf.add(_episode(0.0, 4, terminal=True))  # obs 0..3, reward 0, 10, 20, 30; step 3 terminal
    buf.add(_episode(100.0, 3, terminal=False))  # obs 100..102, truncated (no terminal)
    tr, disc = buf.sample_nstep(200, 3, g, np.random.default_rng(0))
    expected = {  # obs -> (n-step return, next_obs at the window's end, terminated, discount)
        0.0: (0 + g * 10 + g**2 * 20, 3.0, 0.0, g**3),
        1.0: (10 + g * 20 + g**2 * 30, 4.0, 1.0, g**3),
        2.0: (20 + g * 30, 4.0, 1.0, g**2),  # the terminal step ends the window
        3.0: (30, 4.0, 1.0, g),
        100.0: (1000 + g * 1010 + g**2 * 1020, 103.0, 0.0, g**3),  # not chained to episode 1's end
        101.0: (1010 + g * 1020, 103.0, 0.0, g**2),  # the newest transition ends the window
        102.0: (1020, 103.0, 0.0, g),
    }
    assert set(tr.obs[:, 0].tolist()) == set(expected)
    for i, o in enumerate(tr.obs[:, 0]):
        ret, nxt, term, d = expected[float(o)]
        assert tr.rewards[i] == pytest.approx(ret) and tr.next_obs[i, 0] == nxt
        assert tr.terminated[i] == term and disc[i] == pytest.approx(d)
    one, d1 = buf.sample_nstep(50, 1, g, np.random.default_rng(1))
    np.testing.assert_array_equal(one.rewards, 10 * one.obs[:, 0])
    np.testing.assert_array_equal(d1, np.full(50, g, np.float32))
    with pytest.raises(ValueError, match="n_step must be >= 1"):
        buf.sample_nstep(1, 0, g, np.random.default_rng(0))


def test_start_fraction_draws_episode_starts_and_keeps_their_nstep_windows() -> None:
    """``start_fraction`` replaces that share of the draws by their episode's first transition (the
    decision step); the windows stay the episode's own; at 0 the draws are bitwise the default's."""
    g = 0.9
    buf = ReplayBuffer(capacity=64, obs_dim=1)
    for base in (0.0, 100.0, 200.0):  # three 10-step episodes, starts 0, 100, 200
        buf.add(_episode(base, 10, terminal=True))
    plain, _ = buf.sample_nstep(4000, 3, g, np.random.default_rng(0))
    again, _ = buf.sample_nstep(4000, 3, g, np.random.default_rng(0), start_fraction=0.0)
    np.testing.assert_array_equal(plain.obs, again.obs)
    tr, disc = buf.sample_nstep(4000, 3, g, np.random.default_rng(0), start_fraction=0.5)
    starts = np.isin(tr.obs[:, 0], (0.0, 100.0, 200.0))
    # uniform: 1 in 10 draws is a start; with half the draws moved to their start: 0.5 + 0.5 / 10
    assert np.mean(np.isin(plain.obs[:, 0], (0.0, 100.0, 200.0))) == pytest.approx(0.1, abs=0.02)
    assert starts.mean() == pytest.approx(0.55, abs=0.03)
    # a start's window is its own episode's first three steps: rewards 10 * obs
    o = tr.obs[starts, 0]
    np.testing.assert_allclose(tr.rewards[starts], 10 * (o + g * (o + 1) + g**2 * (o + 2)), rtol=1e-6)
    np.testing.assert_array_equal(tr.next_obs[starts, 0], o + 3)
    assert np.all(disc[starts] == np.float32(g**3))
    with pytest.raises(ValueError, match="start_fraction must be in"):
        buf.sample_nstep(1, 3, g, np.random.default_rng(0), start_fraction=1.5)


def test_nstep_sampling_follows_the_ring_across_the_wrap() -> None:
    buf = ReplayBuffer(capacity=5, obs_dim=1)
    buf.add(_episode(0.0, 3, terminal=False))
    buf.add(_episode(3.0, 4, terminal=False))  # chained to the first; overwrites obs 0 and 1
    tr, disc = buf.sample_nstep(100, 4, 1.0, np.random.default_rng(0))
    for i, o in enumerate(tr.obs[:, 0]):
        window = np.arange(o, min(o + 4, 7))  # obs 2..6 remain, the window stops at the newest
        assert tr.rewards[i] == pytest.approx(10 * window.sum()) and disc[i] == 1.0
        assert tr.next_obs[i, 0] == window[-1] + 1


def test_support_bank_pads_masks_and_round_trips() -> None:
    bank = SupportBank(capacity=2, set_size=4, obs_dim=2)
    bank.add(_transitions(0, 2))
    bank.add(_transitions(10, 6))  # keeps the last 4
    bank.add(_transitions(20, 3))  # evicts the first set
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(20):
        tr, mask = bank.sample(rng)
        n = int(mask.sum())
        seen.add(tuple(tr.actions[:n].tolist()))
        assert (tr.actions[n:] == 0).all() and (mask[:n] == 1).all()
    assert seen == {(12, 13, 14, 15), (20, 21, 22)}
    other = SupportBank(2, 4, 2)
    other.load_state_dict(bank.state_dict())
    a, b = bank.sample(np.random.default_rng(5)), other.sample(np.random.default_rng(5))
    np.testing.assert_array_equal(a[0].obs, b[0].obs)
    np.testing.assert_array_equal(a[1], b[1])


def test_double_dqn_targets_and_huber_td_loss() -> None:
    online = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    target = torch.tensor([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]])
    y = double_dqn_targets(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), online, target, gamma=0.5)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 * 20.0, 2.0]))  # target's value of online's argmax
    q = torch.tensor([[0.0, 4.0], [1.0, 1.0]], requires_grad=True)
    loss = td_loss(q, torch.tensor([1, 0]), torch.tensor([1.0, 0.5]), huber_delta=1.0)
    torch.testing.assert_close(loss, torch.tensor((1.0 * (3.0 - 0.5) + 0.5 * 0.25) / 2))


def test_linear_schedule_and_epsilon_greedy() -> None:
    sched = LinearSchedule(1.0, 0.1, 10)
    assert (
        sched(0) == 1.0 and sched(5) == pytest.approx(0.55) and sched(10) == sched(100) == pytest.approx(0.1)
    )
    rng = np.random.default_rng(0)
    q = np.array([0.0, 2.0, 1.0])
    assert all(epsilon_greedy(q, 0.0, rng) == 1 for _ in range(20))
    picks = [epsilon_greedy(q, 1.0, rng) for _ in range(300)]
    assert set(picks) == {0, 1, 2}


def test_config_round_trip_and_budgets() -> None:
    for algo in ("meta-dqn", "reptile", "context"):
        smoke, full = make_config(algo, budget="smoke"), make_config(algo, budget="full")
        assert smoke.algo == algo and smoke.budget == "smoke"
        assert smoke.meta_iterations * smoke.meta_batch_size < full.meta_iterations * full.meta_batch_size
        cls = config_class(algo)
        again = cls.from_dict(json.loads(json.dumps(full.to_dict())))
        assert again == full
    cfg = make_config("meta-dqn", budget="small", overrides={"hidden": [32, 32], "inner_lr": 1})
    assert isinstance(cfg, MetaDQNConfig) and cfg.hidden == (32, 32) and cfg.inner_lr == 1.0
    assert parse_override(MetaDQNConfig, "first_order=true") == ("first_order", True)
    assert parse_override(ReptileConfig, "meta_lr_end=0") == ("meta_lr_end", 0.0)
    assert parse_override(ContextDQNConfig, "preset=push") == ("preset", "push")


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (MetaDQNConfig, "num_tasks", 0),
        (MetaDQNConfig, "lr", -1e-3),
        (MetaDQNConfig, "inner_steps", 0),
        (MetaDQNConfig, "inner_lr", 0.0),
        (MetaDQNConfig, "gamma", 1.2),
        (MetaDQNConfig, "hidden", ()),
        (MetaDQNConfig, "meta_batch_size", 2.5),
        (MetaDQNConfig, "first_order", "yes"),
        (ReptileConfig, "inner_lr", -1.0),
        (ReptileConfig, "meta_lr_start", 1.5),
        (ContextDQNConfig, "latent_dim", 0),
        (ContextDQNConfig, "encoder_hidden", (8, 0)),
        (ContextDQNConfig, "budget", "huge"),
    ],
)
def test_bad_config_values_raise_naming_the_field(cls: type, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}="):
        cls(**{field: value})


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        config_class("ppo")
    with pytest.raises(ValueError, match="no field 'lrr'"):
        parse_override(MetaDQNConfig, "lrr=1")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override(MetaDQNConfig, "lr")
    with pytest.raises(ValueError, match="unknown field"):
        MetaDQNConfig.from_dict({"bogus": 1})


def test_local_backend_maps_in_order_and_unknown_backends_are_refused() -> None:
    from robot_meta.distributed import BACKENDS, get_backend

    backend = get_backend("local")
    assert backend.map(lambda x: x * x, range(5)) == [0, 1, 4, 9, 16]
    backend.close()
    assert "local" in BACKENDS
    with pytest.raises(ValueError, match="unknown execution backend 'nope'"):
        get_backend("nope")


def test_advantage_learning_widens_the_action_gap_by_alpha() -> None:
    from robot_meta.meta.dqn import advantage_learning_targets

    y = torch.tensor([1.0, 1.0, 1.0])
    q_target = torch.tensor([[0.0, 2.0, -1.0], [0.0, 2.0, -1.0], [5.0, 5.0, 0.0]])
    actions = torch.tensor([1, 2, 0])
    out = advantage_learning_targets(y, q_target, actions, alpha=0.5)
    # greedy action: unchanged; action 2 is 3 below the best: 1 - 0.5 * 3; a tie for best: unchanged
    torch.testing.assert_close(out, torch.tensor([1.0, -0.5, 1.0]))
    torch.testing.assert_close(advantage_learning_targets(y, q_target, actions, alpha=0.0), y)
