"""Fitting the strike planner on slide: the collected travels follow the strike speed, the fit is
seeded, the table has one row per particle, and one real shot moves the posterior under the protocol."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from robot_meta.envs import TaskDistribution
from robot_meta.meta.eval.adapters import StrikeAdapter
from robot_meta.meta.strike import (
    StrikePlannerConfig,
    collect_first_strikes,
    fit_strike_planner,
    strike_columns,
)

SMALL = StrikePlannerConfig(first_strikes=40, particles=16, fit_steps=300, seed=3)


def test_collected_travel_grows_with_strike_speed() -> None:
    x, y, strikes, layout = collect_first_strikes(SMALL)
    assert x.shape[0] == 40 and y.shape == (40,)
    assert len(strikes) == 10 and layout.object_position == 6
    speed = x[:, -1]
    on_table = y < 0.99
    # faster strikes send the puck farther (a correlation over random tasks, not one pair)
    assert np.corrcoef(speed[on_table], y[on_table])[0, 1] > 0.5
    assert np.all(y[on_table] > 0.0)


def test_fit_is_seeded_and_tabulates_every_particle() -> None:
    a, info = fit_strike_planner(SMALL)
    b, _ = fit_strike_planner(SMALL)
    np.testing.assert_array_equal(a.travel, b.travel)
    assert a.travel.shape == (16, 10)
    assert info["first_strikes"] == 40 and np.isfinite(info["train_rmse_m"])
    # the model keeps the physics: on average the fastest strike travels farther than the slowest
    assert a.travel[:, -1].mean() > a.travel[:, 0].mean() + 0.1


def test_one_real_shot_updates_the_posterior() -> None:
    planner, _ = fit_strike_planner(SMALL)
    adapter = StrikeAdapter(planner)
    env = gym.make("robot_meta/PandaSlide-v0")
    task = TaskDistribution.preset("slide").split("test").sample(1, np.random.default_rng(0))[0]
    adapter.begin(task, np.random.default_rng(0))
    obs, _ = env.reset(seed=0, options={"task": task})
    first = adapter.act(obs, False)
    assert first in strike_columns(env)
    for _ in range(50):
        a = adapter.act(obs, False)
        nxt, r, term, trunc, _ = env.step(a)
        adapter.observe(obs, a, float(r), nxt, term)
        obs = nxt
        if term or trunc:
            break
    assert adapter.planner.observed == 1
    assert not np.allclose(adapter.planner.posterior(), 1.0 / 16)
    assert adapter.act_unadapted(env.reset(seed=1, options={"task": task})[0]) in strike_columns(env)
    env.close()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("first_strikes", 0, "first_strikes"), ("sigma", float("nan"), "sigma"), ("hidden", (), "hidden")],
)
def test_config_refuses_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StrikePlannerConfig(**{field: value})  # type: ignore[arg-type]


def test_kshot_cell_fits_once_and_resumes_from_the_saved_planner(tmp_path: Path) -> None:
    from robot_meta.meta.eval import kshot

    store = kshot.KShotStore(tmp_path / "cells", tmp_path / "runs")
    data, _ = kshot.compute_cell("small", "slide", kshot.STRIKE_CELL, 0, store)
    units = data["methods"][kshot.STRIKE_CELL]
    assert {u["k"] for u in units} == {0, 1} and len(units) == 2 * 2  # small: 2 tasks x K in {0, 1}
    assert all("control_success" in u for u in units if u["k"] == 1)  # the paired control ran
    saved = store.run_dir("slide", kshot.STRIKE_CELL, 0)
    first, fit_s = kshot.train_strike_planner(kshot.BUDGETS["small"], "slide", 0, store)
    mtime = (saved / "strike_fit.json").stat().st_mtime_ns
    again, fit_s2 = kshot.train_strike_planner(kshot.BUDGETS["small"], "slide", 0, store)
    assert (saved / "strike_fit.json").stat().st_mtime_ns == mtime and fit_s2 == fit_s  # loaded, not refitted
    np.testing.assert_array_equal(first.travel, again.travel)
    assert first.travel.shape == (16, 10)
    with pytest.raises(ValueError, match="no strike actions"):
        kshot.train_strike_planner(kshot.BUDGETS["small"], "reach", 0, store)
