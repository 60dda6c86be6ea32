"""Runtime soak: 100,000 control ticks at 100 Hz with background adaptation; RSS, missed ticks, crashes.

One process, one exported policy (the Panda slide shape, 28 -> 64 -> 64 -> 17, random weights:
memory and timing do not depend on the values), `AdaptiveController` against
``robot_meta/PandaSlide-v0`` drawing a new task from the slide preset's *test* split at every
reset, adaptation requested every 10 ticks and at every episode end (background thread, atomic
head swap). The plant runs in its own process by default (`ProcessPlant`: a robot steps its own
physics; ``step(a)`` collects the state computed for the previous command, one period of actuation
latency), so the control thread's tick is the runtime's work, not PyBullet's; ``--plant inline``
steps PyBullet on the control thread instead. Three phases:

1. ``fifo``: 100,000 ticks at 100 Hz with the control thread under SCHED_FIFO 10
   (``ControllerConfig(realtime_priority=10)``; skipped when the process may not use it);
2. ``default``: 100,000 ticks at 100 Hz at default scheduling (SCHED_OTHER);
3. ``plateau``: 300,000 ticks as fast as possible against a fake plant (no physics) with
   ``ControllerConfig(history=1000)``, past the controller's 100,000-call act-latency window: the
   RSS must stop growing once every bounded record is full (a leak keeps growing).

Task changes: every reset brings a new object and surface, and the deployment knows it (a new part
is presented), so the plant wrapper calls `AdaptivePolicy.reset_adaptation()` when the task
changes - the K-shot protocol adapts from the meta-trained head on transitions of the current task
only. ``--no-reset-on-task-change`` measures the other deployment (keep adapting on the latest
``support_size`` transitions of the bounded ring buffer, which then straddle tasks).

RSS (psutil) is read on the control thread at the start, every 10,000 ticks and at the end, after a
1,000-tick warm-up (fills the PyBullet scene's body cache and onnxruntime's arenas). Any exception
(from the loop, or logged at ERROR by the background adapter) is a failure, as is RSS growth over
`BOUND_GROWTH_MB` per 100 Hz phase or over `BOUND_PLATEAU_MB` in the plateau phase after
`FILL_TICKS`. Missed ticks are reported against the target (zero) but do not fail the run: on a shared
machine they measure the other jobs as much as the code (see the load averages).

    .venv/bin/python benchmarks/soak_runtime.py            # 2 x 100,000 ticks at 100 Hz + plateau (~36 min)
    .venv/bin/python benchmarks/soak_runtime.py --quick    # 2 x 2,000 ticks + 130,000 plateau (~1.5 min)

Full runs write ``benchmarks/results/soak_runtime.json`` and the ``soak_runtime`` section of
BENCHMARKS.md; ``--quick`` writes ``soak_runtime_quick.json`` only.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from common import command_line, markdown_table, now_utc, update_markdown_section, write_results
from runtime_latency import _pct, _synthetic_run

log = logging.getLogger("soak_runtime")

NAME = "soak_runtime"
ENV_ID = "robot_meta/PandaSlide-v0"
RATE_HZ = 100.0
ADAPT_EVERY = 10
RSS_EVERY = 10_000
WARMUP_TICKS = 1_000
FIFO_PRIORITY = 10
#: RSS growth allowed over one 100 Hz phase. By design the controller keeps at most 100,000 act
#: timings (~3.2 MB), ``history`` = 10,000 adaptation reports (~4 MB) and 2 x 10,000 episode
#: records (~4 MB); everything else is preallocated (the policy's ring buffer) or per tick.
BOUND_GROWTH_MB = 16.0
#: RSS growth allowed in the plateau phase once every bounded structure is full (`FILL_TICKS`).
BOUND_PLATEAU_MB = 1.0
PLATEAU_HISTORY = 1_000
#: Ticks after which every bounded record of the controller is full (its act-timing window is the
#: longest: 100,000 ticks); the plateau phase's growth is measured from here on.
FILL_TICKS = 100_000


def _rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


def realtime_permitted(priority: int = FIFO_PRIORITY) -> bool:
    """Whether this process may put a thread under SCHED_FIFO (tried on a short-lived thread)."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    ok: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            ok.append(True)
        except OSError:
            ok.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return bool(ok and ok[0])


