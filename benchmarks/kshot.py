"""K-shot evaluation on held-out tasks: meta methods against SB3 DQN baselines (issue 4).

For each task family (push, slide, ...) and seed, everything is scored by one protocol
(`robot_meta.meta.evaluation`, the same (task, seed) units for every method):

* ``meta-dqn``, ``reptile`` (full-network DQN steps on the shots), ``reptile-head`` (the device's
  head-only rule on a Reptile policy), ``context`` - meta-trained with `robot_meta.meta.train_run`;
* ``scratch``, ``scratch-10x``, ``scratch-100x`` - SB3 DQN from scratch on the target task with
  1x / 10x / 100x the K-shot budget (K x 50 transitions);
* ``domain-rand`` - SB3 DQN on the train split (new task per reset), no adaptation;
* ``finetune`` - that policy fine-tuned on the shots (a short DQN after each shot);
* ``oracle`` - SB3 DQN on the train split with the true parameters in the observation.

Resumable: meta runs and baseline policies are trained into ``benchmarks/runs/<budget>/<family>/``
(gitignored; a finished one is skipped, an interrupted one resumes from its checkpoint), and every
evaluated cell (family, method, seed) is cached as JSON under
``benchmarks/results/kshot_cells/<budget>/<family>/``: cells that exist are not recomputed, so the
full table fills in over several sessions (commit the cells as they come).

    .venv/bin/python benchmarks/kshot.py --budget small                  # quick look, about 2 min
    .venv/bin/python benchmarks/kshot.py --budget full                   # the full table (hours)
    .venv/bin/python benchmarks/kshot.py --budget full --dry-run         # what would run, nothing trained

Families run in parallel, one process per family up to ``--jobs`` (default: the number of CPUs);
the parent then writes the report of every cached cell.

``full`` writes ``benchmarks/results/kshot_<family>.json`` and the ``kshot`` section of
BENCHMARKS.md; ``small`` writes ``kshot_small_<family>.json`` and the ``kshot_small`` section
(``kshot.json`` / ``kshot_small.json`` hold every family of the last call).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
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

log = logging.getLogger("kshot")

BENCH_DIR = Path(__file__).resolve().parent
RUNS_DIR = BENCH_DIR / "runs"
CELLS_DIR = RESULTS_DIR / "kshot_cells"
FAMILY_ENVS = {
    "reach": "robot_meta/PandaReach-v0",
    "push": "robot_meta/PandaPush-v0",
    "slide": "robot_meta/PandaSlide-v0",
    "pick_place": "robot_meta/PandaPickPlace-v0",
}
META_ALGOS = ("meta-dqn", "reptile", "context")
#: Cell name -> the method names it produces, in table order.
CELLS: dict[str, tuple[str, ...]] = {
    "meta-dqn": ("meta-dqn",),
    "reptile": ("reptile", "reptile-head"),
    "context": ("context",),
    "domain-rand": ("domain-rand",),
    "finetune": ("finetune",),
    "oracle": ("oracle",),
    "scratch": ("scratch", "scratch-10x", "scratch-100x"),
}
META_METHODS = ("meta-dqn", "reptile", "reptile-head", "context")


@dataclass(frozen=True)
class Budget:
    """Sizes of one benchmark budget."""

    meta_budget: str
    """`make_config` budget of the meta runs."""
    meta_overrides: dict[str, Any] = field(default_factory=dict)
    """Config overrides of the meta runs (all algorithms)."""
    algo_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Further overrides of one algorithm's meta runs (applied after `meta_overrides`)."""
    baseline_steps: int = 160_000
    """Env steps of the domain-rand and oracle SB3 DQNs (about the meta runs' env steps)."""
    baseline_overrides: dict[str, Any] = field(default_factory=dict)
    """`SB3DQNConfig` overrides of the domain-rand / oracle policies."""
    shots: tuple[int, ...] = (0, 1, 5, 10)
    num_tasks: int = 8
    """Held-out tasks per seed."""
    episodes: int = 5
    """Greedy evaluation episodes per unit and K."""
    seeds: tuple[int, ...] = (0, 1, 2)


