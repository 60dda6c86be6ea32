"""The K-shot comparison of meta methods against the SB3 DQN baselines: budgets, cached cells, paired targets.

One *cell* is (family, method group, seed): a meta algorithm (every registered one; its cell holds
the methods its `eval_adapters` name, e.g. ``reptile`` and ``reptile-head``) or a baseline group
(``domain-rand``, ``finetune``, ``oracle``, ``scratch`` with its 10x / 100x budgets), trained if
needed (resumable runs under `KShotStore.runs_dir`) and evaluated by the protocol of
`robot_meta.meta.eval.protocol` on the seed's held-out tasks, one unit at a time (an interrupted
cell resumes at its next task). Cells are cached as JSON under `KShotStore.cells_dir`; the tables
and the seed-paired targets are `robot_meta.meta.eval.kshot_table`. ``benchmarks/kshot.py`` (``robot-meta bench kshot``)
is the command around this module: argument parsing, parallel families, the report.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta._registration import ENV_IDS
from robot_meta.meta.strike import STRIKE_ALGO, STRIKE_BUDGETS, STRIKE_ORACLE

if TYPE_CHECKING:
    from robot_meta.envs.params import Split
    from robot_meta.meta.baselines import SB3DQNConfig
    from robot_meta.runtime.strike import StrikePlanner

log = logging.getLogger(__name__)

__all__ = [
    "BASELINE_CELLS",
    "BASELINE_METHODS",
    "BUDGETS",
    "FAMILY_ENVS",
    "Budget",
    "SPLITS",
    "STRIKE_CELL",
    "STRIKE_ORACLE",
    "KShotStore",
    "cells",
    "clean_json",
    "compute_cell",
    "compute_in_parallel",
    "train_baseline",
    "train_meta",
    "train_strike_planner",
    "write_json",
]

#: Task family -> its discrete-action env id.
FAMILY_ENVS = {
    "reach": "robot_meta/PandaReach-v0",
    "push": "robot_meta/PandaPush-v0",
    "slide": "robot_meta/PandaSlide-v0",
    "pick_place": "robot_meta/PandaPickPlace-v0",
}
assert set(FAMILY_ENVS.values()) <= set(ENV_IDS)
#: Baseline cell -> the method names it produces, in table order.
BASELINE_CELLS: dict[str, tuple[str, ...]] = {
    "domain-rand": ("domain-rand",),
    "finetune": ("finetune",),
    "oracle": ("oracle",),
    "scratch": ("scratch", "scratch-10x", "scratch-100x"),
}
#: The few-shot strike planner's cell (`robot_meta.meta.strike`; families with strike actions).
STRIKE_CELL = STRIKE_ALGO
#: Every baseline method; every other method of a table is a meta method. The strike planner's
#: privileged oracle (`STRIKE_ORACLE`: the same fit's travel model at each task's true parameters,
#: `robot_meta.meta.strike.privileged_planner`) is a second method of its cell, and a baseline.
BASELINE_METHODS = frozenset({*(n for names in BASELINE_CELLS.values() for n in names), STRIKE_ORACLE})


def cells() -> tuple[str, ...]:
    """Every cell, in table order: the registered meta algorithms, the strike planner, the baselines."""
    from robot_meta.meta.registry import ALGO_NAMES

    return (*ALGO_NAMES, STRIKE_CELL, *BASELINE_CELLS)


def train_strike_planner(
    budget: Budget, family: str, seed: int, store: KShotStore
) -> tuple[StrikePlanner, float]:
    """Fit (or load the saved) strike planner of a seed; returns it, loaded from its files, and the fit's CPU time.

    The fit is seeded ``1000 + seed`` (the collection's tasks are then not the evaluation's, which are
    drawn by seed); `benchmarks/strike_planner.py` uses the same seeds.
    """
    from robot_meta.meta.strike import StrikePlannerConfig, fit_strike_run

    cfg = StrikePlannerConfig(
        env_id=FAMILY_ENVS[family], preset=family, seed=1000 + seed, **budget.strike_overrides
    )
    planner, info = fit_strike_run(cfg, store.run_dir(family, STRIKE_CELL, seed))
    return planner, float(info["fit_cpu_seconds"])


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
    """`SB3DQNConfig` overrides of the SB3 baselines, applied on top of the family's tuned row
    (`robot_meta.meta.baselines.SB3_TUNED`)."""
    shots: tuple[int, ...] = (0, 1, 5, 10)
    num_tasks: int = 8
    """Held-out tasks per seed."""
    episodes: int = 5
    """Greedy evaluation episodes per unit and K."""
    seeds: tuple[int, ...] = (0, 1, 2)
    strike_overrides: dict[str, Any] = field(default_factory=dict)
    """`StrikePlannerConfig` overrides of the ``strike-planner`` cell (the default fit is `full`'s)."""

    def baseline_config(self, family: str) -> SB3DQNConfig:
        """The `SB3DQNConfig` of this budget's SB3 baselines on `family`: the family's tuned row
        (`robot_meta.meta.baselines.SB3_TUNED`) with `baseline_overrides` on top."""
        from robot_meta.meta.baselines import tuned_sb3_config

        return replace(tuned_sb3_config(family), **self.baseline_overrides)


BUDGETS: dict[str, Budget] = {
    # Minutes on 2 busy cores: meta runs of 6 iterations, 2.5k-step baselines, 2 tasks x 1 seed and
    # K in {0, 1} - the scratch-100x cell alone is 100 x 1 x 50 = 5k target-task steps per task, and
    # SB3 DQN runs at about 100-300 steps/s on these machines. Checks the machinery, not the targets.
    "small": Budget(
        meta_budget="smoke",
        meta_overrides={"meta_iterations": 6, "num_tasks": 8, "meta_batch_size": 4, "learning_starts": 400},
        strike_overrides=STRIKE_BUDGETS["smoke"],
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


#: The held-out splits a K-shot comparison can evaluate on (`TaskDistribution` presets' splits).
SPLITS = ("test", "interp", "ood")


@dataclass(frozen=True)
class KShotStore:
    """Where a comparison keeps its cells and its training runs."""

    cells_dir: Path
    """Cached cells: ``cells_dir/<budget>/<family>/<cell>-seed<seed>.json``."""
    runs_dir: Path
    """Meta runs and baseline policies: ``runs_dir/<family>/<name>-seed<seed>``."""
    meta_runs: str | None = None
    """Evaluate existing complete meta runs at ``meta_runs.format(algo=, family=, seed=)`` instead of training."""
    split: Split = "test"
    """The held-out split the cells evaluate on (training is the same for every split: the train split)."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}: choose one of {list(SPLITS)}")

    def cell_path(self, budget: str, family: str, cell: str, seed: int) -> Path:
        """``cells_dir/<budget>/...`` for the `test` split, ``cells_dir/<budget>-<split>/...`` for another."""
        key = budget if self.split == "test" else f"{budget}-{self.split}"
        return self.cells_dir / key / family / f"{cell}-seed{seed}.json"

    def run_dir(self, family: str, name: str, seed: int) -> Path:
        return self.runs_dir / family / f"{name}-seed{seed}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def _timed_json(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def train_meta(
    budget: Budget, family: str, algo: str, seed: int, store: KShotStore
) -> tuple[Path, float | None]:
    """Train (resume, or skip) one meta run; returns its directory and its training wall time.

    With `KShotStore.meta_runs` an existing complete run at ``meta_runs.format(algo=, family=, seed=)``
    is evaluated as it is (its training time is then unknown unless it records one).
    """
    from robot_meta.meta import load_run, make_config, train_run

    if store.meta_runs:
        given = Path(store.meta_runs.format(algo=algo, family=family, seed=seed))
        run = load_run(given)
        if run.iteration < run.config.meta_iterations:
            raise RuntimeError(
                f"{given} is at iteration {run.iteration}/{run.config.meta_iterations}: let it finish first"
            )
        if run.config.seed != seed:
            raise RuntimeError(f"{given} was trained with seed {run.config.seed}, not {seed}")
        return given, _timed_json(given / "bench_train_seconds.json")
    out = store.run_dir(family, algo, seed)
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
        write_json(timing, {"seconds": before + spent})
    return out, _timed_json(timing)


def train_baseline(
    budget: Budget, family: str, kind: str, seed: int, store: KShotStore
) -> tuple[Any, float | None]:
    """Train (resume, or skip) the domain-rand / oracle policy of a seed; returns its Q-network and wall time."""

    from robot_meta.meta.baselines import load_baseline, train_policy_baseline

    out = store.run_dir(family, kind, seed)
    cfg = budget.baseline_config(family)
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
    budget_name: str, family: str, cell: str, seed: int, store: KShotStore
) -> tuple[dict[str, Any], Path]:
    """Train what the cell needs and evaluate it on the seed's held-out tasks."""

    from robot_meta.envs import TaskDistribution
    from robot_meta.meta import load_run
    from robot_meta.meta.baselines import baseline_env, eval_env_factory, observation_stats
    from robot_meta.meta.eval.baseline_methods import ScratchMethod, finetune_method, policy_method
    from robot_meta.meta.eval.protocol import Method, evaluation_tasks, methods_for_run
    from robot_meta.meta.registry import ALGO_NAMES
    from robot_meta.meta.rollout import GymEnvFactory

    budget = BUDGETS[budget_name]
    env_id = FAMILY_ENVS[family]
    train_seconds: float | None = 0.0
    methods: list[Method]
    if cell in ALGO_NAMES:
        out, train_seconds = train_meta(budget, family, cell, seed, store)
        methods = list(methods_for_run(load_run(out)))
    elif cell in ("domain-rand", "oracle"):
        model, train_seconds = train_baseline(budget, family, cell, seed, store)
        methods = [policy_method(cell, lambda _s: model, eval_env_factory(cell, env_id))]
    elif cell == STRIKE_CELL:
        from robot_meta.meta.eval.protocol import methods_for_strike_planner

        planner, train_seconds = train_strike_planner(budget, family, seed, store)
        run_dir = store.run_dir(family, STRIKE_CELL, seed)
        methods = list(methods_for_strike_planner(planner, run_dir, GymEnvFactory(env_id), oracle=True))
    elif cell == "finetune":
        model, train_seconds = train_baseline(budget, family, "domain-rand", seed, store)
        methods = [finetune_method(lambda _s: model, GymEnvFactory(env_id))]
    elif cell == "scratch":
        # the same kind of fixed normaliser as the other baselines: train-distribution statistics
        cfg = budget.baseline_config(family)
        stats_env = baseline_env("domain-rand", env_id, family)
        stats = observation_stats(stats_env, cfg.obs_stats_steps, seed) if cfg.obs_stats_steps > 0 else None
        stats_env.close()
        methods = [ScratchMethod(GymEnvFactory(env_id), config=cfg, obs_stats=stats)]
    else:
        raise ValueError(f"unknown cell {cell!r}: choose one of {list(cells())}")
    tasks = TaskDistribution.preset(family).split(store.split)
    # Units are cached one by one (a scratch cell of the full budget trains 8 x 50k steps): an
    # interrupted cell resumes at its next task.
    partial_path = store.cell_path(budget_name, family, cell, seed).with_suffix(".partial.json")
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
        write_json(partial_path, clean_json(partial))
        log.info("  task %d/%d done (%.0f s)", i + 1, budget.num_tasks, time.perf_counter() - t0)
    names = [n for m in methods for n in m.names]
    data = {
        "family": family,
        "cell": cell,
        "seed": seed,
        "budget": budget_name,
        "date": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "train_seconds": train_seconds,
        "eval_seconds": partial["eval_seconds"],
        "methods": {
            n: [u for i in sorted(partial["units"], key=int) for u in partial["units"][i][n]] for n in names
        },
    }
    return data, partial_path


def clean_json(obj: Any) -> Any:
    """`obj` with string keys and non-finite floats as None (JSON-safe)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def compute_in_parallel(script: Path, families: list[str], argv: Sequence[str], jobs: int) -> list[str]:
    """Compute each family's cells in its own process (`jobs` at a time); the families that failed.

    Every worker is `script` (``benchmarks/kshot.py``) with the caller's arguments followed by ``--families FAMILY
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
                cmd = [sys.executable, str(Path(script).resolve()), *argv, "--families", fam,
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