class _ErrorLog(logging.Handler):
    """Collects ERROR records of robot_meta (the background adapter logs its exceptions there)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


class FakePlant:
    """A Gymnasium-shaped plant without physics: random observations, 30-60 tick episodes, a task id."""

    def __init__(self, obs_dim: int, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.obs_dim = obs_dim
        self.t = 0
        self.length = 40
        self.task = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.length = 0, int(self.rng.integers(30, 61))
        self.task += 1
        return self.rng.standard_normal(self.obs_dim).astype(np.float32), {"task": self.task}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        obs = self.rng.standard_normal(self.obs_dim).astype(np.float32)
        reward = float(-np.abs(obs[0] - 0.1 * (self.task % 7)) - 0.01 * action)
        return obs, reward, False, self.t >= self.length, {"is_success": False, "task": self.task}


def _slide_test_env(env_id: str) -> Any:
    """The soak's plant: `env_id`, discrete actions, tasks from the slide preset's test split."""
    import gymnasium as gym

    import robot_meta  # noqa: F401  (registers the ids)
    from robot_meta.envs import TaskDistribution

    return gym.make(
        env_id, action_mode="discrete", distribution=TaskDistribution.preset("slide").split("test")
    )


def _plant_main(conn: Any, env_id: str, realtime_priority: int) -> None:
    """The plant process: serves ``reset`` / ``step`` / ``close`` requests on `conn` (see `ProcessPlant`)."""
    import warnings as _warnings

    _warnings.filterwarnings("ignore")
    from robot_meta.runtime import realtime_scheduling

    env = _slide_test_env(env_id)
    # below the controller's threads' priorities: the plant never preempts the control loop
    with realtime_scheduling(realtime_priority):
        _serve_plant(conn, env)


def _serve_plant(conn: Any, env: Any) -> None:
    """Answer requests until ``close`` or the controller goes away; closes `env` and `conn`."""
    last: Any = None  # the last step's result while its episode has ended
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "step":
                if last is not None:  # the command in flight when the episode ended: not applied
                    conn.send(last)
                    continue
                t0 = time.perf_counter()
                obs, reward, terminated, truncated, info = env.step(msg[1])
                out = (obs, reward, terminated, truncated, {**info, "physics_s": time.perf_counter() - t0})
                if terminated or truncated:
                    last = (obs, 0.0, terminated, truncated, {})
                conn.send(out)
            elif msg[0] == "reset":
                last = None
                conn.send(env.reset(seed=msg[1], options=msg[2]))
            else:
                break
    except (EOFError, BrokenPipeError):  # the controller's process went away
        pass
    except BaseException:  # tell the controller why, then die
        import traceback

        with contextlib.suppress(OSError):
            conn.send(("plant-error", traceback.format_exc()))
        raise
    finally:
        env.close()
        conn.close()


class ProcessPlant:
    """The PyBullet env in its own process, driven the way a controller drives a robot.

    A robot steps its own physics: the controller's ``step(a)`` sends the command and reads the state
    the plant last published, it does not wait for the world to move. So the physics (2-7 ms per env
    step here, occasionally more when another process takes the core) runs in a child process on
    the other core, one tick behind: ``step(a_t)`` collects the result of ``a_{t-1}`` (computed during
    the last period, normally ready), dispatches ``a_t`` and returns that result - the one-period
    actuation latency of a real drive. The first step after a reset returns the reset state (reward
    0: nothing has moved yet); a reset drops the command still in flight. The time the control thread
    waited for the plant is recorded (`wait_s`); the physics time comes back in ``info["physics_s"]``.

    Drive it with ``ControllerConfig(action_latency=1)`` so that the controller pairs each outcome
    with the command that produced it (the soak does); without it the stored transitions are off
    by one action.
    """

    def __init__(self, env_id: str, realtime_priority: int = 0) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_plant_main, args=(child, env_id, realtime_priority), name="soak-plant", daemon=True
        )
        self.process.start()
        child.close()
        self._pending = False
        self._obs: Any = None
        self.wait_s = 0.0
        """Wait for the previous command's result in the latest `step` call."""

    def _recv(self) -> Any:
        pid = self.process.pid
        try:
            if not self._conn.poll(60.0):
                self._pending = False
                raise RuntimeError(f"the plant process (pid {pid}) did not answer for 60 s")
            msg = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(timeout=1.0)
            raise RuntimeError(
                f"the plant process (pid {pid}) died (exit code {self.process.exitcode}): see its output above"
            ) from exc
        if isinstance(msg, tuple) and len(msg) == 2 and isinstance(msg[0], str) and msg[0] == "plant-error":
            raise RuntimeError(f"the plant process (pid {pid}) failed:\n{msg[1]}")
        return msg

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if self._pending:
            self._recv()  # the command in flight when the episode ended
            self._pending = False
        self._conn.send(("reset", seed, options))
        obs, info = self._recv()
        self._obs = obs
        return obs, info

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        t0 = time.perf_counter()
        if self._pending:
            out = self._recv()
        else:  # first tick of an episode: the command has not acted yet
            out = (self._obs, 0.0, False, False, {})
        self.wait_s = time.perf_counter() - t0
        self._conn.send(("step", int(action)))
        self._pending = True
        self._obs = out[0]
        return out

    def rss_mb(self) -> float | None:
        """The plant process's RSS (None once it has exited)."""
        if not self.process.is_alive():
            return None
        try:
            return _rss_mb(psutil.Process(self.process.pid))
        except psutil.Error:
            return None

    def close(self) -> None:
        try:
            self._conn.send(("close",))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=10.0)
        if self.process.is_alive():
            self.process.kill()
        self._conn.close()