BUDGETS: dict[str, Budget] = {
    # Minutes on 2 busy cores: meta runs of 6 iterations, 2.5k-step baselines, 2 tasks x 1 seed and
    # K in {0, 1} - the scratch-100x cell alone is 100 x 1 x 50 = 5k target-task steps per task, and
    # SB3 DQN runs at about 100-300 steps/s on these machines. Checks the machinery, not the targets.
    "small": Budget(
        meta_budget="smoke",
        meta_overrides={"meta_iterations": 6, "num_tasks": 8, "meta_batch_size": 4, "learning_starts": 400},
        baseline_steps=2_500,
        baseline_overrides={"learning_starts": 500, "exploration_steps": 1_500, "obs_stats_steps": 500},
        shots=(0, 1),
        num_tasks=2,
        episodes=2,
        seeds=(0,),
    ),
    # Hours: the protocol, full meta runs (about 12-15 min each), 160k-step baselines.
    # meta-dqn with 50-step TD targets in the inner loop: the configuration of the meta_training
    # benchmark (`--set meta-dqn:inner_n_step=50`), whose seed-0 runs the first cells evaluated.
    "full": Budget(
        meta_budget="full", algo_overrides={"meta-dqn": {"inner_n_step": 50}}, baseline_steps=160_000
    ),
}


# -- cells --------------------------------------------------------------------------------------------


def cell_path(budget: str, family: str, cell: str, seed: int) -> Path:
    return CELLS_DIR / budget / family / f"{cell}-seed{seed}.json"


def run_dir(runs: Path, family: str, name: str, seed: int) -> Path:
    return runs / family / f"{name}-seed{seed}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def _timed_json(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


#: ``--meta-runs PATTERN``: evaluate existing meta runs instead of training them (e.g. ``/tmp/r3/{algo}-{family}``).
META_RUN_PATTERN: str | None = None


def train_meta(budget: Budget, family: str, algo: str, seed: int, runs: Path) -> tuple[Path, float | None]:
    """Train (resume, or skip) one meta run; returns its directory and its training wall time.

    With ``--meta-runs PATTERN`` an existing complete run at ``PATTERN.format(algo=, family=, seed=)``
    is evaluated as it is (its training time is then unknown unless it records one).
    """
    from robot_meta.meta import load_run, make_config, train_run

    if META_RUN_PATTERN:
        given = Path(META_RUN_PATTERN.format(algo=algo, family=family, seed=seed))
        run = load_run(given)
        if run.iteration < run.config.meta_iterations:
            raise RuntimeError(
                f"{given} is at iteration {run.iteration}/{run.config.meta_iterations}: let it finish first"
            )
        if run.config.seed != seed:
            raise RuntimeError(f"{given} was trained with seed {run.config.seed}, not {seed}")
        return given, _timed_json(given / "bench_train_seconds.json")
    out = run_dir(runs, family, algo, seed)
    config = make_config(
        algo,
        budget=budget.meta_budget,  # type: ignore[arg-type]
        env_id=FAMILY_ENVS[family],
        preset=family,
        seed=seed,
        overrides={**budget.meta_overrides, **budget.algo_overrides.get(algo, {})},
    )
    timing = out / "bench_train_seconds.json"
    t0 = time.perf_counter()
    result = train_run(config, out, progress=False)
    spent = time.perf_counter() - t0
    before = _timed_json(timing) or 0.0
    if result.metrics:  # something was trained in this call
        _write_json(timing, {"seconds": before + spent})
    return out, _timed_json(timing)


