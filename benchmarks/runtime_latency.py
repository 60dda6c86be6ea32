"""On-device runtime: act latency vs torch eager, adapt() latency, missed ticks, success vs torch.

All measurements run in one process, side by side, on one thread (``torch.set_num_threads(1)``,
single-threaded onnxruntime sessions):

* ``act``: `AdaptivePolicy.act` (validation + onnxruntime + argmax) against the same network in
  torch eager (``int(qnet(obs).argmax())`` under ``inference_mode``), interleaved in rounds over a
  pool of observations, p50/p99/max per call. Network: the Panda slide policy shape
  (28 -> 64 -> 64 -> 17), normaliser inside.
* ``adapt``: one `AdaptivePolicy.adapt` on 64 transitions (K = 5 TD steps; the ridge solve; and
  the context head rule, K = 5 steps on a D = 4 context), including the batched features pass
  through onnxruntime.
* ``ticks``: `AdaptiveController` at 100 Hz against ``robot_meta/PandaSlide-v0`` with a background
  adaptation requested every 10 ticks; missed ticks, lateness, act latency inside the loop.
* ``success`` (for each trained run ``--run RUN``, default ``demo_out/run``): the same
  held-out tasks and seeds adapted by the torch rule (`adapt_head`) and by the runtime: success
  before/after and how many episodes took exactly the same actions.

Targets (issue 5): act p99 <= 50 us and >= 2x faster than torch eager; adapt(64) p99 <= 1 ms;
zero missed ticks in 10,000 at 100 Hz; runtime success = torch success within noise.

    .venv/bin/python benchmarks/runtime_latency.py            # full (~3 min)
    .venv/bin/python benchmarks/runtime_latency.py --quick    # ~30 s, writes runtime_latency_quick.json

Full runs write ``benchmarks/results/runtime_latency.json`` and the ``runtime_latency`` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, command_line, markdown_table, now_utc, update_markdown_section, write_results

log = logging.getLogger("runtime_latency")

TARGET_ACT_P99_US = 50.0
TARGET_SPEEDUP = 2.0
TARGET_ADAPT_P99_MS = 1.0
ENV_ID = "robot_meta/PandaSlide-v0"
#: The `adapt` row of the context head rule (MetaDQN ``inner_rule="context_td"``, D = 4, K = 5).
CONTEXT_METHOD = "context_td (D=4)"


def _pct(seconds: list[float] | np.ndarray, scale: float = 1e6) -> dict[str, float]:
    a = np.asarray(seconds) * scale
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "n": int(a.size),
    }


def _synthetic_run(tmp: Path, context_dim: int = 0) -> Any:
    """A slide-shaped TrainedRun with random weights (latency does not depend on the values).

    ``context_dim > 0``: a MetaDQN run of the context head rule (`ContextHeadRule`, K = 5 steps on c).
    """
    import torch

    from robot_meta.meta import ContextHeadRule, HeadAdaptation, TrainedRun, make_config
    from robot_meta.policies import QNetwork

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    overrides = {"inner_rule": "context_td", "context_dim": context_dim} if context_dim else None
    config = make_config("meta-dqn", budget="small", env_id=ENV_ID, preset="slide", overrides=overrides)
    qnet = QNetwork(28, 17, (64, 64), head_context_dim=context_dim)
    qnet.obs_norm.update(rng.normal(rng.uniform(-1, 1, 28), rng.uniform(0.05, 1.0, 28), size=(5000, 28)))
    rule: Any = (
        ContextHeadRule(steps=5, lr=0.5, gamma=0.98, huber_delta=1.0, context_dim=context_dim)
        if context_dim
        else HeadAdaptation(steps=5, lr=0.01, gamma=0.98, huber_delta=1.0)
    )
    info = {"task_distribution": None, "adaptation": rule.to_dict(), "policy": qnet.spec()}
    return TrainedRun(tmp / "run", "meta-dqn", config, qnet.eval(), None, rule, 0, info)


def bench_act(policy: Any, qnet: Any, rounds: int, calls: int, realtime: int = 0) -> dict[str, Any]:
    import torch

    from robot_meta.runtime import realtime_scheduling

    rng = np.random.default_rng(1)
    mean = qnet.obs_norm.mean.numpy()
    std = np.sqrt(qnet.obs_norm.var.numpy())
    pool = (mean + std * rng.standard_normal((256, 28))).astype(np.float32)
    pool_t = [torch.from_numpy(o) for o in pool]
    agree = sum(policy.act(o) == int(qnet(t).argmax()) for o, t in zip(pool, pool_t, strict=True))

    def ort_call(i: int) -> int:
        return policy.act(pool[i & 255])

    def torch_call(i: int) -> int:
        with torch.inference_mode():
            return int(qnet(pool_t[i & 255]).argmax())

    times: dict[str, list[float]] = {"runtime (onnxruntime)": [], "torch eager": []}
    fns = {"runtime (onnxruntime)": ort_call, "torch eager": torch_call}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for name in order:
            fn = fns[name]
            for i in range(200):  # warm-up
                fn(i)
            gc.disable()
            ts = times[name]
            perf = time.perf_counter
            with realtime_scheduling(realtime):
                for i in range(calls):
                    if i % 500 == 499:
                        time.sleep(0.001)  # let the other processes run (a real-time loop must sleep)
                    t0 = perf()
                    fn(i)
                    ts.append(perf() - t0)
            gc.enable()
    stats = {name: _pct(ts) for name, ts in times.items()}
    rt, te = stats["runtime (onnxruntime)"], stats["torch eager"]
    return {
        "stats_us": stats,
        "speedup_p50": te["p50"] / rt["p50"],
        "speedup_p99": te["p99"] / rt["p99"],
        "greedy_agreement": f"{agree}/256",
    }


def bench_adapt(
    export_dir: Path, repeats: int, realtime: int = 0, methods: tuple[str, ...] = ("td", "ridge")
) -> dict[str, Any]:
    from robot_meta.runtime import AdaptConfig, AdaptivePolicy, realtime_scheduling

    out: dict[str, Any] = {}
    rng = np.random.default_rng(2)
    obs = (rng.standard_normal((65, 28))).astype(np.float32)
    for method in methods:
        policy = AdaptivePolicy.load(
            export_dir, AdaptConfig(method=method, support_size=64, trust_region=100.0)
        )
        for i in range(64):
            policy.observe(obs[i], int(rng.integers(17)), float(rng.normal()), obs[i + 1], False)
        for _ in range(20):
            policy.adapt()
        ts = []
        gc.disable()
        with realtime_scheduling(realtime):
            for i in range(repeats):
                if i % 100 == 99:
                    time.sleep(0.001)
                t0 = time.perf_counter()
                report = policy.adapt()
                ts.append(time.perf_counter() - t0)
        gc.enable()
        assert report.transitions == 64 and report.applied, report
        out[method] = {**_pct(ts, 1e3), "steps": report.steps}
    return out


def bench_ticks(export_dir: Path, ticks: int, realtime_priority: int = 0) -> dict[str, Any]:
    import gymnasium as gym

    import robot_meta  # noqa: F401
    from robot_meta.runtime import AdaptiveController, AdaptivePolicy, ControllerConfig

    policy = AdaptivePolicy.load(export_dir)
    env = gym.make(ENV_ID, action_mode="discrete")
    load_before = os.getloadavg()
    try:
        cfg = ControllerConfig(
            rate_hz=100.0, adapt_every=10, adapt_at_episode_end=True, realtime_priority=realtime_priority
        )
        report = AdaptiveController(policy, env, cfg).run(ticks=ticks, seed=0)
    finally:
        env.close()
    adapt_ms = _pct([r.seconds for r in report.adapt_reports], 1e3) if report.adapt_reports else {}
    return {
        "scheduling": f"SCHED_FIFO {realtime_priority}" if realtime_priority else "default (SCHED_OTHER)",
        "ticks": report.ticks,
        "missed_ticks": report.missed_ticks,
        "max_lateness_ms": report.max_lateness_s * 1e3,
        "episodes": len(report.episodes),
        "adaptations": report.adaptations,
        "rolled_back": report.rolled_back,
        "act_in_loop_us": report.act_latency_us(),
        "background_adapt_ms": adapt_ms,
        "wall_time_s": report.wall_time_s,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def bench_success(run_dir: Path, export_dir: Path, n_tasks: int, episodes: int) -> dict[str, Any]:
    """The same tasks and seeds, adapted by torch (`adapt_head`) and by the runtime; rate 0."""
    import gymnasium as gym
    import torch

    import robot_meta  # noqa: F401
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta import adapt_head, load_run
    from robot_meta.runtime import AdaptivePolicy, ControllerConfig, run_trials

    run = load_run(run_dir)
    assert run.adaptation is not None, "success comparison needs a head-adapting run (meta-dqn or reptile)"
    dist = TaskDistribution.from_dict(run.info["task_distribution"])
    tasks = dist.split("test").sample(n_tasks, np.random.default_rng(1))
    env = gym.make(run.config.env_id, action_mode="discrete")
    qnet = run.policy
    support = int(getattr(run.config, "support_size", 64))
    torch_success: list[list[bool]] = []
    torch_actions: list[list[list[int]]] = []
    for i, task in enumerate(tasks):
        w, b = qnet.head.weight.detach(), qnet.head.bias.detach()
        rows: list[tuple[np.ndarray, int, float, np.ndarray, float]] = []
        succ, acts_task = [], []
        for e in range(episodes):
            obs, _ = env.reset(seed=1000 + i if e == 0 else None, options={"task": task})
            done, success, acts = False, False, []
            while not done:
                with torch.inference_mode():
                    f = qnet.features(torch.from_numpy(np.asarray(obs, np.float32)))
                    a = int((w @ f + b).argmax())
                nxt, r, term, trunc, info = env.step(a)
                rows.append((obs, a, float(r), nxt, float(term)))
                acts.append(a)
                obs, done, success = nxt, term or trunc, bool(info.get("is_success", False))
            succ.append(success)
            acts_task.append(acts)
            s = rows[-support:]
            with torch.no_grad():
                o = torch.from_numpy(np.stack([x[0] for x in s]).astype(np.float32))
                n = torch.from_numpy(np.stack([x[3] for x in s]).astype(np.float32))
                kwargs: dict[str, Any] = {}
                if getattr(run.adaptation, "n_step", 1) > 1:
                    from robot_meta.meta.adaptation import successor_flags  # type: ignore[attr-defined]

                    kwargs["successor"] = successor_flags(o, n)
                w, b = adapt_head(
                    qnet.head.weight.detach(), qnet.head.bias.detach(), qnet.features(o),
                    torch.tensor([x[1] for x in s]), torch.tensor([x[2] for x in s], dtype=torch.float32),
                    qnet.features(n), torch.tensor([x[4] for x in s], dtype=torch.float32), run.adaptation, **kwargs,
                )  # fmt: skip
        torch_success.append(succ)
        torch_actions.append(acts_task)

    policy = AdaptivePolicy.load(export_dir)
    rt_actions: list[int] = []

    class Recorder:
        def reset(self, **kw: Any) -> Any:
            return env.reset(**kw)

        def step(self, a: int) -> Any:
            rt_actions.append(int(a))
            return env.step(a)

    report = run_trials(
        policy, Recorder(), tasks, episodes=episodes, seed=1000, config=ControllerConfig(rate_hz=0)
    )
    env.close()
    flat_torch = [a for task in torch_actions for ep in task for a in ep]
    same_episodes = 0
    pos = 0
    for task in torch_actions:
        for ep in task:
            same_episodes += rt_actions[pos : pos + len(ep)] == ep
            pos += len(ep)
    t_before = float(np.mean([s[0] for s in torch_success]))
    t_after = float(np.mean([x for s in torch_success for x in s[1:]]))
    return {
        "tasks": n_tasks,
        "episodes_per_task": episodes,
        "torch": {"success_before": t_before, "success_after": t_after},
        "runtime": {"success_before": report.success_before, "success_after": report.success_after},
        "identical_episodes": f"{same_episodes}/{n_tasks * episodes}",
        "identical_actions": bool(flat_torch == rt_actions),
        "run": str(run_dir),
    }


def _markdown(res: dict[str, Any]) -> str:
    parts: list[str] = [
        "Measured on the shared 2-core machine (its load averages are in the control-loop table; under load "
        "the default-scheduling rows include preemption by other jobs); the SCHED_FIFO rows (the measuring "
        "thread at real-time priority, sleeping 1 ms every 500 calls) show the code's own cost."
    ]
    for key, sched in (("act", "default (SCHED_OTHER)"), ("act_realtime", "SCHED_FIFO 10")):
        act = res[key]
        st = act["stats_us"]
        rt = st["runtime (onnxruntime)"]
        ok_p99 = rt["p99"] <= TARGET_ACT_P99_US
        ok_speed = act["speedup_p50"] >= TARGET_SPEEDUP and act["speedup_p99"] >= TARGET_SPEEDUP
        rows = [
            [name, f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.0f}", s["n"]] for name, s in st.items()
        ]
        parts += [
            f"#### `act`: one observation, one thread, {sched} (28 -> 64 -> 64 -> 17, normaliser in the graph)",
            markdown_table(["implementation", "p50 µs", "p99 µs", "max µs", "calls"], rows),
            f"Runtime vs torch eager: {act['speedup_p50']:.1f}x faster at p50, {act['speedup_p99']:.1f}x at p99 "
            f"(target >= {TARGET_SPEEDUP:g}x: {'met' if ok_speed else 'MISSED'}); runtime p99 {rt['p99']:.1f} µs "
            f"(target <= {TARGET_ACT_P99_US:g} µs: {'met' if ok_p99 else 'MISSED'}). Greedy actions agree on "
            f"{act['greedy_agreement']} observations.",
        ]
    rows = []
    for key, sched in (("adapt", "default"), ("adapt_realtime", "SCHED_FIFO 10")):
        for m, s in res[key].items():
            rows.append([m, sched, s["steps"], f"{s['p50']:.3f}", f"{s['p99']:.3f}", f"{s['max']:.3f}"])
    verdict = ", ".join(
        f"{m} {sched}: {'met' if res[key][m]['p99'] <= TARGET_ADAPT_P99_MS else 'MISSED'}"
        for key, sched in (("adapt", "default"), ("adapt_realtime", "SCHED_FIFO 10"))
        for m in ("td", CONTEXT_METHOD)
        if m in res[key]
    )
    parts += [
        "#### `adapt()` on 64 transitions (features pass through onnxruntime + the numpy head rule)",
        markdown_table(["method", "scheduling", "steps", "p50 ms", "p99 ms", "max ms"], rows),
        f"Target: TD (head and context rule) p99 <= {TARGET_ADAPT_P99_MS:g} ms ({verdict}).",
    ]
    rows = []
    for tk in res["ticks"]:
        lat = tk["act_in_loop_us"]
        rows.append(
            [
                tk["scheduling"],
                tk["ticks"],
                tk["missed_ticks"],
                f"{tk['max_lateness_ms']:.2f}",
                tk["episodes"],
                tk["adaptations"],
                tk["rolled_back"],
                f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['max']:.0f}",
                f"{tk['loadavg_before'][0]:.1f} / {tk['loadavg_after'][0]:.1f}",
            ]
        )
    headers = [
        "control thread", "ticks", "missed", "max lateness ms", "episodes", "adaptations", "rolled back",
        "act in loop p50/p99/max µs", "load avg (1 min) before/after",
    ]  # fmt: skip
    verdicts = ", ".join(
        f"{tk['scheduling']}: {'met' if tk['missed_ticks'] == 0 and tk['ticks'] >= 10_000 else 'MISSED'}"
        for tk in res["ticks"]
    )
    parts += [
        "#### Control loop at 100 Hz against `robot_meta/PandaSlide-v0`, adaptation every 10 ticks in the background",
        markdown_table(headers, rows),
        f"Target: zero missed ticks in 10,000 ({verdicts}). The env step (PyBullet, the stand-in robot) runs on "
        "the control thread. `ControllerConfig(realtime_priority=10)` puts the control thread under SCHED_FIFO "
        "for the run, as a controller on a real-time kernel would. `act` inside the loop is slower than in the "
        "tight loop above: after each 10 ms sleep the caches are cold.",
    ]
    successes = res.get("success") or []
    if successes:
        rows = []
        for sc in successes:
            run_name = f"`{Path(sc['run']).relative_to(REPO_ROOT) if Path(sc['run']).is_relative_to(REPO_ROOT) else sc['run']}`"
            for label, key in (
                ("torch (`adapt_head`)", "torch"),
                ("runtime (numpy + onnxruntime)", "runtime"),
            ):
                rows.append(
                    [
                        run_name,
                        label,
                        f"{sc[key]['success_before']:.2f}",
                        f"{sc[key]['success_after']:.2f}",
                        sc["identical_episodes"],
                    ]
                )
        sc0 = successes[0]
        parts += [
            f"#### Success on held-out tasks: torch rule vs runtime (same {sc0['tasks']} test-split tasks and "
            f"seeds, {sc0['episodes_per_task']} episodes each: 1 before, then adapted after every episode)",
            markdown_table(
                ["run", "adapted by", "success before", "success after", "episodes with identical actions"],
                rows,
            ),
        ]
    else:
        parts.append(
            "Success comparison skipped: no trained run (pass `--run RUN` or run `make demo` first)."
        )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="short smoke run (~30 s)")
    ap.add_argument(
        "--run",
        action="append",
        default=[],
        help="trained run for the success comparison (repeatable; default: demo_out/run if it exists)",
    )
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore")
    import torch

    from robot_meta.export import ExportConfig, export_run, export_trained
    from robot_meta.runtime import AdaptivePolicy

    torch.set_num_threads(1)
    quick = args.quick
    results: dict[str, Any] = {"quick": quick}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="runtime_latency_") as tmp_s:
        tmp = Path(tmp_s)
        run = _synthetic_run(tmp)
        export_trained(run, tmp / "export", config=ExportConfig(parity_samples=1024))
        policy = AdaptivePolicy.load(tmp / "export")
        log.info("act latency ...")
        rounds, calls = (4, 2000) if quick else (10, 5000)
        results["act"] = bench_act(policy, run.policy, rounds, calls)
        results["act_realtime"] = bench_act(policy, run.policy, rounds // 2, calls, realtime=10)
        log.info("adapt latency ...")
        repeats = 300 if quick else 2000
        results["adapt"] = bench_adapt(tmp / "export", repeats)
        results["adapt_realtime"] = bench_adapt(tmp / "export", repeats, realtime=10)
        ctx_run = _synthetic_run(tmp / "ctx", context_dim=4)
        export_trained(ctx_run, tmp / "export_context", config=ExportConfig(parity_samples=1024))
        for key, prio in (("adapt", 0), ("adapt_realtime", 10)):
            ctx = bench_adapt(tmp / "export_context", repeats, realtime=prio, methods=("td",))
            results[key][CONTEXT_METHOD] = ctx["td"]
        log.info("control loop at 100 Hz ...")
        n_ticks = 1000 if quick else 10_000
        results["ticks"] = [bench_ticks(tmp / "export", n_ticks), bench_ticks(tmp / "export", n_ticks, 10)]
        results["success"] = []
        for i, run_arg in enumerate(args.run or [str(REPO_ROOT / "demo_out" / "run")]):
            run_dir = Path(run_arg).resolve()
            if not (run_dir / "checkpoint.pt").is_file():
                log.warning("no checkpoint in %s: skipping its success comparison", run_dir)
                continue
            log.info("success: torch vs runtime on %s ...", run_dir)
            export_run(run_dir, tmp / f"trained{i}", config=ExportConfig(parity_samples=1024))
            results["success"].append(
                bench_success(run_dir, tmp / f"trained{i}", n_tasks=3 if quick else 10, episodes=3)
            )
    results["seconds"] = time.perf_counter() - t_all
    name = "runtime_latency_quick" if quick else "runtime_latency"
    cmd = command_line()
    path = write_results(name, results, cmd)
    log.info("wrote %s", path)
    body = _markdown(results)
    print("\n" + body + "\n")
    if not quick and not args.no_markdown:
        update_markdown_section("runtime_latency", body, cmd, now_utc())
        log.info("updated the runtime_latency section of BENCHMARKS.md")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
