"""`AdaptiveController`: the fixed-rate control loop with adaptation in a background thread.

It drives anything with Gymnasium's ``reset(seed=, options=) -> (obs, info)`` and
``step(a) -> (obs, reward, terminated, truncated, info)`` - the PyBullet env in tests and in
``robot-meta adapt``, a robot driver in the field. Imports only numpy (through the policy).

Every tick: act on the latest observation, step, hand the transition to the policy. A tick is
*scheduled* every ``1 / rate_hz`` seconds; if a tick starts a whole period or more after its
scheduled time the ticks in between are *missed* (counted, never replayed in a burst) and the
schedule moves on. Resets are not real-time (the schedule restarts after each reset).

Adaptation never runs on the control thread: the controller wakes a background thread (every
``adapt_every`` ticks and/or at the end of an episode) which calls the policy's ``adapt`` (a
`DevicePolicy`: `AdaptivePolicy` or `StrikePlanner`); the new
head is swapped in atomically and the next tick acts with it. A refused observation (NaN, wrong
shape) is logged and the last good action is repeated; a refused transition is logged and
dropped - the loop never crashes on bad data. Ctrl-C (KeyboardInterrupt) or `stop()` ends the loop
cleanly: the background thread is joined and the report returned.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, SupportsFloat

import numpy as np

from robot_meta.runtime.device import DevicePolicy
from robot_meta.runtime.policy import AdaptReport, ObservationError, TransitionError

__all__ = [
    "AdaptiveController",
    "ControllerConfig",
    "ControllerReport",
    "EpisodeRecord",
    "StepEnv",
    "realtime_scheduling",
]

log = logging.getLogger(__name__)


class StepEnv(Protocol):
    """What the controller needs from an environment or robot driver (Gymnasium's shape)."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]: ...

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]: ...


@dataclass(frozen=True)
class ControllerConfig:
    """Control-loop settings."""

    rate_hz: float = 100.0
    """Control rate; 0 runs as fast as the env allows (simulation)."""
    adapt_every: int = 0
    """Ticks between background adaptations during an episode (0: only at episode ends)."""
    adapt_at_episode_end: bool = True
    """Adapt in the background when an episode ends; the next reset waits for it (up to `adapt_timeout_s`)."""
    adapt_timeout_s: float = 2.0
    """Longest wait at a reset for the end-of-episode adaptation."""
    fallback_action: int = 0
    """Action used when the very first observation is refused (afterwards: the last good action)."""
    log_every_refusal: int = 100
    """Log every n-th refused observation/transition after the first (avoid flooding the log)."""
    freeze_gc: bool = True
    """Collect once, then `gc.freeze()` the existing objects for the run (unfrozen after): the cyclic
    GC's full collections, ~0.2 s in a process that imported torch, then only scan new objects."""
    history: int = 10_000
    """Episode records and adaptation reports a `ControllerReport` keeps (the latest; its counters are
    totals). A controller runs for days: at 100 Hz with ``adapt_every=10`` unbounded lists grew by ~34 B
    per tick (~300 MB a day; benchmarks/soak_runtime.py). A run bounded by ``episodes=N`` keeps at
    least N episode records."""
    action_latency: int = 0
    """Ticks between sending a command and the first observation that shows its effect. 0: ``step(a)``
    returns the state after `a` (a simulator stepped in the tick). 1: a drive that, like most robot
    interfaces, takes the command and returns the latest measured state, in which the command of the
    tick before has acted; the controller then pairs each transition with the action that was really
    applied (``observe(s, a_{t-L}, r, s')``) and does not store the first L steps of an episode
    (nothing of this episode had acted yet). Wrong pairing silently teaches the adaptation the
    wrong action."""
    realtime_priority: int = 0
    """Linux SCHED_FIFO priority (1-99) of the control thread while `run` runs; 0 leaves scheduling alone.
    The background adaptation thread then runs at SCHED_FIFO ``priority - 1`` (it shares the GIL with
    the control thread; bounded work, one `adapt` per request). Needs CAP_SYS_NICE (a refusal is
    logged and the loop runs at normal priority) and rate_hz > 0."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and self.rate_hz >= 0):
            raise ValueError(
                f"ControllerConfig.rate_hz={self.rate_hz} must be >= 0 (0 = as fast as possible)"
            )
        if self.adapt_every < 0:
            raise ValueError(f"ControllerConfig.adapt_every={self.adapt_every} must be >= 0")
        if not self.adapt_timeout_s >= 0:
            raise ValueError(f"ControllerConfig.adapt_timeout_s={self.adapt_timeout_s} must be >= 0")
        if self.fallback_action < 0:
            raise ValueError(f"ControllerConfig.fallback_action={self.fallback_action} must be >= 0")
        if not 0 <= self.realtime_priority <= 99:
            raise ValueError(
                f"ControllerConfig.realtime_priority={self.realtime_priority} must be in [0, 99]"
            )
        if self.realtime_priority and self.rate_hz == 0:
            raise ValueError(
                "ControllerConfig.realtime_priority needs rate_hz > 0 (a real-time busy loop would starve the machine)"
            )
        if self.history < 1:
            raise ValueError(f"ControllerConfig.history={self.history} must be >= 1")
        if not 0 <= self.action_latency <= 100:
            raise ValueError(
                f"ControllerConfig.action_latency={self.action_latency} must be in [0, 100] ticks"
            )
        if self.log_every_refusal < 1:
            raise ValueError(f"ControllerConfig.log_every_refusal={self.log_every_refusal} must be >= 1")


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode the controller ran."""

    index: int
    ticks: int
    ret: float
    success: bool
    adaptations: int
    """Adaptations applied to the policy when the episode started (0 = the meta-trained head)."""