def train_baseline(budget: Budget, family: str, kind: str, seed: int, runs: Path) -> tuple[Any, float | None]:
    """Train (resume, or skip) the domain-rand / oracle policy of a seed; returns its Q-network and wall time."""
    import dataclasses

    from robot_meta.meta.baselines import SB3DQNConfig, load_baseline, train_policy_baseline

    out = run_dir(runs, family, kind, seed)
    cfg = dataclasses.replace(SB3DQNConfig(), **budget.baseline_overrides)
    path = train_policy_baseline(
        kind,  # type: ignore[arg-type]
        out,
        env_id=FAMILY_ENVS[family],
        preset=family,
        steps=budget.baseline_steps,
        seed=seed,
        config=cfg,
    )
    info = json.loads((out / "baseline.json").read_text())
    return load_baseline(path.parent), float(info.get("wall_time", 0.0))


def compute_cell(
    budget_name: str, family: str, cell: str, seed: int, runs: Path
) -> tuple[dict[str, Any], Path]:
    """Train what the cell needs and evaluate it on the seed's held-out tasks."""
    import dataclasses

    from robot_meta.envs import TaskDistribution
    from robot_meta.meta import load_run
    from robot_meta.meta.baselines import (
        SB3DQNConfig,
        ScratchMethod,
        baseline_env,
        eval_env_factory,
        finetune_method,
        observation_stats,
        policy_method,
    )
    from robot_meta.meta.evaluation import Method, evaluation_tasks, methods_for_run
    from robot_meta.meta.rollout import GymEnvFactory

    budget = BUDGETS[budget_name]
    env_id = FAMILY_ENVS[family]
    train_seconds: float | None = 0.0
    methods: list[Method]
    if cell in META_ALGOS:
        out, train_seconds = train_meta(budget, family, cell, seed, runs)
        methods = list(methods_for_run(load_run(out)))
    elif cell in ("domain-rand", "oracle"):
        model, train_seconds = train_baseline(budget, family, cell, seed, runs)
        methods = [policy_method(cell, lambda _s: model, eval_env_factory(cell, env_id))]
    elif cell == "finetune":
        model, train_seconds = train_baseline(budget, family, "domain-rand", seed, runs)
        methods = [finetune_method(lambda _s: model, GymEnvFactory(env_id))]
    elif cell == "scratch":
        # the same kind of fixed normaliser as the other baselines: train-distribution statistics
        cfg = dataclasses.replace(SB3DQNConfig(), **budget.baseline_overrides)
        stats_env = baseline_env("domain-rand", env_id, family)
        stats = observation_stats(stats_env, cfg.obs_stats_steps, seed) if cfg.obs_stats_steps > 0 else None
        stats_env.close()
        methods = [ScratchMethod(GymEnvFactory(env_id), config=cfg, obs_stats=stats)]
    else:
        raise ValueError(f"unknown cell {cell!r}: choose one of {list(CELLS)}")
    tasks = TaskDistribution.preset(family).split("test")
    # Units are cached one by one (a scratch cell of the full budget trains 8 x 50k steps): an
    # interrupted cell resumes at its next task.
    partial_path = cell_path(budget_name, family, cell, seed).with_suffix(".partial.json")
    partial: dict[str, Any] = {"units": {}, "eval_seconds": 0.0}
    if partial_path.exists():
        partial = json.loads(partial_path.read_text())
    shots = tuple(sorted(budget.shots))
    for i, task in enumerate(evaluation_tasks(tasks, seed, budget.num_tasks)):
        if str(i) in partial["units"]:
            continue
        t0 = time.perf_counter()
        rows: dict[str, list[Any]] = {}
        for method in methods:
            for name, units in method.run_unit(task, seed, i, shots, budget.episodes).items():
                rows[name] = [u.to_dict() for u in units]
        partial["units"][str(i)] = rows
        partial["eval_seconds"] += time.perf_counter() - t0
        _write_json(partial_path, _clean(partial))
        log.info("  task %d/%d done (%.0f s)", i + 1, budget.num_tasks, time.perf_counter() - t0)
    names = [n for m in methods for n in m.names]
    data = {
        "family": family,
        "cell": cell,
        "seed": seed,
        "budget": budget_name,
        "date": now_utc(),
        "train_seconds": train_seconds,
        "eval_seconds": partial["eval_seconds"],
        "methods": {
            n: [u for i in sorted(partial["units"], key=int) for u in partial["units"][i][n]] for n in names
        },
    }
    return data, partial_path