class SoakPlant:
    """Wraps the plant: task changes (-> `reset_adaptation`), RSS every `rss_every` ticks, tick work time."""

    def __init__(
        self, env: Any, policy: Any, *, reset_on_task_change: bool, rss_every: int, capacity: int
    ) -> None:
        self.env, self.policy = env, policy
        self.reset_on_task_change = reset_on_task_change
        self.rss_every = rss_every
        self.proc = psutil.Process()
        self.ticks = 0
        self.resets = 0
        self.task_changes = 0
        self.adaptation_resets = 0
        self.task: Any = None
        self.rss_curve: list[tuple[int, float]] = []
        self.steal_curve: list[tuple[int, float]] = []  # the VM's steal time (s, all CPUs) at the RSS points
        self.max_buffered = 0
        # Preallocated: the soak measures the controller's memory, not its own.
        self.step_s = np.zeros(capacity)
        self.tick_work_s = np.zeros(capacity)
        self.physics_s = np.full(capacity, np.nan)  # a `ProcessPlant`'s physics time, in its process
        self.wait_s = np.zeros(capacity)  # a `ProcessPlant`: the control thread's wait for the plant
        self.start_s = np.zeros(capacity)  # when each tick's act started (perf_counter)
        self.episode_step = np.zeros(capacity, dtype=np.int32)  # the tick's index in its episode
        self._ep_step = 0
        self._act_start = 0.0
        act = policy.act

        def timed_act(obs: Any) -> int:  # the controller calls act first in every tick
            self._act_start = time.perf_counter()
            return int(act(obs))

        policy.act = timed_act

    def unwrap(self) -> None:
        self.policy.__dict__.pop("act", None)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.resets += 1
        self._ep_step = 0
        task = info.get("task")
        if task != self.task:
            if self.task is not None:
                self.task_changes += 1
                if self.reset_on_task_change:
                    self.policy.reset_adaptation()
                    self.adaptation_resets += 1
            self.task = task
        return obs, info

    def step(self, action: int) -> tuple[Any, Any, bool, bool, dict]:
        t0 = time.perf_counter()
        out = self.env.step(action)
        t1 = time.perf_counter()
        if self.ticks < len(self.step_s):
            self.step_s[self.ticks] = t1 - t0
            self.tick_work_s[self.ticks] = t1 - self._act_start  # act + plant step (observe follows: ~10 us)
            self.start_s[self.ticks] = self._act_start
            self.episode_step[self.ticks] = self._ep_step
            physics = out[4].get("physics_s")
            if physics is not None:
                self.physics_s[self.ticks] = physics
                self.wait_s[self.ticks] = self.env.wait_s
        self.ticks += 1
        self._ep_step += 1
        buffered = self.policy.buffered
        if buffered > self.max_buffered:
            self.max_buffered = buffered
        if self.ticks % self.rss_every == 0:
            self.rss_curve.append((self.ticks, _rss_mb(self.proc)))
            self.steal_curve.append((self.ticks, _steal_s()))
        return out