@dataclass
class ControllerReport:
    """What a `AdaptiveController.run` call did."""

    ticks: int = 0
    missed_ticks: int = 0
    """Scheduled ticks that could not start within their period (skipped, not replayed)."""
    max_lateness_s: float = 0.0
    """Largest delay of a tick's start after its scheduled time."""
    refused_observations: int = 0
    refused_transitions: int = 0
    adaptations: int = 0
    """Background adaptations that changed the policy (all of the run, also those no longer in `adapt_reports`)."""
    rolled_back: int = 0
    """Background adaptations with a rolled-back step (all of the run)."""
    adapt_calls: int = 0
    """`AdaptivePolicy.adapt` calls the background thread made (all of the run)."""
    episodes_run: int = 0
    """Episodes completed (all of the run; `episodes` keeps the latest `ControllerConfig.history`)."""
    interrupted: bool = False
    wall_time_s: float = 0.0
    episodes: list[EpisodeRecord] = field(default_factory=list)
    """The latest completed episodes (at most max(`ControllerConfig.history`, ``episodes=``))."""
    adapt_reports: list[AdaptReport] = field(default_factory=list)
    """The latest background adaptations (at most `ControllerConfig.history`)."""
    act_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    """Wall time of the latest `act` calls (bounded: a controller may run for days)."""

    def act_latency_us(self) -> dict[str, float]:
        """p50/p99/max of the act calls in microseconds."""
        if not self.act_seconds:
            return {"p50": math.nan, "p99": math.nan, "max": math.nan}
        a = np.asarray(self.act_seconds) * 1e6
        return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


class _Adapter:
    """The background thread that runs `policy.adapt()` on request."""

    def __init__(self, policy: DevicePolicy, history: int, priority: int = 0) -> None:
        self.policy = policy
        self.priority = priority
        self.reports: deque[AdaptReport] = deque(maxlen=history)
        self.calls = 0
        self.applied = 0
        self.rolled_back = 0
        self._cv = threading.Condition()
        self._pending = False
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="robot-meta-adapt", daemon=True)
        self._thread.start()

    def request(self) -> None:
        with self._cv:
            self._pending = True
            self._cv.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no adaptation is pending or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def _loop(self) -> None:
        # Under a real-time control thread this thread runs just below it (SCHED_FIFO priority - 1):
        # at normal priority, other processes preempt it while it holds the GIL or the buffer's
        # lock and the control thread waits for it (priority inversion: ticks missed under SCHED_FIFO).
        restore = _enter_realtime(self.priority, "background adaptation thread")
        try:
            self._serve()
        finally:
            restore()

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                self._pending = False
                self._busy = True
            try:
                report = self.policy.adapt()
                self.reports.append(report)
                self.calls += 1
                self.applied += report.applied
                self.rolled_back += report.rolled_back
            except Exception:  # never let the adapter thread die silently
                log.exception("adaptation failed; the policy keeps its last good head")
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=5.0)