# -- aggregation and report ---------------------------------------------------------------------------


def aggregate_family(budget_name: str, family: str, seeds: Sequence[int]) -> dict[str, Any]:
    """Merge the cached cells of a family into the ``kshot_<family>.json`` schema.

    Each method's row covers the seeds it has cells for (its ``seeds``); each target compares
    methods on the seeds where all the cells it needs exist (`paired_targets`), never a method's
    seeds against another's.
    """
    from robot_meta.meta.evaluation import UnitResult

    budget = BUDGETS[budget_name]
    units: dict[str, dict[int, list[UnitResult]]] = {}
    times: dict[str, dict[str, float | None]] = {}
    missing: list[str] = []
    cell_seconds = 0.0
    for cell, names in CELLS.items():
        for seed in seeds:
            path = cell_path(budget_name, family, cell, seed)
            if not path.exists():
                missing.append(f"{cell}-seed{seed}")
                continue
            data = json.loads(path.read_text())
            cell_seconds += float(data.get("cell_seconds") or 0.0)
            for name in names:
                units.setdefault(name, {})[seed] = [UnitResult.from_dict(u) for u in data["methods"][name]]
                t = times.setdefault(name, {"train_seconds": 0.0, "eval_seconds": 0.0})
                for key in ("train_seconds", "eval_seconds"):
                    cur, add = t[key], data.get(key)
                    t[key] = None if cur is None or add is None else cur + add / len(names)
    methods = methods_table(units, seeds)
    for name, m in methods.items():
        m.update(times[name])
    return {
        "split": "test",
        "seeds": list(seeds),
        "shots": list(budget.shots),
        "num_tasks": budget.num_tasks,
        "episodes": budget.episodes,
        "budget": budget_name,
        "family": family,
        "missing_cells": missing,
        "cell_seconds": cell_seconds,
        "methods": methods,
        "targets": paired_targets(units, seeds, budget.shots),
    }


def methods_table(units: dict[str, dict[int, list[Any]]], seeds: Sequence[int]) -> dict[str, Any]:
    """Method -> per-K success/CI/return/transitions over the given seeds' units (methods without any: left out)."""
    from robot_meta.meta.evaluation import aggregate

    methods: dict[str, Any] = {}
    for name in (n for names in CELLS.values() for n in names):
        have = [s for s in seeds if s in units.get(name, {})]
        if not have:
            continue
        res = aggregate(name, [u for s in have for u in units[name][s]])
        methods[name] = {
            "seeds": have,
            "K": {
                str(k): {
                    "success": st.success,
                    "ci_low": st.ci_low,
                    "ci_high": st.ci_high,
                    "return": st.ret,
                    "target_transitions": st.target_transitions,
                    "n_units": st.n_units,
                }
                for k, st in sorted(res.per_k.items())
            },
        }
    return methods


