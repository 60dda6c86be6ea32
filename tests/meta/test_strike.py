"""Fitting the strike planner on slide: the collected travels follow the strike speed, the fit is
seeded, the table has one row per particle, one real shot moves the posterior under the protocol,
and the saved planner runs on the device loop (``robot-meta adapt``) with adaptation on and off."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from robot_meta.envs import TaskDistribution
from robot_meta.meta.eval.adapters import StrikeAdapter
from robot_meta.meta.strike import (
    TRAVEL_MODEL_FILE,
    StrikePlannerConfig,
    TravelModel,
    collect_first_strikes,
    fit_strike_planner,
    fit_strike_run,
    privileged_planner,
    strike_columns,
)

SMALL = StrikePlannerConfig(first_strikes=40, particles=16, fit_steps=300, seed=3)


def test_collected_travel_grows_with_strike_speed() -> None:
    x, y, strikes, layout, n_actions, approach, reach_x, radius = collect_first_strikes(SMALL)
    assert x.shape[0] == 40 and y.shape == (40,) and n_actions == 17
    assert approach == {"+x": 1, "-x": 2, "+y": 3, "-y": 4}  # follow_up (the default): the move actions
    assert reach_x == 0.3  # slide's end-effector limit along x
    assert radius == 0.07  # slide's success distance
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
    # the follow-up's settings reach the planner (the defaults), with the env's reach
    got = (
        a.in_episode,
        a.match_gap,
        a.short_credit,
        a.record_follow_ups,
        a.reach_x,
        a.chase,
        a.follow_up_reach,
    )
    assert got == (True, True, 0.3, True, 0.3, True, 0.15)
    assert a.creep_first is None and a.creep_follow is None  # slide has no fine moves to creep with
    assert a.window == 0.06  # slide's 7 cm success distance less 1 cm
    plain, _ = fit_strike_planner(replace(SMALL, follow_up=False, window=0.05))
    assert plain.window == 0.05
    got = (
        plain.approach,
        plain.in_episode,
        plain.short_credit,
        plain.reach_x,
        plain.chase,
        plain.follow_up_reach,
    )
    assert got == (None, False, 0.0, None, False, None)


def test_push_fit_creeps_with_its_fine_moves() -> None:
    push, _ = fit_strike_planner(replace(SMALL, env_id="robot_meta/PandaPush-v0", preset="push"))
    # push's 2.5 cm moves approach, its 0.5 cm moves creep
    assert push.approach == {
        "+x": 1,
        "-x": 2,
        "+y": 3,
        "-y": 4,
        "+x fine": 7,
        "-x fine": 8,
        "+y fine": 9,
        "-y fine": 10,
    }
    assert (push.creep_first, push.creep_follow, push.creep_stop, push.creep_credit) == (0.22, 0.1, 0.01, 0.5)
    assert push.window == 0.04  # push's 5 cm success distance less 1 cm
    tiny = replace(SMALL, first_strikes=4, particles=4, fit_steps=10)  # only the settings matter here
    off, _ = fit_strike_planner(
        replace(tiny, env_id="robot_meta/PandaPush-v0", preset="push", creep_first=None, creep_follow=None)
    )
    assert off.creep_first is None and off.creep_follow is None and off.approach == push.approach


def test_one_real_shot_updates_the_posterior() -> None:
    planner, _ = fit_strike_planner(SMALL)
    adapter = StrikeAdapter(planner)
    env = gym.make("robot_meta/PandaSlide-v0")
    task = TaskDistribution.preset("slide").split("test").sample(1, np.random.default_rng(0))[0]
    adapter.begin(task, np.random.default_rng(0))
    obs, _ = env.reset(seed=0, options={"task": task})
    first = adapter.act(obs, False)
    assert first in strike_columns(env)
    from_pose = 0  # strikes played from the strike pose: the first and any follow-up
    for _ in range(50):
        a = adapter.act(obs, False)
        from_pose += int(a in strike_columns(env) and adapter.planner.at_start(obs))
        nxt, r, term, trunc, _ = env.step(a)
        adapter.observe(obs, a, float(r), nxt, term)
        obs = nxt
        if term or trunc:
            break
    adapter.adapt()
    assert 1 <= adapter.planner.observed <= from_pose  # each came to rest unless the episode ended first
    assert not np.allclose(adapter.planner.posterior(), 1.0 / 16)
    assert adapter.act_unadapted(env.reset(seed=1, options={"task": task})[0]) in strike_columns(env)
    env.close()


def test_saved_travel_model_reproduces_the_table_and_gives_the_privileged_planner(tmp_path: Path) -> None:
    """The numpy travel model saved with a fit equals the fit's torch table on its particles (1e-5),
    and at a task's true parameters gives a one-particle planner that strikes where it predicts a hit."""
    planner, _ = fit_strike_run(SMALL, tmp_path / "fit")
    model = TravelModel.load(tmp_path / "fit")
    particles = (
        TaskDistribution.preset("slide").split("train").sample(16, np.random.default_rng(SMALL.seed + 1))
    )
    np.testing.assert_allclose(model.table(particles), planner.travel, atol=1e-5, rtol=0)
    assert model.strikes == 10 and model.table(particles[:3]).shape == (3, 10)

    task = TaskDistribution.preset("slide").split("test").sample(1, np.random.default_rng(5))[0]
    oracle = privileged_planner(planner, model, task)
    np.testing.assert_array_equal(oracle.travel, model.table([task]))
    assert oracle.posterior().tolist() == [1.0] and planner.travel.shape == (16, 10)  # the fit is untouched
    env = gym.make("robot_meta/PandaSlide-v0")
    hits = 0
    for seed in range(6):
        obs, _ = env.reset(seed=seed, options={"task": task})
        need = float(obs[oracle.layout.goal_position] - obs[oracle.layout.object_position])
        lands = np.abs(oracle.travel[0] - need) < oracle.window
        col = oracle.strikes.index(oracle.act(obs))
        if lands.any():  # a predicted hit scores 1, more than any short credit (<= 0.5)
            assert lands[col]
            hits += 1
    assert hits >= 1
    env.close()

    from robot_meta.meta.eval import evaluate

    protocol: dict[str, Any] = dict(
        shots=(0, 1), episodes=1, seeds=(0,), num_tasks=1, plot=False, progress=False
    )
    res = evaluate(
        tmp_path / "fit", "test", **protocol
    )  # `robot-meta evaluate`: the oracle beside the planner
    assert set(res.methods) == {"strike-planner", "strike-oracle"}
    oracle_k = res.methods["strike-oracle"].per_k
    assert oracle_k[0].success == oracle_k[1].success  # it takes no shots
    (tmp_path / "fit" / TRAVEL_MODEL_FILE).rename(tmp_path / "moved.npz")  # a fit from before the model file
    assert set(evaluate(tmp_path / "fit", "test", **protocol).methods) == {"strike-planner"}
    (tmp_path / "moved.npz").rename(tmp_path / "fit" / TRAVEL_MODEL_FILE)

    with pytest.raises(ValueError, match=r"\(particles, 10\) table"):
        planner.with_table(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        planner.with_table(np.full((1, 10), np.nan))
    (tmp_path / "fit" / TRAVEL_MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable travel model"):
        TravelModel.load(tmp_path / "fit")
    with pytest.raises(FileNotFoundError, match="predates the saved travel model; refit"):
        TravelModel.load(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("first_strikes", 0, "first_strikes"),
        ("sigma", float("nan"), "sigma"),
        ("hidden", (), "hidden"),
        ("creep_first", -0.1, "creep_first"),
        ("creep_follow", float("inf"), "creep_follow"),
        ("creep_stop", -0.01, "creep_stop"),
        ("creep_credit", 1.5, "creep_credit"),
    ],
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
    oracle = data["methods"][kshot.STRIKE_ORACLE]  # the same fit at the true parameters: no shots taken
    assert [u["task"] for u in oracle] == [u["task"] for u in units]
    by_task = {t: {u["success"] for u in oracle if u["task_index"] == t} for t in (0, 1)}
    assert all(len(v) == 1 for v in by_task.values())  # one evaluation, reported at every K
    assert kshot.STRIKE_ORACLE in kshot.BASELINE_METHODS  # never the "best meta method"
    saved = store.run_dir("slide", kshot.STRIKE_CELL, 0)
    first, fit_s = kshot.train_strike_planner(kshot.BUDGETS["small"], "slide", 0, store)
    mtime = (saved / "strike_fit.json").stat().st_mtime_ns
    again, fit_s2 = kshot.train_strike_planner(kshot.BUDGETS["small"], "slide", 0, store)
    assert (saved / "strike_fit.json").stat().st_mtime_ns == mtime and fit_s2 == fit_s  # loaded, not refitted
    np.testing.assert_array_equal(first.travel, again.travel)
    assert first.travel.shape == (16, 10)
    with pytest.raises(ValueError, match="no strike actions"):
        kshot.train_strike_planner(kshot.BUDGETS["small"], "reach", 0, store)


def test_kshot_cell_of_another_split_evaluates_its_tasks_with_the_same_fit(tmp_path: Path) -> None:
    """`KShotStore.split`: the `interp` cell plays the interp split's tasks (the protocol's draw for
    that seed), is kept apart from the `test` cell, and reuses the one fit of the train split."""
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.eval import kshot
    from robot_meta.meta.eval.units import evaluation_tasks

    test = kshot.KShotStore(tmp_path / "cells", tmp_path / "runs")
    interp = kshot.KShotStore(tmp_path / "cells", tmp_path / "runs", split="interp")
    assert test.cell_path("small", "slide", "x", 0) == tmp_path / "cells" / "small" / "slide" / "x-seed0.json"
    assert (
        interp.cell_path("small", "slide", "x", 0)
        == tmp_path / "cells" / "small-interp" / "slide" / "x-seed0.json"
    )
    kshot.train_strike_planner(kshot.BUDGETS["small"], "slide", 0, test)
    mtime = (test.run_dir("slide", kshot.STRIKE_CELL, 0) / "strike_fit.json").stat().st_mtime_ns
    data, _ = kshot.compute_cell("small", "slide", kshot.STRIKE_CELL, 0, interp)
    assert (interp.run_dir("slide", kshot.STRIKE_CELL, 0) / "strike_fit.json").stat().st_mtime_ns == mtime
    want = evaluation_tasks(
        TaskDistribution.preset("slide").split("interp"), 0, kshot.BUDGETS["small"].num_tasks
    )
    played = [u["task"] for u in data["methods"][kshot.STRIKE_CELL] if u["k"] == 0]
    assert played == [t.to_dict() for t in want]
    not_test = evaluation_tasks(
        TaskDistribution.preset("slide").split("test"), 0, kshot.BUDGETS["small"].num_tasks
    )
    assert played != [t.to_dict() for t in not_test]
    with pytest.raises(ValueError, match="unknown split 'train'"):
        kshot.KShotStore(tmp_path, tmp_path, split="train")


def test_robot_meta_adapt_runs_a_saved_planner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robot_meta.cli import main
    from robot_meta.meta.eval import evaluate

    planner, info = fit_strike_planner(SMALL)
    planner.save(tmp_path / "planner", provenance=info)
    out_json = tmp_path / "adapt.json"
    args = ["adapt", str(tmp_path / "planner"), "--split", "test", "--episodes", "3", "--tasks", "2"]
    assert main([*args, "--rate", "0", "--seed", "4", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "strike-planner policy" in text and "robot_meta/PandaSlide-v0" in text
    on = json.loads(out_json.read_text())
    # every episode strikes once and the puck comes to rest: one posterior update per episode end
    assert on["adaptations"] == 2 * 2 and on["method"] == "posterior" and on["rolled_back"] == 0
    assert main([*args, "--rate", "0", "--seed", "4", "--no-adapt", "--json", str(out_json)]) == 0
    assert "adaptation switched off" in capsys.readouterr().out
    off = json.loads(out_json.read_text())
    assert off["adaptations"] == 0
    # --no-adapt plans every strike from the prior: its first episodes are those of the same planner
    # without the episode's memory (`in_episode` off), adapting as usual (nothing to adapt on yet)
    planner.in_episode = False
    planner.save(tmp_path / "no_memory", provenance=info)
    memo = tmp_path / "no_memory.json"
    no_memory = [
        "adapt",
        str(tmp_path / "no_memory"),
        *args[2:],
        "--rate",
        "0",
        "--seed",
        "4",
        "--json",
        str(memo),
    ]
    assert main(no_memory) == 0
    first = json.loads(memo.read_text())
    assert (off["success_before"], off["return_before"]) == (first["success_before"], first["return_before"])
    # the device's first episodes are the torch protocol's K = 0 units of the same evaluation seed
    res = evaluate(tmp_path / "planner", "test", shots=(0,), episodes=1, seeds=(4,), num_tasks=2, plot=False)
    (method,) = res.methods.values()
    assert on["success_before"] == pytest.approx(method.per_k[0].success)
    assert on["return_before"] == pytest.approx(method.per_k[0].ret, abs=1e-4)
