"""Short runtime soak (the long one is benchmarks/soak_runtime.py): 3,000 ticks, adaptation every 10.

A cheap Gymnasium-shaped plant (no physics) whose task changes at every reset; the controller runs
at 1 kHz with background adaptation. Asserted: no exception (none raised, none logged by the
adapter thread), the policy's buffer never exceeds its capacity, the report's bounded records and
totals agree, and RSS growth stays far below a generous bound.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from robot_meta.meta import TrainedRun
from robot_meta.runtime import AdaptConfig, AdaptiveController, AdaptivePolicy, ControllerConfig

TICKS = 3_000
RATE_HZ = 1_000.0
HISTORY = 50
CAPACITY = 256
#: Generous: the run itself needs well under 1 MB (3,000 act timings, 50 records of each kind).
BOUND_RSS_MB = 32.0


class TaskPlant:
    """Gymnasium-shaped, no physics: 20-40 tick episodes, a new task at every reset, reward depends on it."""

    def __init__(self, policy: AdaptivePolicy, obs_dim: int, reset_on_task_change: bool) -> None:
        self.policy, self.obs_dim = policy, obs_dim
        self.reset_on_task_change = reset_on_task_change
        self.rng = np.random.default_rng(0)
        self.t = self.length = self.ticks = 0
        self.task = -1
        self.task_changes = self.completed = 0
        self.max_buffered = 0
        self.actions_seen: set[int] = set()

    def _obs(self) -> np.ndarray:
        return self.rng.standard_normal(self.obs_dim).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if self.task >= 0:
            self.task_changes += 1
            if self.reset_on_task_change:  # the deployment knows a new part/surface came in
                self.policy.reset_adaptation()
        self.task += 1
        self.t, self.length = 0, int(self.rng.integers(20, 41))
        return self._obs(), {"task": self.task}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        self.ticks += 1
        self.actions_seen.add(int(action))
        self.max_buffered = max(self.max_buffered, self.policy.buffered)
        obs = self._obs()
        reward = float(-abs(obs[0] - 0.2 * (self.task % 5)) - 0.05 * (action == self.task % 4))
        done = self.t >= self.length
        self.completed += done
        return obs, reward, False, done, {"is_success": reward > -0.1, "task": self.task}


@pytest.mark.parametrize("reset_on_task_change", [True, False], ids=["reset-per-task", "keep-adapting"])
def test_soak_3000_ticks_with_background_adaptation(
    mdqn_export: tuple[TrainedRun, Path], caplog: pytest.LogCaptureFixture, reset_on_task_change: bool
) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1], AdaptConfig(buffer_capacity=CAPACITY))
    plant = TaskPlant(policy, policy.obs_dim, reset_on_task_change)
    proc = psutil.Process()
    cfg = ControllerConfig(rate_hz=RATE_HZ, adapt_every=10, history=HISTORY)
    warm = AdaptiveController(policy, plant, ControllerConfig(rate_hz=0, adapt_every=10)).run(ticks=300)
    plant.ticks = plant.completed = 0
    rss0 = proc.memory_info().rss
    with caplog.at_level(logging.ERROR, logger="robot_meta"):
        t0 = time.perf_counter()
        report = AdaptiveController(policy, plant, cfg).run(ticks=TICKS, seed=1)
        wall = time.perf_counter() - t0
    growth_mb = (proc.memory_info().rss - rss0) / 2**20

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # the adapter never failed
    assert report.ticks == plant.ticks == TICKS and not report.interrupted
    assert report.refused_observations == report.refused_transitions == 0
    # Episodes: all completed ones counted, only the latest HISTORY kept, in order.
    assert report.episodes_run == plant.completed > TICKS // 40
    assert len(report.episodes) == HISTORY
    assert [e.index for e in report.episodes] == list(
        range(report.episodes_run - HISTORY, report.episodes_run)
    )
    assert sum(e.ticks for e in report.episodes) <= TICKS
    # Adaptation: roughly one per 10 ticks (requests coalesce while one runs), totals vs kept reports.
    assert TICKS // 40 < report.adapt_calls <= TICKS // 10 + report.episodes_run
    assert len(report.adapt_reports) == HISTORY
    assert report.adaptations + sum(not r.applied for r in report.adapt_reports) <= report.adapt_calls
    assert report.adaptations >= report.adapt_calls - report.episodes_run  # only post-reset calls may skip
    assert report.rolled_back == 0
    assert all(0 < r.transitions <= policy.support_size for r in report.adapt_reports if r.applied)
    # Bounded buffer; without resets it fills up and stays full.
    assert plant.max_buffered <= CAPACITY
    if reset_on_task_change:
        assert plant.task_changes >= report.episodes_run and policy.adaptations <= plant.t // 10 + 1
        assert policy.buffered <= plant.t  # only the current task's transitions
    else:
        assert policy.buffered == CAPACITY and policy.adaptations == warm.adaptations + report.adaptations
    # Timing: the schedule was kept (a missed tick still costs its period), act stayed cheap.
    period = 1.0 / RATE_HZ
    assert wall >= (TICKS + report.missed_ticks - report.episodes_run - 1) * period * 0.95
    assert report.max_lateness_s >= 0 and len(report.act_seconds) == TICKS
    assert growth_mb < BOUND_RSS_MB, f"RSS grew {growth_mb:.1f} MB in {TICKS} ticks"


def test_history_must_be_positive() -> None:
    with pytest.raises(ValueError, match="history"):
        ControllerConfig(history=0)


def test_an_episode_bounded_run_keeps_every_episode(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    plant = TaskPlant(policy, policy.obs_dim, reset_on_task_change=False)
    report = AdaptiveController(policy, plant, ControllerConfig(rate_hz=0, history=3)).run(episodes=8)
    assert report.episodes_run == len(report.episodes) == 8
    assert [e.index for e in report.episodes] == list(range(8))
    assert len(report.adapt_reports) == 3 and report.adapt_calls == 7


def test_the_adaptation_thread_runs_just_below_a_realtime_control_thread(
    mdqn_export: tuple[TrainedRun, Path],
) -> None:
    """Otherwise other processes preempt it while it holds the GIL and the control thread waits (inversion)."""
    if not hasattr(os, "sched_setscheduler"):
        pytest.skip("no SCHED_FIFO on this platform")
    policy = AdaptivePolicy.load(mdqn_export[1])
    seen: list[tuple[int, int]] = []
    adapt = policy.adapt

    def recording_adapt() -> Any:
        seen.append((os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))
        return adapt()

    policy.adapt = recording_adapt  # type: ignore[method-assign]
    plant = TaskPlant(policy, policy.obs_dim, reset_on_task_change=False)
    cfg = ControllerConfig(rate_hz=500, adapt_every=5, realtime_priority=7)
    report = AdaptiveController(policy, plant, cfg).run(ticks=60)
    assert report.adapt_calls == len(seen) > 0
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(7))
    except OSError:  # not permitted here: both threads stayed at normal priority
        assert all(s == (before[0], before[1].sched_priority) for s in seen)
        return
    os.sched_setscheduler(0, *before)
    assert all(s == (os.SCHED_FIFO, 6) for s in seen)
