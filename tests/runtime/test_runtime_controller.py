"""AdaptiveController: N ticks against an env, background adaptation, bad data, rate, Ctrl-C."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_meta.meta import TrainedRun
from robot_meta.runtime import (
    AdaptiveController,
    AdaptivePolicy,
    ControllerConfig,
    device_controller_config,
    run_trials,
)


class LineEnv:
    """A 5-d Gymnasium-shaped env: 10-step episodes, optional NaN observations, slow steps or Ctrl-C."""

    def __init__(self, nan_every: int = 0, step_sleep: float = 0.0, interrupt_at: int = -1) -> None:
        self.rng = np.random.default_rng(0)
        self.t = 0
        self.total = 0
        self.nan_every, self.step_sleep, self.interrupt_at = nan_every, step_sleep, interrupt_at
        self.actions: list[int] = []
        self.resets: list[tuple[int | None, Any]] = []

    def _obs(self) -> np.ndarray:
        obs = self.rng.normal(size=5).astype(np.float32)
        if self.nan_every and self.total % self.nan_every == 0:
            obs[1] = np.nan
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        self.resets.append((seed, options))
        self.t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.total == self.interrupt_at:
            raise KeyboardInterrupt
        if self.step_sleep:
            time.sleep(self.step_sleep)
        self.actions.append(int(action))
        self.t += 1
        self.total += 1
        done = self.t >= 10
        return self._obs(), -1.0, False, done, {"is_success": action == 0}


@pytest.fixture()
def policy(mdqn_export: tuple[TrainedRun, Path]) -> AdaptivePolicy:
    return AdaptivePolicy.load(mdqn_export[1])


def test_runs_n_ticks_and_adapts_in_background(policy: AdaptivePolicy) -> None:
    env = LineEnv()
    report = AdaptiveController(policy, env, ControllerConfig(rate_hz=0, adapt_every=3)).run(ticks=45, seed=7)
    assert report.ticks == 45 and len(env.actions) == 45
    assert len(report.episodes) == 4  # the 5th was cut by the tick budget (not recorded)
    assert env.resets[0][0] == 7 and all(s is None for s, _ in env.resets[1:])
    assert report.adaptations >= 4 and report.rolled_back == 0
    assert all(r.transitions > 0 for r in report.adapt_reports)
    assert report.episodes[1].adaptations >= 1  # episode 2 started with an adapted head
    assert report.missed_ticks == 0 and not report.interrupted
    lat = report.act_latency_us()
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert threading.active_count() == 1 or all(t.name != "robot-meta-adapt" for t in threading.enumerate())


def test_episodes_and_reset_options(policy: AdaptivePolicy) -> None:
    env = LineEnv()
    report = AdaptiveController(policy, env, ControllerConfig(rate_hz=0)).run(
        episodes=3, options={"task": "t1"}
    )
    assert len(report.episodes) == 3 and report.ticks == 30
    assert [o for _, o in env.resets] == [{"task": "t1"}] * 3
    assert report.adaptations == 2  # at the end of episodes 1 and 2, each awaited before the next reset
    assert [e.adaptations for e in report.episodes] == [0, 1, 2]


def test_nan_observations_are_refused_and_the_last_good_action_repeated(
    policy: AdaptivePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    env = LineEnv(nan_every=4)
    report = AdaptiveController(policy, env, ControllerConfig(rate_hz=0)).run(ticks=40)
    assert report.ticks == 40
    assert report.refused_observations >= 9 and report.refused_transitions >= 9
    assert "refused observation" in caplog.text
    assert policy.buffered <= 40 - report.refused_transitions


def test_ctrl_c_stops_cleanly(policy: AdaptivePolicy) -> None:
    env = LineEnv(interrupt_at=12)
    report = AdaptiveController(policy, env, ControllerConfig(rate_hz=0, adapt_every=2)).run(ticks=100)
    assert report.interrupted and report.ticks == 12
    assert all(t.name != "robot-meta-adapt" for t in threading.enumerate())


def test_stop_from_another_thread(policy: AdaptivePolicy) -> None:
    # freeze_gc=False: the start-of-run collection takes ~0.2 s in a process that imported torch.
    ctrl = AdaptiveController(policy, LineEnv(), ControllerConfig(rate_hz=200, freeze_gc=False))
    threading.Timer(0.15, ctrl.stop).start()
    report = ctrl.run(ticks=10_000)
    assert 10 <= report.ticks <= 60 and not report.interrupted


def test_fixed_rate_and_missed_ticks(policy: AdaptivePolicy) -> None:
    t0 = time.perf_counter()
    report = AdaptiveController(policy, LineEnv(), ControllerConfig(rate_hz=200)).run(ticks=40)
    assert time.perf_counter() - t0 >= 36 / 200  # 4 episodes of 10 ticks: 9 periods each (resets re-anchor)
    assert report.missed_ticks <= 10  # 0 on an idle machine; a shared, loaded one preempts us
    slow = AdaptiveController(policy, LineEnv(step_sleep=0.025), ControllerConfig(rate_hz=100)).run(ticks=8)
    assert slow.missed_ticks >= 5  # each 25 ms step overruns two 10 ms periods


def test_run_needs_a_bound(policy: AdaptivePolicy) -> None:
    with pytest.raises(ValueError, match="ticks= or episodes="):
        AdaptiveController(policy, LineEnv()).run()
    with pytest.raises(ValueError, match="fallback_action"):
        AdaptiveController(policy, LineEnv(), ControllerConfig(fallback_action=9))


def test_run_trials_before_after(policy: AdaptivePolicy) -> None:
    report = run_trials(policy, LineEnv(), ["a", "b"], episodes=3, config=ControllerConfig(rate_hz=0))
    assert len(report.trials) == 2 and all(len(t.success_after) == 2 for t in report.trials)
    summary = report.summary()
    assert summary["tasks"] == 2 and 0.0 <= summary["success_before"] <= 1.0
    assert report.trials[0].adaptations == 2


def test_device_controller_config_adapts_as_robot_meta_adapt_does(
    policy: AdaptivePolicy, context_export: tuple[TrainedRun, Path]
) -> None:
    """A head export adapts at each episode's end (2 of 3 episodes follow one), a context export
    re-infers z after every tick too, and the ``--no-adapt`` config never adapts."""
    context = AdaptivePolicy.load(context_export[1])
    counts = {}
    for name, p, adapt in (("head", policy, True), ("context", context, True), ("off", policy, False)):
        cfg = device_controller_config(p, 100.0, adapt=adapt)
        assert cfg.rate_hz == 100.0
        counts[name] = run_trials(p, LineEnv(), ["a"], episodes=3, config=cfg).trials[0].adaptations
    assert counts["head"] == 2
    assert counts["off"] == 0
    # 30 ticks 10 ms apart, a request after each (one still running absorbs the next): far more than 2
    assert counts["context"] >= 10, counts


def test_run_trials_seeds_each_tasks_first_reset(policy: AdaptivePolicy) -> None:
    """``seed=int``: task i's first reset takes seed + i; a sequence gives each task its own (the
    protocol's unit seeds, as ``robot-meta adapt`` passes them); later resets stay unseeded."""
    cfg = ControllerConfig(rate_hz=0)
    env = LineEnv()
    run_trials(policy, env, ["a", "b"], episodes=2, seed=7, config=cfg)
    assert [s for s, _ in env.resets] == [7, None, 8, None]
    env = LineEnv()
    run_trials(policy, env, ["a", "b"], episodes=2, seed=[901, 33], config=cfg)
    assert [s for s, _ in env.resets] == [901, None, 33, None]
    assert [o["task"] for _, o in env.resets] == ["a", "a", "b", "b"]
    with pytest.raises(ValueError, match="3 seeds for 2 tasks"):
        run_trials(policy, LineEnv(), ["a", "b"], episodes=2, seed=[1, 2, 3], config=cfg)


