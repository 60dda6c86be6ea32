"""Hindsight goal relabelling: the relabelled transitions are the ones the env produces for the new goal."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import pytest

import robot_meta  # noqa: F401  (registers the env ids)
from robot_meta.meta.hindsight import HindsightGoals
from robot_meta.meta.replay import ReplayBuffer, Transitions
from robot_meta.meta.rollout import run_episode


def _play(env: gym.Env, seed: int, actions: Sequence[int], goal: np.ndarray | None = None) -> Transitions:
    """One episode from ``reset(seed)`` playing `actions` then action 0; the task's goal replaced by `goal`."""
    obs, _ = env.reset(seed=seed)
    if goal is not None:
        env.unwrapped.task.goal = np.asarray(goal, np.float64)
    steps = iter(actions)
    rows: list[tuple[np.ndarray, int, float, np.ndarray, float]] = []
    while True:
        a = next(steps, 0)
        next_obs, r, term, trunc, _ = env.step(a)
        rows.append((obs, a, float(r), next_obs, float(term)))
        obs = next_obs
        if term or trunc:
            break
    o, a_, r_, n, t = zip(*rows, strict=True)
    return Transitions(
        np.stack(o).astype(np.float32),
        np.array(a_, np.int64),
        np.array(r_, np.float32),
        np.stack(n).astype(np.float32),
        np.array(t, np.float32),
    )


