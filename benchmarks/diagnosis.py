"""Learning diagnosis (issue 15): do the learners reach what the task allows? About 15 minutes on 2 cores.

For each headline family it trains, at a small budget, the privileged SB3 oracle, SB3 domain
randomisation, every meta-learner and the strike planner (whose job also scores its privileged oracle,
``strike-oracle``: the same fit's travel model at each task's true parameters), and scores each one's
zero-shot policy (K = 0, no adaptation) on fresh tasks of the ``train`` split, the ``test`` split and,
with no target, the ``interp`` and ``ood`` splits (``--splits``), next to the family's calibrated and
pooled (goal-only) scripted ceilings of `benchmarks/headroom.py` (``headroom_<family>.json``, row
``all`` of the test split). This is the loop to iterate a learner change in; the K-shot table (`kshot.py`) is for
the end. Every job (family x method) runs in its own process, ``--jobs`` at a time; each records
its CPU-seconds.

    .venv/bin/python benchmarks/diagnosis.py                          # slide + push, every method
    .venv/bin/python benchmarks/diagnosis.py --families slide --methods oracle,context
    .venv/bin/python benchmarks/diagnosis.py --set context:end_when_decided=true --tag decided

Writes ``benchmarks/results/diagnosis.json`` and the ``diagnosis`` section of BENCHMARKS.md
(``--no-markdown`` to skip, e.g. for an ablation row: the JSON lines of every call are appended to
``benchmarks/results/diagnosis.jsonl`` with the call's tag and overrides).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BENCHMARKS_MD,
    RESULTS_DIR,
    command_line,
    machine_info,
    markdown_table,
    now_utc,
    update_markdown_section,
)

FAMILIES = ("slide", "push")
METHODS = ("oracle", "domain-rand", "context", "meta-dqn", "reptile", "strike-planner")
SPLITS = ("train", "test", "interp", "ood")
BASELINE_STEPS = 25_000
"""SB3 DQN env steps of the oracle and domain-rand jobs (about what the small meta runs collect)."""
BASELINE_OVERRIDES = {"learning_starts": 1_000, "exploration_steps": 8_000, "obs_stats_steps": 1_000}
QUICK_OVERRIDES = {"learning_starts": 100, "exploration_steps": 300, "obs_stats_steps": 100}
"""``--quick`` (a smoke test of the machinery, `robot-meta bench --quick`): tiny budgets, nothing written."""


def _job(
    family: str,
    method: str,
    seed: int,
    tasks: int,
    episodes: int,
    overrides: dict[str, Any],
    quick: bool = False,
    splits: tuple[str, ...] = ("train", "test"),
) -> dict[str, Any]:
    """Train one method on one family (small budget) and score its K=0 policy on the tasks of `splits`."""
    import torch

    torch.set_num_threads(1)
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta import evaluate, run_methods
    from robot_meta.meta.baselines import eval_env_factory
    from robot_meta.meta.eval.baseline_methods import policy_method
    from robot_meta.meta.eval.kshot import (
        FAMILY_ENVS,
        STRIKE_CELL,
        Budget,
        KShotStore,
        train_baseline,
        train_meta,
        train_strike_planner,
    )
    from robot_meta.meta.strike import STRIKE_BUDGETS

    t0 = time.process_time()
    protocol: dict[str, Any] = dict(
        shots=(0,), episodes=episodes, seeds=(seed,), num_tasks=tasks, progress=False
    )
    scores: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = KShotStore(cells_dir=Path(tmp) / "cells", runs_dir=Path(tmp) / "runs")
        budget = Budget(
            meta_budget="smoke" if quick else "small",
            algo_overrides={method: overrides},
            baseline_steps=600 if quick else BASELINE_STEPS,
            baseline_overrides={**(QUICK_OVERRIDES if quick else BASELINE_OVERRIDES), **overrides},
            strike_overrides={**STRIKE_BUDGETS["smoke" if quick else "small"], **overrides},
        )
        if method in ("oracle", "domain-rand"):
            model, _ = train_baseline(budget, family, method, seed, store)
            t_train = time.process_time() - t0
            m = policy_method(method, lambda _s: model, eval_env_factory(method, FAMILY_ENVS[family]))
            for split in splits:
                res = run_methods([m], TaskDistribution.preset(family).split(split), **protocol)
                scores[split] = {method: res[method]}
        elif method == STRIKE_CELL:
            from robot_meta.meta.eval.protocol import methods_for_strike_planner
            from robot_meta.meta.rollout import GymEnvFactory

            planner, _ = train_strike_planner(budget, family, seed, store)
            t_train = time.process_time() - t0
            run_dir = store.run_dir(family, STRIKE_CELL, seed)
            env = GymEnvFactory(FAMILY_ENVS[family])
            ms = methods_for_strike_planner(planner, run_dir, env, oracle=True)
            for split in splits:
                scores[split] = dict(
                    run_methods(ms, TaskDistribution.preset(family).split(split), **protocol)
                )
        else:
            run_dir, _ = train_meta(budget, family, method, seed, store)
            t_train = time.process_time() - t0
            for split in splits:
                scores[split] = dict(evaluate(run_dir, split, plot=False, **protocol).methods)  # type: ignore[arg-type]
    rows = []
    for name in scores["test"]:
        row: dict[str, Any] = {"family": family, "method": name}
        for split, res in scores.items():
            st = res[name].per_k[0]
            row[split] = round(100 * st.success, 1)
            row[f"{split}_ci"] = [round(100 * st.ci_low, 1), round(100 * st.ci_high, 1)]
        rows.append(row)
    return {"rows": rows, "train_cpu_s": round(t_train), "cpu_s": round(time.process_time() - t0)}


def _ceilings(family: str) -> dict[str, float | None]:
    path = RESULTS_DIR / f"headroom_{family}.json"
    if not path.exists():
        return {"calibrated": None, "pooled": None}
    doc = json.loads(path.read_text())
    row = doc["rows"].get("all", {}) if doc.get("split") == "test" else {}
    return {k: (round(100 * row[k], 1) if k in row else None) for k in ("calibrated", "pooled")}


def _parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``METHOD:KEY=VALUE`` (or ``KEY=VALUE`` for every meta method) -> per-method overrides (JSON values)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, _, kv = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        key, sep, raw = kv.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected [METHOD:]KEY=VALUE, e.g. context:n_step=10")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        metas = [m for m in METHODS if m not in ("oracle", "domain-rand", "strike-planner")]
        for method in [target] if target else metas:
            out.setdefault(method, {})[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=12, help="tasks per split (one evaluation seed)")
    ap.add_argument(
        "--splits", default=",".join(SPLITS), help="splits to score on (train and test carry the targets)"
    )
    ap.add_argument("--episodes", type=int, default=2, help="greedy episodes per task")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--set", action="append", default=[], metavar="[METHOD:]KEY=VALUE", help="config override"
    )
    ap.add_argument("--tag", default="")
    ap.add_argument("--no-markdown", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke budgets, 2 tasks, slide only; writes nothing")
    args = ap.parse_args()
    if args.quick:
        args.families, args.tasks, args.episodes = "slide", 2, 1
    families = [f for f in args.families.split(",") if f]
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}: choose from {list(METHODS)}")
    sets = _parse_sets(args.set)
    splits = tuple(s for s in args.splits.split(",") if s)
    if not {"train", "test"} <= set(splits) or not set(splits) <= set(SPLITS):
        raise SystemExit(f"--splits {args.splits}: give train and test, and any of {list(SPLITS)}")
    t0 = time.perf_counter()
    jobs = [(f, m) for f in families for m in methods]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = {
            pool.submit(
                _job, f, m, args.seed, args.tasks, args.episodes, sets.get(m, {}), args.quick, splits
            ): (f, m)
            for f, m in jobs
        }
        for fut in concurrent.futures.as_completed(futures):
            f, m = futures[fut]
            results[(f, m)] = fut.result()
            print(
                f"{f:6s} {m:12s} {json.dumps(results[(f, m)]['rows'])} ({results[(f, m)]['cpu_s']} CPU-s)",
                flush=True,
            )
    wall = time.perf_counter() - t0
    rows = []
    for f, m in jobs:
        res = results[(f, m)]
        for row in res["rows"]:
            rows.append(
                {**row, **{f"ceiling_{k}": v for k, v in _ceilings(f).items()}, "cpu_s": res["cpu_s"]}
            )
    doc = {
        "tag": args.tag,
        "overrides": sets,
        "rows": rows,
        "seed": args.seed,
        "splits": list(splits),
        "tasks": args.tasks,
        "episodes": args.episodes,
        "baseline_steps": BASELINE_STEPS,
        "meta_budget": "small",
        "wall_s": round(wall),
        "cpu_s": sum(r["cpu_s"] for r in results.values()),
        "command": command_line(),
        "date": now_utc(),
        "machine": machine_info(),
    }
    if args.quick:
        return
    with open(RESULTS_DIR / "diagnosis.jsonl", "a") as fh:
        fh.write(json.dumps(doc) + "\n")
    if args.no_markdown:
        return
    (RESULTS_DIR / "diagnosis.json").write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown_table(
        [
            "family",
            "method (K=0)",
            *(f"{s} split, success %" for s in splits),
            "calibrated / pooled ceiling (test)",
            "CPU-s of the job",
        ],
        [
            [
                r["family"],
                r["method"],
                *(f"{r[s]:.0f} [{r[f'{s}_ci'][0]:.0f}, {r[f'{s}_ci'][1]:.0f}]" for s in splits),
                f"{r['ceiling_calibrated']} / {r['ceiling_pooled']}",
                r["cpu_s"],
            ]
            for r in rows
        ],
    )
    body = (
        "#### Learning diagnosis (issue 15): zero-shot success of every learner next to the ceilings\n\n"
        f"Small budgets (meta runs `--budget small`, SB3 DQN {BASELINE_STEPS:,} steps), seed {args.seed}, "
        f"{args.tasks} fresh tasks per split x {args.episodes} greedy episodes, K = 0 (no adaptation); "
        "95 % intervals over tasks. Ceilings: the scripted controllers of `benchmarks/headroom.py` on the "
        "test split (row `all`); `interp` and `ood` carry no target. `strike-oracle`: the strike planner's fit "
        "at each task's true parameters (trained in the strike planner's job, whose CPU-s it shares). "
        f"Wall time {wall / 60:.1f} min, {doc['cpu_s'] / 60:.1f} CPU-min in {args.jobs} processes.\n\n"
        f"{table}\n\nEvery call is also appended to `benchmarks/results/diagnosis.jsonl`.\n"
    )
    update_markdown_section("diagnosis", body, command=doc["command"], date=doc["date"], path=BENCHMARKS_MD)


if __name__ == "__main__":
    sys.exit(main())
