"""The tables and targets of the K-shot comparison (`robot_meta.meta.eval.kshot`) from its cached cells.

A family's table merges the cells that exist; each of the issue's targets (oracle gap, recovery of
the oracle's advantage and beating fine-tuning, sample efficiency against SB3 DQN from scratch)
compares methods only on the seeds where every cell it needs exists (`paired_targets`), never one
method's seeds against another's. A method counts as a meta method unless it is a baseline
(`BASELINE_METHODS`), so a newly registered algorithm takes part without changes here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from robot_meta.meta.eval.kshot import BASELINE_METHODS, BUDGETS, STRIKE_ORACLE, KShotStore, cells

__all__ = ["ORACLES", "aggregate_family", "methods_table", "oracle_key", "paired_targets", "targets"]

#: The privileged methods the best meta method's K=5 success is compared with (issue 16: >= 90 % of the
#: oracle's): SB3's oracle and the strike planner's.
ORACLES = ("oracle", STRIKE_ORACLE)


def oracle_key(name: str) -> str:
    """The suffix of `targets`' keys for oracle `name` (``share_of_<key>`` ...)."""
    return name.replace("-", "_")


def aggregate_family(
    store: KShotStore, budget_name: str, family: str, seeds: Sequence[int]
) -> dict[str, Any]:
    """Merge the cached cells of a family into the ``kshot_<family>.json`` schema.

    Each method's row covers the seeds it has cells for (its ``seeds``); each target compares
    methods on the seeds where all the cells it needs exist (`paired_targets`), never a method's
    seeds against another's.
    """
    from robot_meta.meta.eval.stats import UnitResult
    from robot_meta.meta.registry import ALGO_NAMES

    budget = BUDGETS[budget_name]
    units: dict[str, dict[int, list[UnitResult]]] = {}
    times: dict[str, dict[str, float | None]] = {}
    missing: list[str] = []
    cell_seconds = 0.0
    meta: list[str] = []
    for cell in cells():
        found: list[str] = []
        for seed in seeds:
            path = store.cell_path(budget_name, family, cell, seed)
            if not path.exists():
                missing.append(f"{cell}-seed{seed}")
                continue
            data = json.loads(path.read_text())
            cell_seconds += float(data.get("cell_seconds") or 0.0)
            names = list(data["methods"])
            found += [n for n in names if n not in found]
            for name in names:
                units.setdefault(name, {})[seed] = [UnitResult.from_dict(u) for u in data["methods"][name]]
                t = times.setdefault(name, {"train_seconds": 0.0, "eval_seconds": 0.0})
                for key in ("train_seconds", "eval_seconds"):
                    cur, add = t[key], data.get(key)
                    t[key] = None if cur is None or add is None else cur + add / len(names)
        if cell in ALGO_NAMES:  # a meta cell missing on every seed still takes part in the targets
            meta += found or [cell]
    methods = methods_table(units, seeds)
    for name, m in methods.items():
        m.update(times[name])
    return {
        "split": store.split,
        "seeds": list(seeds),
        "shots": list(budget.shots),
        "num_tasks": budget.num_tasks,
        "episodes": budget.episodes,
        "budget": budget_name,
        "family": family,
        "missing_cells": missing,
        "cell_seconds": cell_seconds,
        "methods": methods,
        "targets": paired_targets(units, seeds, budget.shots, meta),
    }


def methods_table(units: dict[str, dict[int, list[Any]]], seeds: Sequence[int]) -> dict[str, Any]:
    """Method -> per-K success/CI/return/transitions over the given seeds' units (methods without any: left out).

    A K whose units carry the paired no-adaptation control also has its keys (`ControlStats.to_dict`:
    ``control_success``, ``paired_gain`` and their intervals); cells computed before the control
    existed have none.
    """
    from robot_meta.meta.eval.stats import aggregate

    methods: dict[str, Any] = {}
    for name in units:
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
                    **({} if st.control is None else st.control.to_dict()),
                }
                for k, st in sorted(res.per_k.items())
            },
        }
    return methods


def paired_targets(
    units: dict[str, dict[int, list[Any]]],
    seeds: Sequence[int],
    shots: Sequence[int],
    meta_methods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The issue's targets, each on the seeds where every method it compares has its cell.

    `meta_methods`: the meta methods a target needs (default: every method of `units` that is not
    a baseline).
    """
    metas = (
        list(meta_methods) if meta_methods is not None else [n for n in units if n not in BASELINE_METHODS]
    )

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
    rec_seeds = common(["oracle", "domain-rand", "finetune", *metas])
    t = targets(methods_table(units, rec_seeds), shots) if rec_seeds else {}
    out["seeds_recovery"] = rec_seeds
    for key in ("best_meta", "best_meta_success", "finetune_success", "beats_finetune", "recovered_fraction",
                "recovery_met"):  # fmt: skip
        if key in t:
            out[key] = t[key]
    for oracle_name in ORACLES:
        share_seeds = common([oracle_name, *metas])
        t = targets(methods_table(units, share_seeds), shots) if share_seeds else {}
        key = oracle_key(oracle_name)
        out[f"seeds_share_of_{key}"] = share_seeds
        for name in ("share", "share_met", "share_meta"):
            if f"{name}_of_{key}" in t:
                out[f"{name}_of_{key}"] = t[f"{name}_of_{key}"]
    eff_seeds = common(["scratch", *metas])
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
    metas = {
        n: _succ(methods, n, k5)
        for n in methods
        if n not in BASELINE_METHODS and _succ(methods, n, k5) is not None
    }
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
        for oracle_name in ORACLES:
            o = _succ(methods, oracle_name, 0)
            if o is not None and o > 0:
                key = oracle_key(oracle_name)
                out[f"share_of_{key}"] = best_s / o
                out[f"share_met_of_{key}"] = best_s / o >= 0.9 - _EPS
                out[f"share_meta_of_{key}"] = best
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