@contextlib.contextmanager
def realtime_scheduling(priority: int) -> Iterator[None]:
    """Run the calling thread under Linux SCHED_FIFO `priority` (1-99) inside the block (0: unchanged).

    Where the process lacks CAP_SYS_NICE (or off Linux) a warning is logged and the block runs at
    normal priority. Keep the block's work periodic (sleeping between ticks): a real-time thread
    that never sleeps starves the other processes of its core.
    """
    restore = _enter_realtime(priority)
    try:
        yield
    finally:
        restore()


def _enter_realtime(priority: int, who: str = "control thread") -> Callable[[], None]:
    """Put the calling thread under SCHED_FIFO `priority`; returns a function restoring the old policy."""
    if not priority:
        return lambda: None
    if not hasattr(os, "sched_setscheduler"):
        log.warning("real-time scheduling is not available on this platform; running at normal priority")
        return lambda: None
    try:
        old_policy, old_param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        log.warning(
            "could not switch the %s to SCHED_FIFO %d (%s); running at normal priority",
            who,
            priority,
            exc,
        )
        return lambda: None

    def restore() -> None:
        try:
            os.sched_setscheduler(0, old_policy, old_param)
        except OSError as exc:  # pragma: no cover - lowering priority is always allowed
            log.warning("could not restore the %s's scheduling (%s)", who, exc)

    return restore