def paired_targets(
    units: dict[str, dict[int, list[Any]]], seeds: Sequence[int], shots: Sequence[int]
) -> dict[str, Any]:
    """The issue's targets, each on the seeds where every method it compares has its cell."""

    def common(names: Sequence[str]) -> list[int]:
        return [s for s in seeds if all(s in units.get(n, {}) for n in names)]

    k5 = 5 if 5 in shots else max(k for k in shots if k <= 5)
    out: dict[str, Any] = {"k_for_targets": k5}
    gap_seeds = common(["oracle", "domain-rand"])
    t = targets(methods_table(units, gap_seeds), shots) if gap_seeds else {}
    out.update(
        seeds_oracle_gap=gap_seeds,
        oracle_minus_domain_rand=t.get("oracle_minus_domain_rand"),
        oracle_gap_met=t.get("oracle_gap_met"),
    )
    rec_seeds = common(["oracle", "domain-rand", "finetune", *META_METHODS])
    t = targets(methods_table(units, rec_seeds), shots) if rec_seeds else {}
    out["seeds_recovery"] = rec_seeds
    for key in ("best_meta", "best_meta_success", "finetune_success", "beats_finetune", "recovered_fraction",
                "recovery_met"):  # fmt: skip
        if key in t:
            out[key] = t[key]
    eff_seeds = common(["scratch", *META_METHODS])
    t = targets(methods_table(units, eff_seeds), shots) if eff_seeds else {}
    out["seeds_sample_efficiency"] = eff_seeds
    if "scratch_ratio" in t:
        out.update(
            efficiency_meta=t["best_meta"],
            efficiency_meta_success=t["best_meta_success"],
            efficiency_meta_target_transitions=t["best_meta_target_transitions"],
            scratch_transitions_to_match=t["scratch_transitions_to_match"],
            scratch_ratio=t["scratch_ratio"],
            scratch_ratio_is_lower_bound=t["scratch_ratio_is_lower_bound"],
            sample_efficiency_met=t["sample_efficiency_met"],
        )
    return out


#: Tolerance of the target comparisons (success rates are sums of fractions: 0.5 - 0.3 < 0.2 in floats).
_EPS = 1e-9


def _succ(methods: dict[str, Any], name: str, k: int) -> float | None:
    cell = methods.get(name, {}).get("K", {}).get(str(k))
    return None if cell is None else float(cell["success"])


def targets(methods: dict[str, Any], shots: Sequence[int]) -> dict[str, Any]:
    """The issue's three targets, computed from the table (None where a needed cell is missing)."""
    k5 = 5 if 5 in shots else max(k for k in shots if k <= 5)
    out: dict[str, Any] = {"k_for_targets": k5}
    oracle, dr = _succ(methods, "oracle", 0), _succ(methods, "domain-rand", 0)
    gap = None if oracle is None or dr is None else oracle - dr
    out["oracle_minus_domain_rand"] = gap
    out["oracle_gap_met"] = None if gap is None else gap >= 0.20 - _EPS
    metas = {n: _succ(methods, n, k5) for n in META_METHODS if _succ(methods, n, k5) is not None}
    if metas:
        best = max(metas, key=lambda n: metas[n] or 0.0)
        best_s = metas[best] or 0.0
        out["best_meta"], out["best_meta_success"] = best, best_s
        ft = _succ(methods, "finetune", k5)
        out["finetune_success"] = ft
        out["beats_finetune"] = None if ft is None else best_s > ft
        if gap is not None and dr is not None:
            # undefined unless the oracle beats domain randomisation (there is no advantage to recover)
            out["recovered_fraction"] = (best_s - dr) / gap if gap > 1e-9 else None
            out["recovery_met"] = (
                None if out["recovered_fraction"] is None else out["recovered_fraction"] >= 0.8 - _EPS
            )
        meta_tt = methods[best]["K"][str(k5)]["target_transitions"]
        out["best_meta_target_transitions"] = meta_tt
        reach = [
            cell["target_transitions"]
            for name in ("scratch", "scratch-10x", "scratch-100x")
            for cell in methods.get(name, {}).get("K", {}).values()
            if cell["success"] >= best_s and cell["target_transitions"] > 0
        ]
        budgets = [
            cell["target_transitions"]
            for name in ("scratch", "scratch-10x", "scratch-100x")
            for cell in methods.get(name, {}).get("K", {}).values()
        ]
        if reach:
            out["scratch_transitions_to_match"] = min(reach)
            out["scratch_ratio"] = min(reach) / max(meta_tt, 1)
            out["scratch_ratio_is_lower_bound"] = False
        elif budgets:
            out["scratch_transitions_to_match"] = None
            out["scratch_ratio"] = max(budgets) / max(meta_tt, 1)
            out["scratch_ratio_is_lower_bound"] = True  # scratch never matched within its largest budget
        if "scratch_ratio" in out:
            out["sample_efficiency_met"] = out["scratch_ratio"] >= 20 - _EPS
    return out


