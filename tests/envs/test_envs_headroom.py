"""The headroom measure (robot_meta.diagnostics.headroom, behind benchmarks/headroom.py): row task sets and the calibrated-vs-pooled arithmetic.

The episodes here are synthetic (a known success table), so the expected numbers follow by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from robot_meta.diagnostics import headroom
from robot_meta.envs import TaskDistribution

VARIED = {
    "mass": {"object_mass"},
    "shape": {"object_shape"},
    "friction": {"lateral_friction"},
    "terrain": {"terrain", "terrain_slope_deg", "terrain_roughness"},
}


@pytest.mark.parametrize("family", ["push", "slide"])
@pytest.mark.parametrize("split", headroom.SPLITS)
@pytest.mark.parametrize("row", sorted(VARIED))
def test_a_row_varies_only_its_parameter_and_stays_in_the_split(family: str, split: str, row: str) -> None:
    dist = TaskDistribution.preset(family)
    tasks = headroom.row_tasks(family, split, row, 12)
    nominal = dist.nominal.to_dict()
    for t in tasks:
        changed = {k for k, v in t.to_dict().items() if v != nominal[k]}
        assert changed <= VARIED[row], f"{row} row changed {changed}"
    assert headroom.varies(tasks), f"{family}:{split} {row} row does not vary"
    drawn = dist.split(split).sample(
        12, np.random.default_rng([headroom.SPLITS.index(split), headroom.ROWS.index(row), 14])
    )  # type: ignore[arg-type]
    assert [getattr(t, f) for t in tasks for f in sorted(VARIED[row])] == [
        getattr(t, f) for t in drawn for f in sorted(VARIED[row])
    ]


@pytest.mark.parametrize("split", headroom.SPLITS)
def test_the_all_row_is_the_split_itself(split: str) -> None:
    dist = TaskDistribution.preset("slide").split(split)  # type: ignore[arg-type]
    tasks = headroom.row_tasks("slide", split, "all", 20)
    assert all(dist.contains(t) for t in tasks)
    assert headroom.row_tasks("slide", split, "all", 20) == tasks  # seeded


def test_reach_has_no_terrain_row() -> None:
    assert not headroom.varies(headroom.row_tasks("reach", "test", "terrain", 10))


def test_calibrated_minus_pooled_on_a_known_success_table() -> None:
    """Two tasks, two knobs: task 0 succeeds only with knob 0, task 1 only with knob 1. The pooled
    knob (a tie, broken towards the first) serves one task; the calibrated ones serve both."""
    b = headroom.Budget(tasks=2, calib_seeds=(1, 2), eval_seeds=(3, 4, 5))
    table = {(0, 0): True, (0, 1): False, (1, 0): False, (1, 1): True}

    def episode(task: Any, seed: int, knob: Any) -> bool:
        return table[task, knob]

    r = headroom.measure_row([0, 1], [0, 1], episode, b)
    assert r["calibrated"] == 1.0 and r["pooled"] == 0.5
    assert r["headroom"] == pytest.approx(0.5)
    assert r["ci_low"] < 0.5 < r["ci_high"] and r["tasks"] == 2
    assert r["calibrated_knobs"] == [0, 1]


def test_calibration_ties_break_towards_the_pooled_knob() -> None:
    """Calibration goals cannot tell the knobs apart on task 0 but the pool prefers knob 1: the
    calibrated controller takes knob 1 too, so it is never below pooled by a tie."""
    b = headroom.Budget(tasks=2, calib_seeds=(1,), eval_seeds=(2,))

    def episode(task: Any, seed: int, knob: Any) -> bool:
        return bool(knob == 1 and (task == 1 or seed == 2))

    r = headroom.measure_row([0, 1], [0, 1], episode, b)
    assert r["pooled_knob"] == 1 and r["calibrated_knobs"] == [1, 1]
    assert r["headroom"] == 0.0


def test_summarise_interval_is_the_normal_approximation() -> None:
    cal, pool = np.array([1.0, 0.5, 1.0, 0.0]), np.array([0.5, 0.5, 0.0, 0.0])
    r = headroom.summarise(cal, pool, {})
    diff = cal - pool
    half = 1.96 * diff.std(ddof=1) / 2.0
    assert r["headroom"] == pytest.approx(diff.mean())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
