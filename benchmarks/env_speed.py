"""Env steps/s of ``robot_meta/PandaPush-v0`` against panda-gym ``PandaPush-v3`` and raw physics.

All variants run in one process, interleaved round by round (the order rotates each round), with
the same physics step (1/500 s x 20 substeps per control step), random actions and the resets
that the 50-step time limit triggers included in the timing:

* ``ours-20it``  -- robot_meta at its default 20 solver iterations (discrete actions);
* ``ours-50it``  -- the same env with ``numSolverIterations=50`` (PyBullet's and panda-gym's default);
* ``panda-gym``  -- ``PandaPush-v3`` with its native continuous actions (50 iterations);
* ``raw-hold-20it`` / ``raw-hold-50it`` -- a plain loop of ``env.unwrapped.sim.stepSimulation()``
  on the same bodies with the arm holding still (no Python env code at all).

Inside each rollout the env's ``sim.step()`` is timed (a thin wrapper), so the physics time of the
*same* motion is known: the raw-physics limit is ``1 / physics time per step`` and the physics
fraction ``physics time / total time`` is the env's speed as a fraction of that limit.
Finally cProfile breaks the non-physics overhead per step down by function.

Targets (issue): ours-20it >= 1.25x panda-gym, and >= 85 % of the raw-physics limit.

A second part (issue 19) compares every family side by side in the same way: for each of reach, push,
slide and pick-and-place, ``ours-discrete`` and ``ours-continuous`` (robot_meta at its defaults) and
the panda-gym counterpart (``PandaReach-v3``, ``PandaPush-v3``, ``PandaSlide-v3``,
``PandaPickAndPlace-v3``, native continuous actions), all twelve interleaved chunk by chunk in one
run. Target: every family >= 1.25x its counterpart in both action modes.

    .venv/bin/python benchmarks/env_speed.py                    # both parts (~4 min)
    .venv/bin/python benchmarks/env_speed.py --part families    # the four families only (~2.5 min)
    .venv/bin/python benchmarks/env_speed.py --quick            # 2 rounds x 400 steps (~40 s)

Full runs write ``benchmarks/results/env_speed.json`` / ``env_speed_families.json`` and the
``env_speed`` / ``env_speed_families`` sections of BENCHMARKS.md; ``--quick`` runs write
``*_quick.json`` and leave BENCHMARKS.md alone.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from common import REPO_ROOT, command_line, markdown_table, now_utc, update_markdown_section, write_results

log = logging.getLogger("env_speed")

OUR_ID = "robot_meta/PandaPush-v0"
#: family -> (our id, panda-gym's counterpart)
FAMILY_IDS: dict[str, tuple[str, str]] = {
    "reach": ("robot_meta/PandaReach-v0", "PandaReach-v3"),
    "push": ("robot_meta/PandaPush-v0", "PandaPush-v3"),
    "slide": ("robot_meta/PandaSlide-v0", "PandaSlide-v3"),
    "pick_place": ("robot_meta/PandaPickPlace-v0", "PandaPickAndPlace-v3"),
}
PANDA_GYM_ID = "PandaPush-v3"
TARGET_VS_PANDA_GYM = 1.25
TARGET_PHYSICS_FRACTION = 0.85


class StepTimer:
    """Replace ``obj.step`` by a timed call (wall clock and this thread's CPU time).

    `seconds`, `cpu_seconds` and `calls` accumulate until `clear()`. The two clock reads cost about
    1.2 µs per call, i.e. < 0.1 % of a step.
    """

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.original: Callable[[], None] = obj.step
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0
        perf, cpu = time.perf_counter, time.thread_time
        original = self.original

        def timed() -> None:
            c0, t0 = cpu(), perf()
            original()
            t1, c1 = perf(), cpu()
            self.seconds += t1 - t0
            self.cpu_seconds += c1 - c0
            self.calls += 1

        self.timed = timed
        self.install()

    def install(self) -> None:
        self.obj.step = self.timed

    def uninstall(self) -> None:
        self.obj.step = self.original

    def clear(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0


@dataclass
class Variant:
    """One measured configuration, its per-round samples and the state of the round in progress.

    A round is run in chunks (`run_chunk`) so that the variants can be interleaved finely: all of
    them then see the same background load, which on a shared machine matters more than anything.
    """

    name: str
    label: str
    env: gym.Env[Any, Any]
    kind: str  # "rollout" or "raw"
    make_actions: Callable[[np.random.Generator, int], list[Any]] | None = None
    timer: StepTimer | None = None
    solver_iterations: int | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)
    _actions: list[Any] = field(default_factory=list)
    _pos: int = 0
    _acc: dict[str, float] = field(default_factory=dict)

    def start_round(self, seed: int, steps: int) -> None:
        self.env.reset(seed=seed)
        if self.solver_iterations is not None:  # a seeded reset may rebuild the world: check it held
            params = self.env.unwrapped.sim.getPhysicsEngineParameters()  # type: ignore[attr-defined]
            if params["numSolverIterations"] != self.solver_iterations:
                raise RuntimeError(
                    f"{self.name}: numSolverIterations is {params['numSolverIterations']} after reset, "
                    f"expected {self.solver_iterations}"
                )
        self._actions = self.make_actions(np.random.default_rng(seed), steps) if self.make_actions else []
        self._pos = 0
        self._acc = dict.fromkeys(("steps", "seconds", "cpu_seconds", "resets", "reset_s"), 0.0)
        if self.timer is not None:
            self.timer.clear()

    def run_chunk(self, n: int) -> None:
        if self.kind == "rollout":
            self._rollout_chunk(n)
        else:
            self._raw_chunk(n)

    def _rollout_chunk(self, n: int) -> None:
        """`n` env steps with pre-drawn random actions; resets on termination/truncation are timed too."""
        actions = self._actions[self._pos : self._pos + n]
        self._pos += len(actions)
        env, acc = self.env, self._acc
        perf, cpu = time.perf_counter, time.thread_time
        resets, reset_s = 0, 0.0
        c0, t0 = cpu(), perf()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                r0 = perf()
                env.reset()
                reset_s += perf() - r0
                resets += 1
        acc["seconds"] += perf() - t0
        acc["cpu_seconds"] += cpu() - c0
        acc["steps"] += len(actions)
        acc["resets"] += resets
        acc["reset_s"] += reset_s

    def _raw_chunk(self, n: int) -> None:
        """A plain ``stepSimulation`` loop on this env's world, the arm holding its start pose."""
        step_simulation = self.env.unwrapped.sim.stepSimulation  # type: ignore[attr-defined]
        perf, cpu = time.perf_counter, time.thread_time
        c0, t0 = cpu(), perf()
        for _ in range(n):
            step_simulation()
        self._acc["seconds"] += perf() - t0
        self._acc["cpu_seconds"] += cpu() - c0
        self._acc["steps"] += n

    def finish_round(self) -> dict[str, float]:
        acc = self._acc
        steps, total, total_cpu = acc["steps"], acc["seconds"], acc["cpu_seconds"]
        res = {
            "steps": steps,
            "seconds": total,
            "steps_per_s": steps / total,
            "cpu_seconds": total_cpu,
            "steps_per_cpu_s": steps / total_cpu,
        }
        if self.kind == "raw":
            res["physics_us_per_step"] = total / steps * 1e6
        else:
            assert self.timer is not None
            phys, phys_cpu = self.timer.seconds, self.timer.cpu_seconds
            res.update(
                {
                    "physics_s": phys,
                    "physics_us_per_step": phys / steps * 1e6,
                    "physics_limit_steps_per_s": steps / phys,
                    "physics_fraction": phys / total,
                    "physics_fraction_cpu": phys_cpu / total_cpu,
                    "non_physics_us_per_step": (total - phys) / steps * 1e6,
                    "resets": acc["resets"],
                    "reset_us": acc["reset_s"] / acc["resets"] * 1e6 if acc["resets"] else 0.0,
                    "reset_us_per_step": acc["reset_s"] / steps * 1e6,
                }
            )
        self.rounds.append(res)
        return res


def make_variants() -> list[Variant]:
    import panda_gym  # noqa: F401  (registers PandaPush-v3)

    import robot_meta  # noqa: F401  (registers robot_meta/*)

    ours20, ours50, raw20, raw50 = (gym.make(OUR_ID) for _ in range(4))
    for env in (ours50, raw50):
        sim = env.unwrapped.sim  # type: ignore[attr-defined]
        if hasattr(sim, "set_solver_iterations"):  # kept across the world rebuild of a seeded reset
            sim.set_solver_iterations(50)
        else:
            sim.setPhysicsEngineParameter(numSolverIterations=50)
            sim.solver_iterations = 50  # re-applied by a seeded reset's world rebuild
    for env, iters in ((ours20, 20), (ours50, 50), (raw20, 20), (raw50, 50)):
        env.reset(seed=0)
        env.step(0)
        env.reset(seed=1)
        params = env.unwrapped.sim.getPhysicsEngineParameters()  # type: ignore[attr-defined]
        if params["numSolverIterations"] != iters or abs(params["fixedTimeStep"] - 0.04) > 1e-12:
            raise RuntimeError(f"unexpected physics parameters of {OUR_ID}: {params}")
    pg = gym.make(PANDA_GYM_ID)
    pg_sim = pg.unwrapped.sim  # type: ignore[attr-defined]
    pg_params = pg_sim.physics_client.getPhysicsEngineParameters()
    if abs(pg_params["fixedTimeStep"] - 0.002) > 1e-12 or pg_sim.n_substeps != 20:
        raise RuntimeError(
            f"unexpected panda-gym physics parameters: {pg_params}, n_substeps={pg_sim.n_substeps}"
        )

    n_ours = int(ours20.action_space.n)  # type: ignore[attr-defined]
    pg_dim = int(pg.action_space.shape[0])  # type: ignore[index]

    def ours_actions(rng: np.random.Generator, n: int) -> list[Any]:
        return [int(a) for a in rng.integers(n_ours, size=n)]

    def pg_actions(rng: np.random.Generator, n: int) -> list[Any]:
        return list(rng.uniform(-1.0, 1.0, size=(n, pg_dim)).astype(np.float32))

    return [
        Variant(
            "ours-20it",
            f"{OUR_ID}, 20 solver iterations (default), discrete",
            ours20,
            "rollout",
            ours_actions,
            StepTimer(ours20.unwrapped.sim),  # type: ignore[attr-defined]
            20,
        ),
        Variant(
            "ours-50it",
            f"{OUR_ID}, 50 solver iterations, discrete",
            ours50,
            "rollout",
            ours_actions,
            StepTimer(ours50.unwrapped.sim),  # type: ignore[attr-defined]
            50,
        ),
        Variant(
            "panda-gym",
            f"panda-gym {PANDA_GYM_ID} (50 solver iterations), continuous",
            pg,
            "rollout",
            pg_actions,
            StepTimer(pg_sim),
        ),
        Variant(
            "raw-hold-20it",
            "raw stepSimulation loop, same bodies, arm holding, 20 iterations",
            raw20,
            "raw",
            solver_iterations=20,
        ),
        Variant(
            "raw-hold-50it",
            "raw stepSimulation loop, same bodies, arm holding, 50 iterations",
            raw50,
            "raw",
            solver_iterations=50,
        ),
    ]


def _check_panda_gym_physics(env: gym.Env[Any, Any], env_id: str) -> Any:
    sim = env.unwrapped.sim  # type: ignore[attr-defined]
    params = sim.physics_client.getPhysicsEngineParameters()
    if abs(params["fixedTimeStep"] - 0.002) > 1e-12 or sim.n_substeps != 20:
        raise RuntimeError(
            f"unexpected physics parameters of {env_id}: {params}, n_substeps={sim.n_substeps}"
        )
    return sim


def make_family_variants(families: list[str]) -> list[Variant]:
    """ours-discrete, ours-continuous and panda-gym for each family (same physics step, checked)."""
    import panda_gym  # noqa: F401  (registers the -v3 ids)

    import robot_meta  # noqa: F401  (registers robot_meta/*)

    variants = []
    for family in families:
        our_id, pg_id = FAMILY_IDS[family]
        disc, cont = gym.make(our_id), gym.make(our_id, action_mode="continuous")
        for env in (disc, cont):
            env.reset(seed=0)
            params = env.unwrapped.sim.getPhysicsEngineParameters()  # type: ignore[attr-defined]
            if abs(params["fixedTimeStep"] - 0.04) > 1e-12 or params["numSubSteps"] != 20:
                raise RuntimeError(f"unexpected physics parameters of {our_id}: {params}")
        pg = gym.make(pg_id)
        pg_sim = _check_panda_gym_physics(pg, pg_id)
        n_disc = int(disc.action_space.n)  # type: ignore[attr-defined]
        cont_dim = int(cont.action_space.shape[0])  # type: ignore[index]
        pg_dim = int(pg.action_space.shape[0])  # type: ignore[index]

        def discrete(rng: np.random.Generator, n: int, k: int = n_disc) -> list[Any]:
            return [int(a) for a in rng.integers(k, size=n)]

        def continuous(rng: np.random.Generator, n: int, dim: int = cont_dim) -> list[Any]:
            return list(rng.uniform(-1.0, 1.0, size=(n, dim)).astype(np.float32))

        def pg_continuous(rng: np.random.Generator, n: int, dim: int = pg_dim) -> list[Any]:
            return list(rng.uniform(-1.0, 1.0, size=(n, dim)).astype(np.float32))

        variants += [
            Variant(
                f"{family}/ours-discrete",
                f"{our_id}, discrete (defaults: 20 solver iterations)",
                disc,
                "rollout",
                discrete,
                StepTimer(disc.unwrapped.sim),  # type: ignore[attr-defined]
            ),
            Variant(
                f"{family}/ours-continuous",
                f"{our_id}, continuous",
                cont,
                "rollout",
                continuous,
                StepTimer(cont.unwrapped.sim),  # type: ignore[attr-defined]
            ),
            Variant(
                f"{family}/panda-gym",
                f"panda-gym {pg_id}, continuous (50 solver iterations)",
                pg,
                "rollout",
                pg_continuous,
                StepTimer(pg_sim),
            ),
        ]
    return variants


def run_interleaved(variants: list[Variant], rounds: int, steps: int, chunk: int) -> None:
    """Warm up, then `rounds` rounds of `steps` steps per variant, interleaved in chunks (rotating order)."""
    for v in variants:  # warm-up (caches, first contacts), not recorded
        v.start_round(seed=999, steps=100)
        v.run_chunk(100)
        v.finish_round()
        v.rounds.clear()
    n_chunks = max(1, steps // chunk)
    for rnd in range(rounds):
        for v in variants:
            v.start_round(seed=1000 + rnd, steps=steps)
        for c in range(n_chunks):
            k = (rnd + c) % len(variants)  # rotate the order from chunk to chunk
            for v in variants[k:] + variants[:k]:
                v.run_chunk(
                    steps // n_chunks if c < n_chunks - 1 else steps - (n_chunks - 1) * (steps // n_chunks)
                )
        for v in variants:
            res = v.finish_round()
            extra = f", physics {100 * res['physics_fraction']:.1f} %" if "physics_fraction" in res else ""
            log.info("round %d  %-26s %7.0f steps/s%s", rnd + 1, v.name, res["steps_per_s"], extra)


def summarise_families(variants: list[Variant], families: list[str]) -> dict[str, Any]:
    by = {v.name: v for v in variants}

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in by[name].rounds)

    out: dict[str, Any] = {}
    for family in families:
        pg = f"{family}/panda-gym"
        fam: dict[str, Any] = {"ids": FAMILY_IDS[family], "variants": {}, "ratios": {}}
        for kind in ("ours-discrete", "ours-continuous", "panda-gym"):
            name = f"{family}/{kind}"
            fam["variants"][kind] = {
                "label": by[name].label,
                "steps_per_s": med(name, "steps_per_s"),
                "steps_per_cpu_s": med(name, "steps_per_cpu_s"),
                "physics_us_per_step": med(name, "physics_us_per_step"),
                "non_physics_us_per_step": med(name, "non_physics_us_per_step"),
                "per_round_steps_per_s": [r["steps_per_s"] for r in by[name].rounds],
            }
        for kind in ("ours-discrete", "ours-continuous"):
            name = f"{family}/{kind}"
            per_round = [
                a["steps_per_s"] / b["steps_per_s"]
                for a, b in zip(by[name].rounds, by[pg].rounds, strict=True)
            ]
            per_round_cpu = [
                a["steps_per_cpu_s"] / b["steps_per_cpu_s"]
                for a, b in zip(by[name].rounds, by[pg].rounds, strict=True)
            ]
            value = statistics.median(per_round)
            fam["ratios"][kind] = {
                "median": value,
                "per_round": per_round,
                "median_cpu_time": statistics.median(per_round_cpu),
                "target": TARGET_VS_PANDA_GYM,
                "met": value >= TARGET_VS_PANDA_GYM,
            }
        out[family] = fam
    return out


def families_markdown(
    summary: dict[str, Any], rounds: int, steps: int, chunk: int, load: tuple[tuple[float, ...], ...]
) -> str:
    rows = []
    for family, fam in summary.items():
        v, r = fam["variants"], fam["ratios"]

        def ratio(kind: str, r: dict[str, Any] = r) -> str:
            x = r[kind]
            met = "" if x["met"] else " **(missed)**"
            return f"{x['median']:.2f}x ({min(x['per_round']):.2f}-{max(x['per_round']):.2f}){met}"

        rows.append(
            [
                f"{family} (`{fam['ids'][0]}` / `{fam['ids'][1]}`)",
                f"{v['ours-discrete']['steps_per_s']:.0f}",
                f"{v['ours-continuous']['steps_per_s']:.0f}",
                f"{v['panda-gym']['steps_per_s']:.0f}",
                ratio("ours-discrete"),
                ratio("ours-continuous"),
                f"{r['ours-discrete']['median_cpu_time']:.2f}x / {r['ours-continuous']['median_cpu_time']:.2f}x",
                f"{v['ours-discrete']['physics_us_per_step']:.0f} / {v['ours-continuous']['physics_us_per_step']:.0f}"
                f" / {v['panda-gym']['physics_us_per_step']:.0f}",
                f"{v['ours-discrete']['non_physics_us_per_step']:.0f}"
                f" / {v['ours-continuous']['non_physics_us_per_step']:.0f}"
                f" / {v['panda-gym']['non_physics_us_per_step']:.0f}",
            ]
        )
    table = markdown_table(
        [
            "family (ours / panda-gym)",
            "ours discrete, steps/s",
            "ours continuous, steps/s",
            "panda-gym, steps/s",
            f"discrete / panda-gym (target {TARGET_VS_PANDA_GYM:.2f}x)",
            f"continuous / panda-gym (target {TARGET_VS_PANDA_GYM:.2f}x)",
            "same, thread CPU time (d / c)",
            "physics µs/step (d / c / pg)",
            "non-physics µs/step (d / c / pg)",
        ],
        rows,
    )
    return (
        "#### Env speed, every family: robot_meta vs its panda-gym counterpart\n\n"
        f"{rounds} rounds x {steps:,} steps per variant, all twelve variants interleaved in chunks of {chunk} "
        "steps (the order rotates from chunk to chunk, so every variant sees the same background load); "
        "random actions, resets included, physics step 1/500 s x 20 substeps everywhere (robot_meta at its "
        "default 20 solver iterations, panda-gym at 50). Ratios: median of the per-round ratios (range). "
        f"Load average (1 min) {load[0][0]:.1f} before and {load[1][0]:.1f} after the run on "
        f"{os.cpu_count()} CPUs (a shared machine: compare the ratios, not the absolute rates).\n\n"
        f"{table}"
    )


def run_families(args: argparse.Namespace, rounds: int, steps: int, chunk: int) -> dict[str, Any]:
    families = list(FAMILY_IDS)
    load_before = os.getloadavg()
    variants = make_family_variants(families)
    run_interleaved(variants, rounds, steps, chunk)
    summary = summarise_families(variants, families)
    for env in {id(v.env): v.env for v in variants}.values():
        env.close()
    load_after = os.getloadavg()
    results = {
        "load_average_1_5_15min": {"before": load_before, "after": load_after},
        "config": {
            "rounds": rounds,
            "steps_per_round": steps,
            "chunk_steps": chunk,
            "quick": bool(args.quick),
            "physics_step_s": 1 / 500,
            "substeps": 20,
            "families": FAMILY_IDS,
            "target_vs_panda_gym": TARGET_VS_PANDA_GYM,
        },
        "families": summary,
    }
    name = "env_speed_families_quick" if args.quick else "env_speed_families"
    cmd = command_line()
    log.info("wrote %s", write_results(name, results, cmd))
    md = families_markdown(summary, rounds, steps, chunk, (load_before, load_after))
    print("\n" + md + "\n")
    if not args.quick and not args.no_markdown:
        update_markdown_section("env_speed_families", md, cmd, now_utc())
        log.info("updated the env_speed_families section of BENCHMARKS.md")
    return results


def profile_overhead(v: Variant, steps: int, seed: int, top: int) -> dict[str, Any]:
    """cProfile a rollout of `v` (timer removed) and list the non-physics functions by self time."""
    assert v.timer is not None and v.make_actions is not None
    v.timer.uninstall()
    actions = v.make_actions(np.random.default_rng(seed), steps)
    env = v.env
    env.reset(seed=seed)
    prof = cProfile.Profile(time.thread_time)  # CPU time: preemption by other processes is not charged
    t0 = time.perf_counter()
    prof.enable()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    prof.disable()
    wall = time.perf_counter() - t0
    v.timer.install()
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    root = str(REPO_ROOT) + os.sep
    site = f"site-packages{os.sep}"

    def label(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        if filename == "~":
            return func
        if filename.startswith(root):
            filename = filename[len(root) :]
        elif site in filename:
            filename = filename.split(site, 1)[1]
        return f"{filename}:{line}({func})"

    def is_physics(key: tuple[str, int, str]) -> bool:
        filename, _, func = key
        return (func == "step" and filename.endswith(os.path.join("robot_meta", "envs", "sim.py"))) or (
            "stepSimulation" in func
        )

    physics_s = sum(v_[2] for k, v_ in raw.items() if is_physics(k))  # tottime
    total_self = sum(v_[2] for v_ in raw.values())
    rows = []
    for key, (_, ncalls, tottime, cumtime, _) in raw.items():
        if is_physics(key):
            continue
        rows.append(
            {
                "function": label(key),
                "calls_per_step": ncalls / steps,
                "self_us_per_step": tottime / steps * 1e6,
                "cumulative_us_per_step": cumtime / steps * 1e6,
            }
        )
    rows.sort(key=lambda r: r["self_us_per_step"], reverse=True)
    return {
        "steps": steps,
        "wall_s_profiled": wall,
        "physics_us_per_step_profiled": physics_s / steps * 1e6,
        "non_physics_us_per_step_profiled": (total_self - physics_s) / steps * 1e6,
        "note": (
            "cProfile (CPU-time clock) inflates Python-level time; pybullet calls made through the sim's bound "
            "functools.partial are counted in the self time of the Python function that calls them."
        ),
        "top": rows[:top],
    }


def summarise(variants: list[Variant]) -> dict[str, Any]:
    by = {v.name: v for v in variants}

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in by[name].rounds)

    def ratio(a: str, b: str, key: str = "steps_per_s") -> dict[str, Any]:
        per_round = [ra[key] / rb[key] for ra, rb in zip(by[a].rounds, by[b].rounds, strict=True)]
        return {"median": statistics.median(per_round), "per_round": per_round}

    summary: dict[str, Any] = {"variants": {}}
    for v in variants:
        keys = v.rounds[0].keys()
        summary["variants"][v.name] = {
            "label": v.label,
            "median": {k: med(v.name, k) for k in keys if k != "steps"},
            "per_round_steps_per_s": [r["steps_per_s"] for r in v.rounds],
        }
    summary["ratios"] = {
        "ours20_vs_panda_gym": ratio("ours-20it", "panda-gym"),
        "ours50_vs_panda_gym": ratio("ours-50it", "panda-gym"),
        "ours20_vs_ours50": ratio("ours-20it", "ours-50it"),
        "ours20_vs_raw_hold20": ratio("ours-20it", "raw-hold-20it"),
        "ours50_vs_raw_hold50": ratio("ours-50it", "raw-hold-50it"),
        "ours20_vs_panda_gym_cpu": ratio("ours-20it", "panda-gym", "steps_per_cpu_s"),
        "ours50_vs_panda_gym_cpu": ratio("ours-50it", "panda-gym", "steps_per_cpu_s"),
    }
    vs_pg = summary["ratios"]["ours20_vs_panda_gym"]["median"]
    frac = med("ours-20it", "physics_fraction")
    summary["targets"] = {
        "vs_panda_gym": {
            "value": vs_pg,
            "value_cpu_time": summary["ratios"]["ours20_vs_panda_gym_cpu"]["median"],
            "target": TARGET_VS_PANDA_GYM,
            "met": vs_pg >= TARGET_VS_PANDA_GYM,
        },
        "physics_fraction": {
            "value": frac,
            "value_cpu_time": med("ours-20it", "physics_fraction_cpu"),
            "target": TARGET_PHYSICS_FRACTION,
            "met": frac >= TARGET_PHYSICS_FRACTION,
        },
    }
    return summary


def markdown(
    summary: dict[str, Any],
    profile: dict[str, Any],
    rounds: int,
    steps: int,
    chunk: int,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    var = summary["variants"]
    rows = []
    for name, v in var.items():
        m = v["median"]
        is_rollout = "physics_fraction" in m
        rows.append(
            [
                f"`{name}`: {v['label']}",
                f"{m['steps_per_s']:.0f}",
                f"{m['steps_per_cpu_s']:.0f}",
                f"{m['physics_us_per_step']:.0f}",
                f"{m['physics_limit_steps_per_s']:.0f}" if is_rollout else f"{m['steps_per_s']:.0f}",
                (
                    f"{100 * m['physics_fraction']:.1f} % ({100 * m['physics_fraction_cpu']:.1f} %)"
                    if is_rollout
                    else "-"
                ),
                f"{m['non_physics_us_per_step']:.0f}" if is_rollout else "-",
                f"{m['reset_us_per_step']:.0f}" if is_rollout else "-",
            ]
        )
    t1 = markdown_table(
        [
            "variant",
            "steps/s (median)",
            "steps per CPU-s",
            "physics µs/step",
            "raw-physics limit, steps/s",
            "fraction of limit (CPU time)",
            "non-physics µs/step",
            "of which resets µs/step",
        ],
        rows,
    )
    r = summary["ratios"]
    t = summary["targets"]

    def rng_(key: str) -> str:
        pr = r[key]["per_round"]
        return f"{r[key]['median']:.2f}x ({min(pr):.2f}-{max(pr):.2f})"

    t2 = markdown_table(
        ["comparison (same run, median of per-round ratios, range)", "value", "target", "met"],
        [
            [
                "ours (20 it) / panda-gym",
                rng_("ours20_vs_panda_gym"),
                f">= {TARGET_VS_PANDA_GYM:.2f}x",
                "yes" if t["vs_panda_gym"]["met"] else "**no**",
            ],
            [
                "ours (20 it) / panda-gym, in thread CPU time (time descheduled excluded)",
                rng_("ours20_vs_panda_gym_cpu"),
                "-",
                "-",
            ],
            [
                "ours (20 it) env steps/s / raw-physics limit of the same rollout (CPU time)",
                f"{100 * t['physics_fraction']['value']:.1f} % "
                f"({100 * t['physics_fraction']['value_cpu_time']:.1f} %)",
                f">= {100 * TARGET_PHYSICS_FRACTION:.0f} %",
                "yes" if t["physics_fraction"]["met"] else "**no**",
            ],
            ["ours (50 it) / panda-gym (same solver iterations)", rng_("ours50_vs_panda_gym"), "-", "-"],
            ["ours 20 it / ours 50 it", rng_("ours20_vs_ours50"), "-", "-"],
            [
                "ours (20 it) / raw stepSimulation loop, arm holding (20 it)",
                rng_("ours20_vs_raw_hold20"),
                "-",
                "-",
            ],
            [
                "ours (50 it) / raw stepSimulation loop, arm holding (50 it)",
                rng_("ours50_vs_raw_hold50"),
                "-",
                "-",
            ],
        ],
    )
    prof_rows = [
        [
            f"`{p['function']}`",
            f"{p['calls_per_step']:.2f}",
            f"{p['self_us_per_step']:.1f}",
            f"{p['cumulative_us_per_step']:.1f}",
        ]
        for p in profile["top"][:8]
    ]
    t3 = markdown_table(
        ["function (ours, 20 it)", "calls/step", "self µs/step", "cumulative µs/step"], prof_rows
    )
    return (
        f"#### Env speed: `{OUR_ID}` vs panda-gym `{PANDA_GYM_ID}` vs raw physics\n\n"
        f"{rounds} rounds x {steps:,} steps per variant, interleaved in chunks of {chunk} steps (so all "
        "variants see the same background load); random actions, resets included; "
        "physics step 1/500 s x 20 substeps everywhere. "
        f"Load average (1 min) {load[0][0]:.1f} before and {load[1][0]:.1f} after the run "
        f"on {os.cpu_count()} CPUs.\n\n"
        f"{t1}\n\n{t2}\n\n"
        f"Non-physics overhead by function (cProfile with a CPU-time clock over {profile['steps']:,} steps, "
        f"{profile['non_physics_us_per_step_profiled']:.0f} µs/step under the profiler, which adds its own "
        "overhead; pybullet calls are counted in their Python caller):\n\n"
        f"{t3}"
    )


def tracking_accuracy(iterations: int, steps: int, seed: int = 7) -> dict[str, float]:
    """End-effector tracking at a solver-iteration setting: distance between the measured end
    effector and its setpoint after each step of a seeded random discrete rollout (push)."""
    import robot_meta  # noqa: F401  (registers the ids)

    env = gym.make(OUR_ID)
    base = env.unwrapped
    base.sim.set_solver_iterations(iterations)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        errors.append(float(np.linalg.norm(np.subtract(base._ee_pos, base._setpoint))))
        if terminated or truncated:
            env.reset()
    env.close()
    e = np.array(errors) * 1000.0
    return {"median_mm": float(np.median(e)), "p90_mm": float(np.percentile(e, 90)), "max_mm": float(e.max())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="short run (< 1 min): 2 rounds x 400 steps")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, quick 2)")
    ap.add_argument("--steps", type=int, default=None, help="steps per variant per round (default 2000)")
    ap.add_argument("--chunk", type=int, default=100, help="steps per variant between switches (default 100)")
    ap.add_argument("--profile-steps", type=int, default=None, help="steps under cProfile (default 2000)")
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument(
        "--part",
        choices=("all", "push", "families"),
        default="all",
        help="push: the push deep-dive (raw physics, profile, tracking); families: every family vs "
        "panda-gym; all (default): both",
    )
    ap.add_argument(
        "--family-steps", type=int, default=None, help="steps per variant per round, families (default 1000)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="gymnasium")
    rounds = args.rounds or (2 if args.quick else 5)
    steps = args.steps or (400 if args.quick else 2000)
    profile_steps = args.profile_steps or (400 if args.quick else 2000)
    chunk = max(1, args.chunk)
    out: dict[str, Any] = {}
    if args.part in ("all", "families"):
        family_steps = args.family_steps or (400 if args.quick else 1000)
        out["families"] = run_families(args, 2 if args.quick else (args.rounds or 3), family_steps, chunk)
    if args.part in ("all", "push"):
        out["push"] = run_push(args, rounds, steps, profile_steps, chunk)
    return out


def run_push(
    args: argparse.Namespace, rounds: int, steps: int, profile_steps: int, chunk: int
) -> dict[str, Any]:
    """The push deep-dive: ours at 20 and 50 iterations, panda-gym, raw physics, profile, tracking."""
    load_before = os.getloadavg()
    variants = make_variants()
    run_interleaved(variants, rounds, steps, chunk)

    summary = summarise(variants)
    profile = profile_overhead(variants[0], profile_steps, seed=2024, top=15)
    tracking = {f"{it}_iterations": tracking_accuracy(it, 300 if args.quick else 1500) for it in (20, 50)}
    log.info("tracking error (mm): %s", tracking)
    for env in {id(v.env): v.env for v in variants}.values():
        env.close()

    load_after = os.getloadavg()
    results = {
        "load_average_1_5_15min": {"before": load_before, "after": load_after},
        "config": {
            "rounds": rounds,
            "steps_per_round": steps,
            "chunk_steps": chunk,
            "profile_steps": profile_steps,
            "quick": bool(args.quick),
            "physics_step_s": 1 / 500,
            "substeps": 20,
            "our_env": OUR_ID,
            "panda_gym_env": PANDA_GYM_ID,
            "targets": {"vs_panda_gym": TARGET_VS_PANDA_GYM, "physics_fraction": TARGET_PHYSICS_FRACTION},
        },
        **summary,
        "profile": profile,
        "tracking_error": tracking,
    }
    name = "env_speed_quick" if args.quick else "env_speed"
    cmd = command_line()
    path = write_results(name, results, cmd)
    log.info("wrote %s", path)
    md = markdown(summary, profile, rounds, steps, chunk, (load_before, load_after))
    md += (
        "\n\nEnd-effector tracking (distance between the measured end effector and its setpoint after each "
        "step of a random push rollout), by solver iterations:\n\n"
        + markdown_table(
            ["solver iterations", "median, mm", "p90, mm", "max, mm"],
            [
                [it.split("_")[0], f"{t['median_mm']:.2f}", f"{t['p90_mm']:.2f}", f"{t['max_mm']:.2f}"]
                for it, t in tracking.items()
            ],
        )
    )
    print("\n" + md + "\n")
    if not args.quick and not args.no_markdown:
        update_markdown_section("env_speed", md, cmd, now_utc())
        log.info("updated the env_speed section of BENCHMARKS.md")
    return results


if __name__ == "__main__":
    main()
