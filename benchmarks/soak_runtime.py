"""Runtime soak: 100,000 control ticks at 100 Hz with background adaptation; RSS, missed ticks, crashes.

One process, one exported policy (the Panda slide shape, 28 -> 64 -> 64 -> 17, random weights:
memory and timing do not depend on the values), `AdaptiveController` against
``robot_meta/PandaSlide-v0`` drawing a new task from the slide preset's *test* split at every
reset, adaptation requested every 10 ticks and at every episode end (background thread, atomic
head swap). Three phases:

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
import gc
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
        self.max_buffered = 0
        # Preallocated: the soak measures the controller's memory, not its own.
        self.step_s = np.zeros(capacity)
        self.tick_work_s = np.zeros(capacity)
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
        self.ticks += 1
        buffered = self.policy.buffered
        if buffered > self.max_buffered:
            self.max_buffered = buffered
        if self.ticks % self.rss_every == 0:
            self.rss_curve.append((self.ticks, _rss_mb(self.proc)))
        return out


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
) -> dict[str, Any]:
    """One soak phase in this process; never raises (an exception is recorded as a crash)."""
    from robot_meta.runtime import AdaptiveController as Controller
    from robot_meta.runtime import AdaptivePolicy, ControllerConfig

    crashes: list[str] = []
    errors = _ErrorLog()
    logging.getLogger("robot_meta").addHandler(errors)
    policy = AdaptivePolicy.load(export_dir)
    if fake:
        env: Any = FakePlant(policy.obs_dim, seed)
    else:
        import gymnasium as gym

        import robot_meta  # noqa: F401  (registers the ids)
        from robot_meta.envs import TaskDistribution

        env = gym.make(
            ENV_ID, action_mode="discrete", distribution=TaskDistribution.preset("slide").split("test")
        )
    proc = psutil.Process()
    cfg = ControllerConfig(
        rate_hz=rate_hz, adapt_every=ADAPT_EVERY, adapt_at_episode_end=True,
        realtime_priority=realtime_priority, history=history,
    )  # fmt: skip
    try:
        # Warm-up (as fast as possible): fills the scene's body cache and onnxruntime's arenas.
        warm = SoakPlant(
            env, policy, reset_on_task_change=reset_on_task_change, rss_every=10**9, capacity=WARMUP_TICKS
        )
        Controller(policy, warm, ControllerConfig(rate_hz=0, adapt_every=ADAPT_EVERY)).run(
            ticks=WARMUP_TICKS, seed=seed
        )
        warm.unwrap()
        policy.reset_adaptation()
        plant = SoakPlant(
            env, policy, reset_on_task_change=reset_on_task_change, rss_every=RSS_EVERY, capacity=ticks
        )
        gc.collect()
        rss_start = _rss_mb(proc)
        plant.rss_curve.append((0, rss_start))
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
        rows.append(
            [
                p["phase"],
                p["scheduling"],
                f"{p['rate_hz']:g}" if p["rate_hz"] else "max",
                f"{p.get('ticks', 0):,}",
                f"{p.get('missed_ticks', '-')}" if p["rate_hz"] else "-",
                f"{p.get('max_lateness_ms', float('nan')):.2f}" if p["rate_hz"] else "-",
                f"{work.get('p99', float('nan')):.2f} / {work.get('max', float('nan')):.1f}",
                f"{act.get('p50', float('nan')):.0f} / {act.get('p99', float('nan')):.0f} / {act.get('max', float('nan')):.0f}",
                f"{p.get('episodes', 0):,} / {p['task_changes']:,}",
                f"{p.get('adapt_calls', 0):,} / {p.get('rolled_back', 0)}",
                f"{p['rss_start_mb']:.1f} -> {p['rss_end_mb']:.1f}",
                f"{p['rss_growth_mb']:+.2f}",
                len(p["crashes"]) + p["errors_logged_count"],
                f"{p['loadavg_before'][0]:.1f} / {p['loadavg_after'][0]:.1f}",
            ]
        )
    headers = [
        "phase", "control thread", "Hz", "ticks", "missed", "max lateness ms", "tick work p99 / max ms",
        "act p50 / p99 / max µs", "episodes / task changes", "adaptations / rolled back", "RSS MB",
        "growth MB", "exceptions", "load (1 min) before / after",
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
    text = (
        f"One process, `AdaptiveController` against `{ENV_ID}` (a new task from the slide preset's test split at "
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
        "`tick work` = `act` + the plant step (PyBullet), timed on the control thread; a tick is missed when it "
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
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args(argv)
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
                )  # fmt: skip
            results["phases"].append(res)
    results["seconds"] = time.perf_counter() - t_all
    results["ok"] = bool(results["phases"]) and all(p["ok"] for p in results["phases"])
    cmd = command_line()
    path = write_results(NAME + ("_quick" if args.quick else ""), results, command=cmd)
    log.info("wrote %s", path)
    body = _markdown(results)
    print("\n" + body + "\n")
    if not args.quick and not args.no_markdown:  # quick runs leave BENCHMARKS.md alone
        update_markdown_section(NAME, body, command=cmd, date=now_utc())
        log.info("updated the %s section of BENCHMARKS.md", NAME)
    for p in results["phases"]:
        for line in p["crashes"] + p["errors_logged"][:10]:
            print(f"{p['phase']}: {line}", file=sys.stderr)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