def _fmt(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    lo, hi = cell.get("ci_low"), cell.get("ci_high")
    ci = "" if lo is None or hi is None or not math.isfinite(lo) else f" [{lo:.2f}, {hi:.2f}]"
    return f"{cell['success']:.2f}{ci} ({cell['return']:.1f})"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def family_markdown(res: dict[str, Any]) -> str:
    ks = [str(k) for k in res["shots"]]
    headers = ["method", "seeds", *[f"K={k}" for k in ks], f"transitions at K={ks[-1]}", "train s", "eval s"]
    rows = []
    for name, m in res["methods"].items():
        last = m["K"].get(ks[-1], {})
        rows.append(
            [name, ",".join(str(x) for x in m.get("seeds", res["seeds"])), *[_fmt(m["K"].get(k)) for k in ks],
             last.get("target_transitions", "-"), _secs(m.get("train_seconds")), _secs(m.get("eval_seconds"))]
        )  # fmt: skip
    t = res["targets"]
    lines = [
        f"##### {res['family']} ({res['split']} split, seeds {res['seeds']}, {res['num_tasks']} tasks per seed, "
        f"{res['episodes']} evaluation episodes per task and K)",
        "",
        "Success rate with its 95 % t-interval over (task, seed) units, and (mean return). `train s`: "
        "training before the protocol (meta-training, or the SB3 policy; finetune reuses domain-rand's); "
        "`eval s`: the protocol itself, including scratch's training on each target task (one run "
        "shared by the three scratch rows, its time split among them).",
        "",
        markdown_table(headers, rows),
        "",
    ]
    lines += [f"Compute time of this family's cells (training + protocol): {res['cell_seconds']:.0f} s.", ""]
    if res["missing_cells"]:
        lines += [f"Missing cells (not yet computed): {', '.join(res['missing_cells'])}.", ""]
    k5 = t.get("k_for_targets")

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.0f}"

    if res["budget"] != "full":
        lines += [
            f"`{res['budget']}` budget: a few minutes of meta-training, {res['num_tasks']} tasks x "
            f"{len(res['seeds'])} seed(s); this checks the machinery end to end, the targets are judged on "
            "the full table only.",
            "",
        ]
    lines.append(f"Targets (K={k5}), each on the seeds where every method it compares has its cells:")
    lines.append(
        f"- oracle - domain-rand = {pct(t.get('oracle_minus_domain_rand'))} points (target >= 20; seeds "
        f"{t.get('seeds_oracle_gap', [])}): {_verdict(t.get('oracle_gap_met'))}"
    )
    if "best_meta" in t:
        lines.append(
            f"- best meta method `{t['best_meta']}` at K={k5}: {pct(t['best_meta_success'])} % success, "
            f"recovers {pct(t.get('recovered_fraction'))} % of the oracle's advantage (target >= 80; seeds "
            f"{t.get('seeds_recovery', [])}): {_verdict(t.get('recovery_met'))}; finetune "
            f"{pct(t.get('finetune_success'))} %: {'beats' if t.get('beats_finetune') else 'does not beat'} "
            "fine-tuning"
        )
    if not t.get("seeds_sample_efficiency"):
        lines.append("- sample efficiency vs scratch: not measured yet (no seed has the scratch cell)")
    elif t.get("efficiency_meta_success", 0.0) <= 0.0:
        lines.append("- sample efficiency vs scratch: n/a (the best meta method has 0 % success to match)")
    elif "scratch_ratio" in t:
        bound = ">= " if t.get("scratch_ratio_is_lower_bound") else ""
        lines.append(
            f"- SB3 DQN from scratch needs {bound}{t['scratch_ratio']:.1f}x the target transitions of "
            f"`{t['efficiency_meta']}` ({t['efficiency_meta_target_transitions']} at K={k5}, "
            f"{pct(t['efficiency_meta_success'])} % success) to match it (target >= 20x; seeds "
            f"{t['seeds_sample_efficiency']}): {_verdict(t.get('sample_efficiency_met'))}"
        )
    return "\n".join(lines)


