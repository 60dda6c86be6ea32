"""Env soak: 10,000 task-changing resets in one process; RSS growth, crashes, time per reset.

Three phases on one ``robot_meta/PandaPush-v0`` env drawing tasks from ``manipulation-all`` (every
shape, terrain and size the scene can build):

1. ``resets``: 10,000 resets, each with a new task (a step every 10 resets, so the scene also
   survives physics between task changes);
2. ``seeded``: seeded resets after a few steps - the trainer's per-visit pattern, which rebuilds the
   world in the same client (``resetSimulation``);
3. ``reconnect``: the physics client is killed (``pybullet.disconnect``) and the next reset
   reconnects and rebuilds the world - the recovery path of a crashed physics server.

RSS is sampled after a warm-up (the scene caches one body per reachable geometry cell) and then
regularly; growth is reported per phase, with the bound the tests use (2 KB per reset).

    .venv/bin/python benchmarks/soak_env.py            # 10,000 + 200 + 50 (make bench)
    .venv/bin/python benchmarks/soak_env.py --quick    # 2,000 + 40 + 10
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import psutil
import pybullet
from common import command_line, markdown_table, update_markdown_section, write_results

import robot_meta  # noqa: F401  (registers the ids)
from robot_meta.envs import RobotTaskEnv, TaskDistribution

NAME = "soak_env"
ENV_ID = "robot_meta/PandaPush-v0"
WARMUP = 500
#: The bound of tests/envs/test_envs_memory.py: 2 KB of RSS per reset.
BOUND_PER_RESET = 2048


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _phase(name: str, n: int, warmup: int, one: Any, samples: int = 20) -> dict[str, Any]:
    for i in range(warmup):
        one(i)
    start = _rss()
    curve = [(0, start)]
    every = max(1, n // samples)
    t0 = time.perf_counter()
    for i in range(n):
        one(i)
        if (i + 1) % every == 0:
            curve.append((i + 1, _rss()))
    wall = time.perf_counter() - t0
    end = _rss()
    peak = max(r for _, r in curve)
    growth = end - start
    # Slope of the second half of the curve: a leak keeps growing, a cache fill does not.
    half = curve[len(curve) // 2 :]
    xs = np.array([c for c, _ in half], dtype=float)
    ys = np.array([r for _, r in half], dtype=float)
    slope = float(np.polyfit(xs, ys, 1)[0]) if len(half) >= 2 and np.ptp(xs) > 0 else 0.0
    res = {
        "phase": name,
        "count": n,
        "warmup": warmup,
        "rss_start_mb": start / 2**20,
        "rss_end_mb": end / 2**20,
        "rss_peak_mb": peak / 2**20,
        "growth_mb": growth / 2**20,
        "growth_bytes_per_op": growth / n,
        "late_slope_bytes_per_op": slope,
        "ms_per_op": wall / n * 1e3,
        "wall_s": wall,
        "curve": [(c, r / 2**20) for c, r in curve],
        "within_bound": growth < BOUND_PER_RESET * n,
    }
    print(
        f"{name}: {n} in {wall:.1f} s ({res['ms_per_op']:.2f} ms each), RSS {res['rss_start_mb']:.1f} -> "
        f"{res['rss_end_mb']:.1f} MB (growth {res['growth_mb']:+.2f} MB, {res['growth_bytes_per_op']:+.0f} B/op)",
        flush=True,
    )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 resets, 40 seeded, 10 reconnects")
    ap.add_argument("--resets", type=int, default=None)
    ap.add_argument("--seeded", type=int, default=None)
    ap.add_argument("--reconnects", type=int, default=None)
    args = ap.parse_args(argv)
    n_resets = args.resets or (2_000 if args.quick else 10_000)
    n_seeded = args.seeded or (40 if args.quick else 200)
    n_reconnects = args.reconnects or (10 if args.quick else 50)

    dist = TaskDistribution.preset("manipulation-all")
    env = gym.make(ENV_ID, distribution=dist)
    u = env.unwrapped
    assert isinstance(u, RobotTaskEnv)
    env.reset(seed=0)
    crashes: list[str] = []
    changes = 0
    previous = [u.get_task()]

    def reset(i: int) -> None:
        nonlocal changes
        try:
            obs, info = env.reset()
            if info["task"] != previous[0]:
                changes += 1
            previous[0] = info["task"]
            if i % 10 == 0:
                obs, *_ = env.step(0)
            if not np.isfinite(obs).all():
                crashes.append(f"reset {i}: non-finite observation for {info['task']}")
        except Exception as exc:
            crashes.append(f"reset {i}: {type(exc).__name__}: {exc}")

    def seeded(i: int) -> None:
        try:
            env.reset(seed=i)
            for _ in range(3):
                env.step(0)
        except Exception as exc:
            crashes.append(f"seeded reset {i}: {type(exc).__name__}: {exc}")

    def reconnect(i: int) -> None:
        try:
            pybullet.disconnect(physicsClientId=u.sim.client)
            env.reset()
            env.step(0)
        except Exception as exc:
            crashes.append(f"reconnect {i}: {type(exc).__name__}: {exc}")

    phases = [_phase("resets", n_resets, WARMUP, reset)]
    n_total = WARMUP + n_resets
    changes_all = changes
    bodies_cached = u.scene.n_bodies_built
    phases.append(_phase("seeded", n_seeded, 50, seeded))
    connects_before = u.sim.connects
    phases.append(_phase("reconnect", n_reconnects, 5, reconnect))
    reconnects_done = u.sim.connects - connects_before
    bodies = u.sim.getNumBodies()
    env.close()

    results: dict[str, Any] = {
        "env_id": ENV_ID,
        "distribution": "manipulation-all",
        "phases": phases,
        "task_changing_resets": changes_all,
        "resets_total": n_total,
        "scene_bodies_cached_after_resets": bodies_cached,
        "reconnects": reconnects_done,
        "bodies_at_end": bodies,
        "crashes": crashes,
    }
    cmd = command_line()
    write_results(NAME + ("_quick" if args.quick else ""), results, command=cmd)
    ok = not crashes and all(p["within_bound"] for p in phases)
    labels = {
        "resets": "task-changing resets",
        "seeded": "seeded resets (world rebuilt)",
        "reconnect": "client killed + reconnect",
    }
    rows = [
        [
            labels[p["phase"]],
            f"{p['count']:,}",
            f"{p['rss_start_mb']:.1f}",
            f"{p['rss_end_mb']:.1f}",
            f"{p['growth_mb']:+.2f}",
            f"{p['growth_bytes_per_op']:+.0f}",
            f"{p['late_slope_bytes_per_op']:+.0f}",
            f"{p['ms_per_op']:.2f}",
            "yes" if p["within_bound"] else "NO",
        ]
        for p in phases
    ]
    body = (
        f"One process, one `{ENV_ID}` env drawing from `manipulation-all`; RSS after a warm-up that fills the "
        f"scene's body cache. Result: **{'PASS' if ok else 'FAIL'}** - {len(crashes)} crashes, "
        f"{changes_all:,} of {n_total:,} resets (warm-up included) changed the task, {bodies_cached} cached "
        f"object/heightfield bodies after them, {reconnects_done} reconnects. Seeded resets and reconnects "
        "rebuild the world (robot, surface, object), which also empties the body cache.\n\n"
        + markdown_table(
            [
                "phase",
                "count",
                "RSS start MB",
                "RSS end MB",
                "growth MB",
                "B / op",
                "late slope B / op",
                "ms / op",
                f"< {BOUND_PER_RESET} B / op",
            ],
            rows,
        )
    )
    if not args.quick:  # quick runs write NAME_quick.json and leave BENCHMARKS.md alone
        update_markdown_section(NAME, body, command=cmd)
    print(body)
    if crashes:
        print("\n".join(crashes[:20]), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
