"""The headroom measure (issue 14): how much a controller that knows the task beats the best pooled one.

For a task family and split, a row's tasks vary one hidden parameter (``mass``, ``shape``,
``terrain``, ``friction``; ``all`` varies them all); a knob grid is scored by real episodes on
calibration seeds, and the row's headroom is calibrated (each task's own best knob) minus pooled (the
best knob across tasks) success on evaluation seeds, with a 95 % interval over tasks. The episodes and
knob grids are the scripted controllers of ``benchmarks/headroom.py``; this module is the arithmetic
and the task sets, shared with ``tests/envs/test_envs_headroom.py``. Imports only numpy and the envs'
parameter types.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from robot_meta.envs.params import Split

__all__ = [
    "FULL",
    "HEADLINE_POINTS",
    "QUICK",
    "ROWS",
    "SPLITS",
    "Budget",
    "Episode",
    "measure_row",
    "row_tasks",
    "summarise",
    "varies",
]

ROWS = ("mass", "shape", "terrain", "friction", "all")
SPLITS = ("test", "interp", "ood")

#: A family is a headline family when its whole-test-split headroom is at least this (points) and
#: its 95 % interval excludes zero.
HEADLINE_POINTS = 20.0


@dataclass(frozen=True)
class Budget:
    tasks: int
    calib_seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    family_tasks: tuple[tuple[str, int], ...] = ()
    """Per-family override of `tasks` (pick-and-place episodes are the longest; push's shoves are short,
    so it affords 20 tasks: each row then holds ~7 tasks of each terrain or ~5 of each shape)."""

    def tasks_for(self, family: str) -> int:
        return dict(self.family_tasks).get(family, self.tasks)


FULL = Budget(
    tasks=10,
    calib_seeds=(100, 101),
    eval_seeds=(200, 201, 202, 203, 204),
    family_tasks=(("slide", 12), ("push", 20), ("reach", 6), ("pick_place", 6)),
)
QUICK = Budget(tasks=3, calib_seeds=(100, 101), eval_seeds=(200, 201))


def row_tasks(family: str, split: str, row: str, n: int) -> list[Any]:
    """The `n` tasks of one row: drawn from `split`, only `row`'s parameter kept (others nominal)."""
    from robot_meta.envs import TaskDistribution

    dist = TaskDistribution.preset(family)
    rng = np.random.default_rng([SPLITS.index(split), ROWS.index(row), 14])
    drawn = dist.split(cast(Split, split)).sample(n, rng)
    if row == "all":
        return drawn
    nom = dist.nominal
    keep: dict[str, tuple[str, ...]] = {
        "mass": ("object_mass",),
        "shape": ("object_shape",),
        "friction": ("lateral_friction",),
        "terrain": ("terrain", "terrain_slope_deg", "terrain_roughness"),
    }
    return [nom.replace(**{k: getattr(t, k) for k in keep[row]}) for t in drawn]


def varies(tasks: Sequence[Any]) -> bool:
    return len(set(tasks)) > 1


#: One real episode: (task, goal seed, knob) -> success.
Episode = Callable[[Any, int, Any], bool]


def measure_row(tasks: Sequence[Any], knobs: Sequence[Any], episode: Episode, b: Budget) -> dict[str, Any]:
    """Calibrated vs pooled success on `tasks` with knob selection on calibration seeds.

    The calibrated knob of a task is its best on the calibration goals, ties broken by the pooled
    score (a controller that knows the task may also use what works across tasks); episodes are
    cached, so a calibrated knob equal to the pooled one costs nothing more.
    """
    cache: dict[tuple[int, int, int], bool] = {}

    def play(i: int, seed: int, k: int) -> bool:
        if (i, seed, k) not in cache:
            cache[i, seed, k] = episode(tasks[i], seed, knobs[k])
        return cache[i, seed, k]

    ks = range(len(knobs))
    cal_s = np.array(
        [[np.mean([play(i, s, k) for s in b.calib_seeds]) for k in ks] for i in range(len(tasks))]
    )
    pool_score = cal_s.mean(axis=0)
    pooled_k = int(np.argmax(pool_score))
    own_k = [int(np.lexsort((pool_score, row))[-1]) for row in cal_s]  # best row, ties: best pooled
    calibrated = np.array([np.mean([play(i, s, own_k[i]) for s in b.eval_seeds]) for i in range(len(tasks))])
    pooled = np.array([np.mean([play(i, s, pooled_k) for s in b.eval_seeds]) for i in range(len(tasks))])
    return summarise(
        calibrated,
        pooled,
        {"pooled_knob": knobs[pooled_k], "calibrated_knobs": [knobs[i] for i in own_k]},
    )


def summarise(calibrated: np.ndarray, pooled: np.ndarray, extra: dict[str, Any]) -> dict[str, Any]:
    """Row result: means, headroom and its 95 % interval (normal approximation over tasks)."""
    diff = calibrated - pooled
    n = len(diff)
    half = float(1.96 * diff.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {
        "calibrated": float(calibrated.mean()),
        "pooled": float(pooled.mean()),
        "headroom": float(diff.mean()),
        "ci_low": float(diff.mean() - half),
        "ci_high": float(diff.mean() + half),
        "tasks": n,
        **extra,
    }