def _late_ticks(plant: SoakPlant, period: float, top: int = 20) -> dict[str, Any]:
    """Where the time went in the ticks that started late: gaps between consecutive act starts.

    For each tick that started >= 1.5 periods after the previous one (within an episode), the gap
    and what the previous tick spent on the control thread (its act + step call, of which waiting
    for the plant) and in the plant (physics): a gap the previous tick's work does not explain is
    time the control thread was not running (scheduling, GIL, the VM).
    """
    n = plant.ticks
    if n < 2 or not period:
        return {}
    start, ep = plant.start_s[:n], plant.episode_step[:n]
    gap = np.diff(start)
    inside = ep[1:] > 0
    late = np.flatnonzero(inside & (gap >= 1.5 * period)) + 1
    rows = [
        {
            "tick": int(i),
            "episode_step": int(ep[i]),
            "gap_ms": float(1e3 * (start[i] - start[i - 1])),
            "prev_tick_work_ms": float(1e3 * plant.tick_work_s[i - 1]),
            "prev_step_call_ms": float(1e3 * plant.step_s[i - 1]),
            "prev_wait_for_plant_ms": float(1e3 * plant.wait_s[i - 1]),
            # the physics that ran during the gap (dispatched by tick i - 1, collected by tick i)
            "physics_in_gap_ms": float(1e3 * plant.physics_s[i]) if np.isfinite(plant.physics_s[i]) else None,
        }
        for i in late[np.argsort(-gap[late - 1])][:top]
    ]
    # a tick normally takes max(period, its work) from its start to the next one's
    unexplained = gap[late - 1] - np.maximum(period, plant.tick_work_s[late - 1])
    # per RSS window (10,000 ticks): the late ticks' excess over one period vs the VM's steal time
    windows = []
    for (c0, s0), (c1, s1) in itertools.pairwise(plant.steal_curve):
        sel = late[(late >= c0) & (late < c1)]
        windows.append(
            {
                "ticks": [int(c0), int(c1)],
                "late_ticks": int(sel.size),
                "late_excess_s": float(np.sum(gap[sel - 1] - period)) if sel.size else 0.0,
                "vm_steal_s": float(s1 - s0),
            }
        )
    return {
        "windows": windows,
        "late_ticks": int(late.size),
        "late_unexplained_by_tick_work_ms": _pct(unexplained, 1e3) if late.size else {},
        "worst": rows,
    }