def _verdict(x: bool | None) -> str:
    return "n/a" if x is None else ("**met**" if x else "**missed**")


def write_family(budget_name: str, family: str, res: dict[str, Any], command: str) -> Path:
    from robot_meta.meta.evaluation import plot_success

    stem = f"kshot_{family}" if budget_name == "full" else f"kshot_{budget_name}_{family}"
    doc = {**res, "date": now_utc(), "command": command, "machine": machine_info()}
    path = RESULTS_DIR / f"{stem}.json"
    _write_json(path, _clean(doc))
    plot_success({n: m["K"] for n, m in res["methods"].items()}, RESULTS_DIR / f"{stem}.png",
                 title=f"{family}: success vs K ({res['split']} split, {budget_name})")  # fmt: skip
    return path


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _compute_in_parallel(families: list[str], argv: Sequence[str], jobs: int) -> list[str]:
    """Compute each family's cells in its own process (`jobs` at a time); the families that failed.

    Every worker is this script with the caller's arguments followed by ``--families FAMILY
    --compute-only`` (argparse keeps an option's last value; cells only, no report); a cell is written when it completes, so a failed or interrupted
    worker loses at most the cell in progress (and that resumes from its partial file).
    """
    pending = list(families)
    running: dict[str, subprocess.Popen[bytes]] = {}
    failed: list[str] = []
    log.info("computing %s in parallel, %d process(es) at a time", ", ".join(families), jobs)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                fam = pending.pop(0)
                cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--families", fam,
                       "--compute-only", "--no-markdown"]  # fmt: skip
                running[fam] = subprocess.Popen(cmd)
            time.sleep(0.5)
            for fam, proc in list(running.items()):
                rc = proc.poll()
                if rc is not None:
                    del running[fam]
                    if rc != 0:
                        failed.append(f"{fam} (exit {rc})")
    finally:  # interrupted: stop the workers (their finished cells stay cached)
        for proc in running.values():
            proc.terminate()
        for proc in running.values():
            proc.wait()
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--budget", choices=list(BUDGETS), default="full", help="table size (default: %(default)s)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="same as --budget small (used by run_all.py --quick)"
    )
    ap.add_argument(
        "--families", default="push,slide", help="comma-separated families (default: %(default)s)"
    )
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the budget's)")
    ap.add_argument(
        "--cells", default=",".join(CELLS), help="comma-separated cells to compute (default: all)"
    )
    ap.add_argument(
        "--runs-dir", default=None, help="where runs are trained (default: benchmarks/runs/<budget>)"
    )
    ap.add_argument(
        "--meta-runs",
        metavar="PATTERN",
        help="evaluate existing complete meta runs, e.g. '/tmp/r3/{algo}-{family}-seed{seed}' (default: train them)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="families computed in parallel, one process each (default: the CPU count, %(default)s)",
    )
    ap.add_argument("--dry-run", action="store_true", help="list the cells that would be computed and exit")
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--compute-only", action="store_true", help=argparse.SUPPRESS)  # a --jobs worker
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    warnings.filterwarnings("ignore", category=UserWarning)
    budget_name = "small" if args.quick else args.budget
    global META_RUN_PATTERN
    META_RUN_PATTERN = args.meta_runs
    budget = BUDGETS[budget_name]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILY_ENVS))
    if unknown:
        ap.error(f"unknown families {unknown}: choose from {list(FAMILY_ENVS)}")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if set(cells) - set(CELLS):
        ap.error(f"unknown cells {sorted(set(cells) - set(CELLS))}: choose from {list(CELLS)}")
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else budget.seeds
    runs = Path(args.runs_dir) if args.runs_dir else RUNS_DIR / budget_name
    todo = [
        (f, c, s)
        for f in families
        for c in cells
        for s in seeds
        if not cell_path(budget_name, f, c, s).exists()
    ]
    log.info("budget %s: %d cell(s) to compute, %d cached", budget_name, len(todo),
             len(families) * len(cells) * len(seeds) - len(todo))  # fmt: skip
    if args.dry_run:
        for f, c, s in todo:
            print(f"{f} {c} seed {s} -> {cell_path(budget_name, f, c, s).relative_to(BENCH_DIR.parent)}")
        return 0
    cmd = command_line()
    busy = list(dict.fromkeys(f for f, _, _ in todo))
    if len(busy) > 1 and args.jobs > 1 and not args.compute_only:
        failed = _compute_in_parallel(busy, argv if argv is not None else sys.argv[1:], args.jobs)
        if failed:
            log.error("failed: %s (see its log above); finished cells are kept, run the same command "
                      "again to resume", ", ".join(failed))  # fmt: skip
            return 1
        todo = []
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)

    torch.set_num_threads(1)
    os.environ.setdefault("SB3_LOGDIR", str(runs / "sb3_logs"))  # never used: our SB3 loggers write nothing
    t_fam: dict[str, float] = {}
    for family in dict.fromkeys(f for f, _, _ in todo):  # the families with cells left, in order
        t0 = time.perf_counter()
        for f, c, s in todo:
            if f != family:
                continue
            t1 = time.perf_counter()
            log.info("%s / %s / seed %d ...", f, c, s)
            data, partial = compute_cell(budget_name, f, c, s, runs)
            data["cell_seconds"] = time.perf_counter() - t1  # this call only (a resumed cell: its last part)
            _write_json(cell_path(budget_name, f, c, s), _clean(data))
            partial.unlink(missing_ok=True)
            log.info("%s / %s / seed %d done in %.0f s", f, c, s, time.perf_counter() - t1)
        t_fam[family] = time.perf_counter() - t0
        log.info("%s: %.0f s", family, t_fam[family])
    if args.compute_only:
        return 0
    parts = []
    combined: dict[str, Any] = {}
    # Report every family that has cells of this budget, not only this call's: two processes (one
    # per family, one per core) then both leave the complete table behind.
    reported = [f for f in FAMILY_ENVS if f in families or (CELLS_DIR / budget_name / f).is_dir()]
    # ... and every seed of the budget: a call for one seed leaves the table of all cached seeds
    report_seeds = tuple(sorted(set(budget.seeds) | set(seeds)))
    for family in reported:
        res = aggregate_family(budget_name, family, report_seeds)
        path = write_family(budget_name, family, res, cmd)
        log.info("wrote %s", path)
        parts.append(family_markdown(res))
        combined[family] = res
    section = "kshot" if budget_name == "full" else f"kshot_{budget_name}"
    # the file the BENCHMARKS.md section footer points to: every family of this call
    _write_json(
        RESULTS_DIR / f"{section}.json", _clean({"date": now_utc(), "command": cmd, "families": combined})
    )
    body = "#### K-shot adaptation on held-out tasks\n\n" + "\n\n".join(parts)
    print("\n" + body + "\n")
    if not args.no_markdown:
        update_markdown_section(section, body, cmd, now_utc(), path=BENCHMARKS_MD)
        log.info("updated the %s section of BENCHMARKS.md", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