@pytest.mark.parametrize(
    ("env_id", "actions"),
    [
        ("robot_meta/PandaSlide-v0", [11]),  # strike 0.9 m/s, then hold
        ("robot_meta/PandaPush-v0", [1] * 12),  # shove along +x (reward has a reach-shaping term)
    ],
)
def test_relabelled_transitions_equal_the_env_with_that_goal(env_id: str, actions: list[int]) -> None:
    env = gym.make(env_id)
    try:
        goals = HindsightGoals.for_env(env)
        played = _play(env, 4, actions)
        target = goals.achieved_goal(played.next_obs[len(played) // 2])  # where the object was mid-episode
        replayed = _play(env, 4, actions, goal=target)  # the same physics; the env judges the new goal
    finally:
        env.close()
    n = len(replayed)  # ends early if the new goal is reached (relabelled success terminates)
    assert 0 < n <= len(played)
    new = np.broadcast_to(target, (n, 3))
    old = played.obs[:n, goals.goal]
    np.testing.assert_allclose(goals.with_goal(played.next_obs[:n], new), replayed.next_obs, atol=2e-6)
    np.testing.assert_allclose(goals.with_goal(played.obs[:n], new)[1:], replayed.obs[1:], atol=2e-6)
    rewards, term = goals.outcome(played.rewards[:n], played.terminated[:n], played.next_obs[:n], old, new)
    np.testing.assert_allclose(rewards, replayed.rewards, atol=2e-5)
    np.testing.assert_array_equal(term, replayed.terminated)
    # the relabelled rewards differ from the stored ones: the check above is not vacuous
    assert np.abs(rewards - played.rewards[:n]).max() > 0.02


def test_a_strike_relabelled_with_where_it_stopped_is_a_terminal_success() -> None:
    env = gym.make("robot_meta/PandaSlide-v0")
    try:
        goals = HindsightGoals.for_env(env)
        played = _play(env, 1, [13])  # strike 1.1 m/s
    finally:
        env.close()
    assert played.terminated.sum() == 0  # the stored goal was missed: the episode ran to its time limit
    rest = goals.achieved_goal(played.next_obs[-1])
    new = np.broadcast_to(rest, (len(played), 3))
    rewards, term = goals.outcome(
        played.rewards, played.terminated, played.next_obs, played.obs[:, goals.goal], new
    )
    first = int(np.argmax(term))
    assert term[first] == 1.0 and first > 0  # success once the puck rests within the radius of its rest point
    assert rewards[first] > -0.07


def _buffer_of_two_episodes() -> tuple[ReplayBuffer, HindsightGoals, Transitions, Transitions]:
    env = gym.make("robot_meta/PandaSlide-v0")
    try:
        goals = HindsightGoals.for_env(env)
        first = _play(env, 2, [11])
        second = _play(env, 3, [14])
    finally:
        env.close()
    buf = ReplayBuffer(400, first.obs.shape[1])
    buf.add(first)
    buf.add(second)
    return buf, goals, first, second


def test_sample_nstep_relabels_with_a_later_goal_of_the_same_episode() -> None:
    buf, goals, first, second = _buffer_of_two_episodes()
    n1 = len(first)
    out, disc = buf.sample_nstep(512, 5, 0.9, np.random.default_rng(0), (goals, 1.0))
    # replay the draws: which stored transition each sample starts from
    idx = np.random.default_rng(0).integers(0, len(buf), size=512)
    new_goal = out.obs[:, goals.goal]
    for i, g in zip(idx, new_goal, strict=True):
        ep, lo = (first, 0) if i < n1 else (second, n1)
        # from the sample's own step to its episode's end
        achieved = goals.achieved_goal(ep.next_obs[i - lo :])
        assert np.isclose(achieved, g, atol=1e-7).all(axis=1).any()
    np.testing.assert_allclose(out.obs[:, goals.offset], new_goal - out.obs[:, goals.achieved], atol=1e-6)
    np.testing.assert_allclose(
        out.next_obs[:, goals.offset], new_goal - out.next_obs[:, goals.achieved], atol=1e-6
    )
    # no stored transition is terminal (both goals were missed), so every terminal window here is a
    # relabelled success, and some of them end before their 5 steps
    assert first.terminated.sum() == 0 and second.terminated.sum() == 0
    assert (out.terminated == 1.0).mean() > 0.1
    assert (disc[out.terminated == 1.0] > 0.9**5).any()


def test_sample_nstep_without_hindsight_is_unchanged_and_fraction_zero_keeps_goals() -> None:
    buf, goals, _, _ = _buffer_of_two_episodes()
    plain, d_plain = buf.sample_nstep(64, 10, 0.98, np.random.default_rng(5))
    none, d_none = buf.sample_nstep(64, 10, 0.98, np.random.default_rng(5), (goals, 0.0))
    for a, b in zip(plain, none, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(d_plain, d_none)


def test_refused_where_the_goal_cannot_be_relabelled() -> None:
    reach = gym.make("robot_meta/PandaReach-v0")
    decided = gym.make("robot_meta/PandaSlide-v0", end_when_decided=True)
    try:
        with pytest.raises(ValueError, match="achieved goal"):
            HindsightGoals.for_env(reach)
        with pytest.raises(ValueError, match="end_when_decided"):
            HindsightGoals.for_env(decided)
    finally:
        reach.close()
        decided.close()
    buf, goals, _, _ = _buffer_of_two_episodes()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        buf.sample_nstep(4, 3, 0.9, np.random.default_rng(0), (goals, 1.5))


def test_run_episode_transitions_feed_the_relabelling() -> None:
    """The trainer's own rollout output is what the buffer relabels (same layout, same goal segment)."""
    env = gym.make("robot_meta/PandaSlide-v0")
    try:
        goals = HindsightGoals.for_env(env)
        tr, _ = run_episode(env, env.unwrapped.get_task(), 0, lambda _o: 12)
    finally:
        env.close()
    np.testing.assert_allclose(tr.obs[:, goals.goal], np.broadcast_to(tr.obs[0, goals.goal], (len(tr), 3)))


def test_sample_outcome_reads_the_episode_horizon_steps_later_and_never_past_its_end() -> None:
    buf, _, first, second = _buffer_of_two_episodes()
    n1, n2 = len(first), len(second)
    for horizon in (1, 7, 200):
        drawn, later = buf.sample_outcome(256, horizon, np.random.default_rng(3))
        idx = np.random.default_rng(3).integers(0, len(buf), size=256)
        for k, i in enumerate(idx):
            ep, lo, end = (first, 0, n1 - 1) if i < n1 else (second, n1, n1 + n2 - 1)
            np.testing.assert_array_equal(drawn.obs[k], ep.obs[i - lo])
            np.testing.assert_array_equal(later[k], ep.next_obs[min(i + horizon - 1, end) - lo])
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        buf.sample_outcome(4, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty ReplayBuffer"):
        ReplayBuffer(10, 3).sample_outcome(4, 5, np.random.default_rng(0))


def test_the_outcome_model_takes_the_goal_layout_and_names_its_own_setting() -> None:
    reach = gym.make("robot_meta/PandaReach-v0")
    decided = gym.make("robot_meta/PandaSlide-v0", end_when_decided=True)
    try:
        with pytest.raises(ValueError, match="outcome_weight=0"):
            HindsightGoals.for_env(reach, "outcome_weight")
        # an outcome model only reads the achieved goal: episodes that end when decided are fine
        goals = HindsightGoals.for_env(decided, "outcome_weight")
        names = [name for name, _ in decided.unwrapped.observation_layout]
        assert goals.achieved == slice(6, 9) and names[2] == "object_position"
    finally:
        reach.close()
        decided.close()
