"""K-shot evaluation, split by job: the protocol, its statistics and result schema, the adapters, the plots.

- `robot_meta.meta.eval.protocol`: `evaluate` (a run, a trainer or an export directory), `run_methods`;
- `robot_meta.meta.eval.stats`: Student-t intervals, `UnitResult` / `KShotStats` / `MethodResult` /
  `EvalResult` (``eval.json``);
- `robot_meta.meta.eval.adapters`: the few-shot rules the protocol drives (`HeadAdapter`,
  `ReptileAdapter`, `ContextAdapter`, `ExportAdapter`); each algorithm names its own;
- `robot_meta.meta.eval.plots`: `plot_success`;
- `robot_meta.meta.eval.kshot`: the comparison of meta methods against baselines with budgets,
  cached cells and seed-paired targets (``robot-meta bench kshot``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robot_meta._lazy import lazy_exports

if TYPE_CHECKING:
    from robot_meta.meta.eval.adapters import (
        Adapter,
        ContextAdapter,
        ExportAdapter,
        HeadAdapter,
        ReptileAdapter,
        ShotRecorder,
    )
    from robot_meta.meta.eval.plots import plot_success
    from robot_meta.meta.eval.protocol import (
        DEFAULT_SHOTS,
        EVAL_FILE,
        PLOT_FILE,
        SPLITS,
        AdapterMethod,
        EvalSplit,
        Method,
        control_episodes,
        evaluate,
        evaluate_episodes,
        methods_for_export,
        methods_for_run,
        run_methods,
    )
    from robot_meta.meta.eval.stats import (
        ControlStats,
        EvalResult,
        KShotStats,
        MethodResult,
        UnitResult,
        aggregate,
        load_eval,
        mean_ci,
        t_quantile_975,
    )
    from robot_meta.meta.eval.units import evaluation_tasks, unit_seeds

# Imported on first use (robot_meta._lazy reads the TYPE_CHECKING imports above), so that a light
# submodule (e.g. robot_meta.meta.eval.kshot) does not load torch.
__getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "DEFAULT_SHOTS",
    "EVAL_FILE",
    "PLOT_FILE",
    "SPLITS",
    "Adapter",
    "AdapterMethod",
    "ContextAdapter",
    "ControlStats",
    "EvalResult",
    "EvalSplit",
    "ExportAdapter",
    "HeadAdapter",
    "KShotStats",
    "Method",
    "MethodResult",
    "ReptileAdapter",
    "ShotRecorder",
    "UnitResult",
    "aggregate",
    "control_episodes",
    "evaluate",
    "evaluate_episodes",
    "evaluation_tasks",
    "load_eval",
    "mean_ci",
    "methods_for_export",
    "methods_for_run",
    "plot_success",
    "run_methods",
    "t_quantile_975",
    "unit_seeds",
]