class AdaptiveController:
    """Run `policy` against `env` at a fixed rate, adapting off the hot path (see the module docstring)."""

    def __init__(self, policy: DevicePolicy, env: StepEnv, config: ControllerConfig | None = None) -> None:
        self.policy = policy
        self.env = env
        self.config = config or ControllerConfig()
        if self.config.fallback_action >= policy.n_actions:
            raise ValueError(
                f"ControllerConfig.fallback_action={self.config.fallback_action} is not an action of this "
                f"policy (it has {policy.n_actions})"
            )
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask a running loop to stop after the current tick (thread-safe)."""
        self._stop.set()

    def _refuse(self, what: str, count: int, exc: Exception) -> None:
        if count == 1 or count % self.config.log_every_refusal == 0:
            log.warning("refused %s #%d: %s", what, count, exc)

    def run(
        self,
        *,
        ticks: int | None = None,
        episodes: int | None = None,
        seed: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> ControllerReport:
        """Run until `ticks` ticks or `episodes` episodes are done (or `stop()` / Ctrl-C).

        The first reset gets `seed`; every reset gets `options` (e.g. ``{"task": params}``).
        """
        if ticks is None and episodes is None:
            raise ValueError("pass ticks= or episodes= (or both) to bound the run; stop() ends it early")
        cfg = self.config
        self._stop.clear()
        report = ControllerReport()
        period = 1.0 / cfg.rate_hz if cfg.rate_hz > 0 else 0.0
        if cfg.freeze_gc:
            gc.collect()
            gc.freeze()
        adapter = _Adapter(
            self.policy, cfg.history, max(1, cfg.realtime_priority - 1) if cfg.realtime_priority else 0
        )
        keep_episodes = max(cfg.history, episodes or 0)
        restore_scheduling = _enter_realtime(cfg.realtime_priority)
        t_start = time.perf_counter()
        last_action = cfg.fallback_action
        first_reset = True
        try:
            while not self._stop.is_set():
                if episodes is not None and report.episodes_run >= episodes:
                    break
                if ticks is not None and report.ticks >= ticks:
                    break
                obs, _ = self.env.reset(seed=seed if first_reset else None, options=options)
                first_reset = False
                ep_ticks, ep_ret, success = 0, 0.0, False
                in_flight: deque[int] = deque()  # actions sent this episode whose effect is not seen yet
                adaptations_at_start = self.policy.adaptations
                next_t = time.perf_counter()
                ended = False
                while not self._stop.is_set() and (ticks is None or report.ticks < ticks):
                    if period:
                        next_t = _wait_for_tick(report, period, next_t)
                    action = last_action = self._act_timed(obs, last_action, report)
                    next_obs, reward, terminated, truncated, info = self.env.step(action)
                    report.ticks += 1
                    ep_ticks += 1
                    in_flight.append(action)
                    try:
                        ep_ret += float(reward)
                        if len(in_flight) > cfg.action_latency:  # the action this step's outcome shows
                            applied = in_flight.popleft()
                            self.policy.observe(obs, applied, float(reward), next_obs, bool(terminated))
                    except (TransitionError, TypeError, ValueError) as exc:
                        report.refused_transitions += 1
                        self._refuse("transition", report.refused_transitions, exc)
                    success = bool(info.get("is_success", False)) if isinstance(info, dict) else False
                    obs = next_obs
                    if cfg.adapt_every and ep_ticks % cfg.adapt_every == 0:
                        adapter.request()
                    if terminated or truncated:
                        ended = True
                        break
                if not ended:  # stopped, or the tick budget ran out mid-episode (not recorded)
                    break
                self.policy.end_episode()  # before the episode's adaptation: what is still in flight
                report.episodes.append(
                    EpisodeRecord(report.episodes_run, ep_ticks, ep_ret, success, adaptations_at_start)
                )
                report.episodes_run += 1
                if len(report.episodes) >= 2 * keep_episodes:  # trim in chunks: amortised O(1) per episode
                    del report.episodes[:-keep_episodes]
                if cfg.adapt_at_episode_end and (episodes is None or report.episodes_run < episodes):
                    adapter.request()
                    if not adapter.wait_idle(cfg.adapt_timeout_s):
                        log.warning(
                            "end-of-episode adaptation still running after %.1f s; not waiting",
                            cfg.adapt_timeout_s,
                        )
        except KeyboardInterrupt:
            report.interrupted = True
            log.warning("interrupted: stopping the control loop")
        finally:
            restore_scheduling()
            if cfg.freeze_gc:
                gc.unfreeze()
            self._finish(report, adapter, keep_episodes, t_start)
        return report

    def _act_timed(self, obs: Any, last_action: int, report: ControllerReport) -> int:
        """The policy's action for `obs`, timed; a refused observation repeats `last_action`."""
        t0 = time.perf_counter()
        try:
            action = self.policy.act(obs)
        except ObservationError as exc:
            report.refused_observations += 1
            self._refuse("observation (repeating the last good action)", report.refused_observations, exc)
            action = last_action
        report.act_seconds.append(time.perf_counter() - t0)
        return action

    def _finish(
        self, report: ControllerReport, adapter: _Adapter, keep_episodes: int, t_start: float
    ) -> None:
        """Stop the adaptation thread and fill in the report's totals."""
        adapter.wait_idle(self.config.adapt_timeout_s)
        adapter.close()
        if len(report.episodes) > keep_episodes:
            del report.episodes[:-keep_episodes]
        report.adapt_reports = list(adapter.reports)
        report.adapt_calls = adapter.calls
        report.adaptations = adapter.applied
        report.rolled_back = adapter.rolled_back
        report.wall_time_s = time.perf_counter() - t_start


def _wait_for_tick(report: ControllerReport, period: float, next_t: float) -> float:
    """Sleep until the tick due at `next_t`; a late tick records its lateness and the ticks it missed.

    Returns when the next tick is due."""
    now = time.perf_counter()
    if now < next_t:
        time.sleep(next_t - now)
    else:
        late = now - next_t
        report.max_lateness_s = max(report.max_lateness_s, late)
        if late >= period:
            skipped = int(late // period)
            report.missed_ticks += skipped
            next_t += skipped * period
    return next_t + period