def _steal_s() -> float:
    """CPU time the hypervisor ran something else while this VM's CPUs wanted to run (0 on bare metal)."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def _finite(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


def _slope_mb_per_100k(curve: list[tuple[int, float]], after: int | None = None) -> float:
    """Least-squares RSS slope over the second half of `curve` (or its points from tick `after` on)."""
    half = curve[len(curve) // 2 :] if after is None else [(c, r) for c, r in curve if c >= after]
    xs = np.array([c for c, _ in half], dtype=float)
    ys = np.array([r for _, r in half], dtype=float)
    return float(np.polyfit(xs, ys, 1)[0] * 100_000) if len(half) >= 2 and np.ptp(xs) > 0 else 0.0


def run_phase(
    name: str,
    export_dir: Path,
    ticks: int,
    *,
    rate_hz: float,
    realtime_priority: int = 0,
    fake: bool = False,
    history: int = 10_000,
    reset_on_task_change: bool = True,
    seed: int = 0,
    plant_kind: str = "process",
) -> dict[str, Any]:
    """One soak phase in this process: an exception in the measured run is recorded as a crash (one in
    the warm-up, e.g. a plant process that cannot start, propagates)."""
    from robot_meta.runtime import AdaptiveController as Controller
    from robot_meta.runtime import AdaptivePolicy, ControllerConfig

    crashes: list[str] = []
    errors = _ErrorLog()
    logging.getLogger("robot_meta").addHandler(errors)
    policy = AdaptivePolicy.load(export_dir)
    if fake:
        env: Any = FakePlant(policy.obs_dim, seed)
    elif plant_kind == "process":
        env = ProcessPlant(ENV_ID, max(1, realtime_priority - 2) if realtime_priority else 0)
    else:
        env = _slide_test_env(ENV_ID)
    proc = psutil.Process()
    plant_in_child = isinstance(env, ProcessPlant)
    latency = 1 if plant_in_child else 0  # the plant answers one command late
    cfg = ControllerConfig(
        rate_hz=rate_hz, adapt_every=ADAPT_EVERY, adapt_at_episode_end=True,
        realtime_priority=realtime_priority, history=history, action_latency=latency,
    )  # fmt: skip
    try:
        # Warm-up (as fast as possible): fills the scene's body cache and onnxruntime's arenas.
        warm = SoakPlant(
            env, policy, reset_on_task_change=reset_on_task_change, rss_every=10**9, capacity=WARMUP_TICKS
        )
        Controller(
            policy, warm, ControllerConfig(rate_hz=0, adapt_every=ADAPT_EVERY, action_latency=latency)
        ).run(ticks=WARMUP_TICKS, seed=seed)
        warm.unwrap()
        policy.reset_adaptation()
        plant = SoakPlant(
            env, policy, reset_on_task_change=reset_on_task_change, rss_every=RSS_EVERY, capacity=ticks
        )
        gc.collect()
        rss_start = _rss_mb(proc)
        plant.rss_curve.append((0, rss_start))
        plant.steal_curve.append((0, _steal_s()))
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        report = None
        try:
            report = Controller(policy, plant, cfg).run(ticks=ticks, seed=seed + 1)
        except Exception as exc:  # any exception is a failure of the soak
            crashes.append(f"{type(exc).__name__}: {exc}")
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
        rss_end = _rss_mb(proc)  # before any collection: what the process holds
        if not plant.rss_curve or plant.rss_curve[-1][0] != plant.ticks:
            plant.rss_curve.append((plant.ticks, rss_end))
            plant.steal_curve.append((plant.ticks, _steal_s()))
        plant_rss = env.rss_mb() if plant_in_child else None
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()
        logging.getLogger("robot_meta").removeHandler(errors)
    curve = plant.rss_curve
    growth = rss_end - rss_start
    res: dict[str, Any] = {
        "phase": name,
        "plant": "fake (no physics)" if fake else ENV_ID,
        "plant_kind": "fake" if fake else plant_kind,
        "action_latency": latency,
        "scheduling": f"SCHED_FIFO {realtime_priority}" if realtime_priority else "default (SCHED_OTHER)",
        "rate_hz": rate_hz,
        "ticks_requested": ticks,
        "history": history,
        "reset_on_task_change": reset_on_task_change,
        "crashes": crashes,
        "errors_logged": errors.messages[:50],
        "errors_logged_count": len(errors.messages),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "wall_s": wall,
        "ticks_plant": plant.ticks,
        "resets": plant.resets,
        "task_changes": plant.task_changes,
        "adaptation_resets": plant.adaptation_resets,
        "max_buffered": plant.max_buffered,
        "buffer_capacity": policy.config.buffer_capacity,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_peak_mb": max(r for _, r in curve),
        "rss_growth_mb": growth,
        "rss_growth_bytes_per_tick": growth * 2**20 / max(plant.ticks, 1),
        "rss_late_slope_mb_per_100k_ticks": _slope_mb_per_100k(curve, FILL_TICKS if fake else None),
        "rss_curve": curve,
        "plant_step_ms": _pct(plant.step_s[: plant.ticks], 1e3) if plant.ticks else {},
        "tick_work_ms": _pct(plant.tick_work_s[: plant.ticks], 1e3) if plant.ticks else {},
        "physics_ms": _pct(_finite(plant.physics_s[: plant.ticks]), 1e3) if plant_in_child else {},
        "plant_wait_ms": _pct(plant.wait_s[: plant.ticks], 1e3) if plant_in_child else {},
        "plant_rss_mb": plant_rss,
        "late": _late_ticks(plant, 1.0 / rate_hz if rate_hz else 0.0),
        "vm_steal_s": plant.steal_curve[-1][1] - plant.steal_curve[0][1] if plant.steal_curve else None,
        "vm_steal_curve": plant.steal_curve,
    }
    if report is not None:
        latest = report.adapt_reports
        res.update(
            ticks=report.ticks,
            missed_ticks=report.missed_ticks,
            max_lateness_ms=report.max_lateness_s * 1e3,
            episodes=report.episodes_run,
            episode_records_kept=len(report.episodes),
            adapt_calls=report.adapt_calls,
            adaptations_applied=report.adaptations,
            rolled_back=report.rolled_back,
            adapt_reports_kept=len(latest),
            adapt_ms_latest=_pct([r.seconds for r in latest], 1e3) if latest else {},
            refused_observations=report.refused_observations,
            refused_transitions=report.refused_transitions,
            interrupted=report.interrupted,
            act_us=report.act_latency_us(),
            controller_wall_s=report.wall_time_s,
        )
        consistent = (
            report.ticks == plant.ticks == ticks
            and report.adaptations <= report.adapt_calls
            and len(latest) == min(report.adapt_calls, history)
            and len(report.episodes) == min(report.episodes_run, max(history, 0))
            and (not report.episodes or report.episodes[-1].index == report.episodes_run - 1)
            and plant.max_buffered <= policy.config.buffer_capacity
            and (not reset_on_task_change or plant.adaptation_resets == plant.task_changes)
        )
        res["counts_consistent"] = bool(consistent)
    else:
        res["counts_consistent"] = False
    if fake:
        late = [r for c, r in curve if c >= FILL_TICKS]
        res["rss_growth_after_fill_mb"] = (late[-1] - late[0]) if len(late) >= 2 else None
        res["memory_ok"] = len(late) >= 2 and res["rss_growth_after_fill_mb"] < BOUND_PLATEAU_MB
    else:
        res["memory_ok"] = growth < BOUND_GROWTH_MB * max(1.0, ticks / 100_000)
    res["ok"] = bool(not crashes and not errors.messages and res["counts_consistent"] and res["memory_ok"])
    res["missed_target_met"] = bool(res.get("missed_ticks", 1) == 0)
    log.info(
        "%s: %s ticks, %s missed, max lateness %.2f ms, %s adaptations (%s rolled back), RSS %.1f -> %.1f MB "
        "(%+.2f MB), load %.1f -> %.1f, %s",
        name, res.get("ticks"), res.get("missed_ticks"), res.get("max_lateness_ms", float("nan")),
        res.get("adapt_calls"), res.get("rolled_back"), rss_start, rss_end, growth, load_before[0],
        load_after[0], "ok" if res["ok"] else "FAIL",
    )  # fmt: skip
    return res


def _markdown(res: dict[str, Any]) -> str:
    phases = res["phases"]
    ok = res["ok"]
    rows = []
    for p in phases:
        act, work = p.get("act_us", {}), p.get("tick_work_ms", {})
        phys, wait = p.get("physics_ms") or {}, p.get("plant_wait_ms") or {}
        rows.append(
            [
                p["phase"],
                p["scheduling"],
                f"{p['rate_hz']:g}" if p["rate_hz"] else "max",
                f"{p.get('ticks', 0):,}",
                f"{p.get('missed_ticks', '-')}" if p["rate_hz"] else "-",
                f"{p.get('max_lateness_ms', float('nan')):.2f}" if p["rate_hz"] else "-",
                f"{work.get('p99', float('nan')):.2f} / {work.get('max', float('nan')):.1f}",
                p.get("plant_kind", "inline"),
                f"{phys['p50']:.1f} / {phys['p99']:.1f} / {phys['max']:.1f}" if phys else "-",
                f"{wait['p99']:.2f} / {wait['max']:.1f}" if wait else "-",
                f"{act.get('p50', float('nan')):.0f} / {act.get('p99', float('nan')):.0f} / {act.get('max', float('nan')):.0f}",
                f"{p.get('episodes', 0):,} / {p['task_changes']:,}",
                f"{p.get('adapt_calls', 0):,} / {p.get('rolled_back', 0)}",
                f"{p['rss_start_mb']:.1f} -> {p['rss_end_mb']:.1f}",
                f"{p['rss_growth_mb']:+.2f}",
                len(p["crashes"]) + p["errors_logged_count"],
                f"{p['loadavg_before'][0]:.1f} / {p['loadavg_after'][0]:.1f}",
                "-" if p.get("vm_steal_s") is None else f"{p['vm_steal_s']:.1f}",
            ]
        )
    headers = [
        "phase", "control thread", "Hz", "ticks", "missed", "max lateness ms", "tick work p99 / max ms",
        "plant", "physics p50 / p99 / max ms", "wait for plant p99 / max ms",
        "act p50 / p99 / max µs", "episodes / task changes", "adaptations / rolled back", "RSS MB",
        "growth MB", "exceptions", "load (1 min) before / after", "VM steal s",
    ]  # fmt: skip
    curves = []
    for p in phases:
        pts = p["rss_curve"]
        step = max(1, len(pts) // 12)
        shown = pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])
        curves.append(
            f"- `{p['phase']}`: "
            + ", ".join(f"{c // 1000}k {r:.1f}" for c, r in shown)
            + f" (late slope {p['rss_late_slope_mb_per_100k_ticks']:+.2f} MB / 100k ticks)"
        )
    missed = ", ".join(
        f"{p['phase']}: {'met' if p['missed_target_met'] else 'MISSED'} ({p.get('missed_ticks')})"
        for p in phases
        if p["rate_hz"]
    )
    plateau = next((p for p in phases if p["plant"].startswith("fake")), None)
    fifo_note = (
        ""
        if res["realtime_permitted"]
        else " SCHED_FIFO is not permitted for this process (no CAP_SYS_NICE): the `fifo` phase was skipped."
    )
    plant_note = (
        f"The plant runs in its own process (`--plant process`, the default): a robot steps its own physics, "
        f"so `step(a)` sends the command and collects the state the plant computed for the previous one "
        f"(one period of actuation latency, as on a real drive); the PyBullet step runs in that process "
        f"(`physics`, timed in the plant process, at SCHED_FIFO {FIFO_PRIORITY - 2} in the fifo phase) and "
        f"the control thread only waits for it if it overran its period (`wait for plant`). "
        + (
            "`ControllerConfig(action_latency=1)` pairs each outcome with the command that produced it. "
            if any(p.get("action_latency") == 1 for p in res["phases"])
            else "This run's controller did not model the latency (no `action_latency` yet): the transitions it "
            "adapted on were off by one action (fine for timing and memory, not for learning). "
        )
        if res.get("plant", "inline") == "process"
        else "The plant (PyBullet) steps on the control thread (`--plant inline`): its physics counts against the tick. "
    )
    text = (
        plant_note
        + f"`AdaptiveController` against `{ENV_ID}` (a new task from the slide preset's test split at "
        f"every reset; `reset_adaptation()` on each task change: {res['reset_on_task_change']}), adaptation "
        f"requested every {ADAPT_EVERY} ticks and at each episode end on the background thread, RSS after a "
        f"{WARMUP_TICKS:,}-tick warm-up. Result: **{'PASS' if ok else 'FAIL'}** (no exception, counts consistent, "
        f"RSS growth < {BOUND_GROWTH_MB:g} MB per 100,000 ticks at 100 Hz"
        + (
            f" and < {BOUND_PLATEAU_MB:g} MB in the plateau phase after tick {FILL_TICKS:,}"
            if plateau
            else ""
        )
        + f"). Missed-tick target (zero): {missed}.{fifo_note}\n\n"
        + markdown_table(headers, rows)
        + "\n\nRSS (MB) by tick:\n"
        + "\n".join(curves)
        + "\n\n"
        "`tick work` = `act` + the `step` call, timed on the control thread; a tick is missed when it "
        "starts a whole period late. The controller keeps bounded records (the latest 100,000 act timings, "
        "`ControllerConfig.history` = 10,000 adaptation reports and episode records; counters are totals), so "
        "the 100 Hz phases grow while those fill"
    )
    if plateau:
        text += (
            f"; the `plateau` phase ({plateau['ticks_requested']:,} ticks, no physics, `history="
            f"{plateau['history']:,}`) runs past all of them: RSS grew "
            f"{plateau['rss_growth_after_fill_mb'] or 0.0:+.2f} MB from tick {FILL_TICKS:,} to its end"
        )
    return text + "."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--quick", action="store_true", help="2,000 ticks per 100 Hz phase, 130,000 plateau ticks"
    )
    ap.add_argument("--ticks", type=int, default=None, help="ticks per 100 Hz phase (default 100,000)")
    ap.add_argument(
        "--plateau-ticks", type=int, default=None, help="ticks of the plateau phase (default 300,000)"
    )
    ap.add_argument(
        "--phases", default="fifo,default,plateau", help="comma-separated subset of fifo,default,plateau"
    )
    ap.add_argument(
        "--no-reset-on-task-change",
        action="store_true",
        help="keep adapting across task changes instead of calling reset_adaptation()",
    )
    ap.add_argument(
        "--plant",
        choices=("process", "inline"),
        default="process",
        help="process: PyBullet in its own process, one tick behind, like a robot (default); "
        "inline: env.step on the control thread (the physics time counts against the tick)",
    )
    ap.add_argument(
        "--tag",
        default="",
        help="keep this run next to the default one: results soak_runtime_TAG.json and its own "
        "BENCHMARKS.md section (e.g. --tag quiet for a run on an idle machine)",
    )
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.tag and not args.tag.replace("_", "").replace("-", "").isalnum():
        ap.error(f"--tag {args.tag!r}: use letters, digits, '_' or '-'")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore")
    import torch

    from robot_meta.export import ExportConfig, export_trained

    torch.set_num_threads(1)
    ticks = args.ticks or (2_000 if args.quick else 100_000)
    plateau_ticks = args.plateau_ticks or (130_000 if args.quick else 300_000)
    wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(wanted) - {"fifo", "default", "plateau"}
    if unknown:
        ap.error(f"unknown phase(s) {sorted(unknown)}")
    reset = not args.no_reset_on_task_change
    rt_ok = realtime_permitted()
    results: dict[str, Any] = {
        "quick": args.quick,
        "realtime_permitted": rt_ok,
        "reset_on_task_change": reset,
        "plant": args.plant,
        "bounds": {"growth_mb_per_100k_ticks": BOUND_GROWTH_MB, "plateau_second_half_mb": BOUND_PLATEAU_MB},
        "started": now_utc(),
        "phases": [],
    }
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak_runtime_") as tmp_s:
        tmp = Path(tmp_s)
        run = _synthetic_run(tmp)
        export_trained(run, tmp / "export", config=ExportConfig(parity_samples=256))
        del run
        for phase in wanted:
            if phase == "fifo" and not rt_ok:
                log.warning("SCHED_FIFO not permitted: skipping the fifo phase")
                continue
            log.info("phase %s ...", phase)
            if phase == "plateau":
                res = run_phase(
                    phase, tmp / "export", plateau_ticks, rate_hz=0.0, fake=True,
                    history=PLATEAU_HISTORY, reset_on_task_change=reset,
                )  # fmt: skip
            else:
                res = run_phase(
                    phase, tmp / "export", ticks, rate_hz=RATE_HZ,
                    realtime_priority=FIFO_PRIORITY if phase == "fifo" else 0, reset_on_task_change=reset,
                    plant_kind=args.plant,
                )  # fmt: skip
            results["phases"].append(res)
    results["seconds"] = time.perf_counter() - t_all
    results["ok"] = bool(results["phases"]) and all(p["ok"] for p in results["phases"])
    cmd = command_line()
    name = NAME + (f"_{args.tag}" if args.tag else "")
    path = write_results(name + ("_quick" if args.quick else ""), results, command=cmd)
    log.info("wrote %s", path)
    body = _markdown(results)
    print("\n" + body + "\n")
    if not args.quick and not args.no_markdown:  # quick runs leave BENCHMARKS.md alone
        update_markdown_section(name, body, command=cmd, date=now_utc())
        log.info("updated the %s section of BENCHMARKS.md", name)
    for p in results["phases"]:
        for line in p["crashes"] + p["errors_logged"][:10]:
            print(f"{p['phase']}: {line}", file=sys.stderr)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