def test_gc_is_frozen_only_during_the_run(policy: AdaptivePolicy) -> None:
    import gc

    frozen: list[int] = []

    class Probe(LineEnv):
        def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
            frozen.append(gc.get_freeze_count())
            return super().step(action)

    AdaptiveController(policy, Probe(), ControllerConfig(rate_hz=0)).run(ticks=5)
    assert min(frozen) > 0 and gc.get_freeze_count() == 0


def test_realtime_priority_is_scoped_to_the_run(policy: AdaptivePolicy) -> None:
    import os

    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    cfg = ControllerConfig(rate_hz=200, realtime_priority=5)
    report = AdaptiveController(policy, LineEnv(), cfg).run(ticks=20)  # logs a warning where not permitted
    assert report.ticks == 20
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    with pytest.raises(ValueError, match="needs rate_hz > 0"):
        ControllerConfig(rate_hz=0, realtime_priority=5)


class LaggingDrive:
    """A robot drive with one tick of actuation latency: ``step(a)`` queues `a` and returns the state
    after the *previous* command (the first step of an episode: the reset state, nothing applied)."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(3)
        self.state = np.zeros(5, dtype=np.float32)
        self.queued: int | None = None
        self.applied: list[tuple[np.ndarray, int, np.ndarray]] = []  # (from, action, to) really played
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        self.state = self.rng.normal(size=5).astype(np.float32)
        self.queued, self.t = None, 0
        return self.state.copy(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = 0.0
        if self.queued is not None:
            before = self.state.copy()
            # a jumpy plant: the policy's action changes from step to step, so a wrong pairing shows
            self.state = (2.0 * self.rng.normal(size=5) + 0.1 * (self.queued + 1)).astype(np.float32)
            self.applied.append((before, self.queued, self.state.copy()))
            reward = -float(self.queued)
        self.queued = int(action)
        self.t += 1
        return self.state.copy(), reward, False, self.t >= 8, {}


def _recorded_transitions(policy: AdaptivePolicy) -> list[tuple[np.ndarray, int, float, np.ndarray]]:
    seen: list[tuple[np.ndarray, int, float, np.ndarray]] = []
    observe = policy.observe

    def spy(obs: Any, action: int, reward: float, next_obs: Any, terminated: bool) -> None:
        seen.append((np.array(obs), int(action), float(reward), np.array(next_obs)))
        observe(obs, action, reward, next_obs, terminated)

    policy.observe = spy  # type: ignore[method-assign]
    return seen


def test_action_latency_pairs_each_transition_with_the_applied_action(policy: AdaptivePolicy) -> None:
    drive = LaggingDrive()
    seen = _recorded_transitions(policy)
    report = AdaptiveController(policy, drive, ControllerConfig(rate_hz=0, action_latency=1)).run(episodes=5)
    assert report.ticks == 40 and report.episodes_run == 5
    assert len(seen) == len(drive.applied) == 5 * 7  # the first step of each episode showed nothing
    for (obs, a, r, nxt), (before, played, after) in zip(seen, drive.applied, strict=True):
        assert a == played and r == -float(played)
        np.testing.assert_array_equal(obs, before)
        np.testing.assert_array_equal(nxt, after)
    assert len({a for _, a, _, _ in seen}) > 1


def test_without_latency_compensation_a_lagging_drive_gets_the_wrong_actions(policy: AdaptivePolicy) -> None:
    drive = LaggingDrive()
    seen = _recorded_transitions(policy)
    AdaptiveController(policy, drive, ControllerConfig(rate_hz=0)).run(episodes=5)
    assert len(seen) == 40  # every step stored, including the 5 in which nothing had acted
    firsts = seen[::8]
    assert all(r == 0.0 and np.array_equal(o, n) for o, _, r, n in firsts)
    later = [s for i, s in enumerate(seen) if i % 8]
    mismatched = sum(a != played for (_, a, _, _), (_, played, _) in zip(later, drive.applied, strict=True))
    assert mismatched > 0  # the stored action is the one sent, not the one the outcome shows


@pytest.mark.parametrize("bad", [-1, 101])
def test_action_latency_must_be_in_range(bad: int) -> None:
    with pytest.raises(ValueError, match="action_latency"):
        ControllerConfig(action_latency=bad)
