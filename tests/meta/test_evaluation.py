"""The K-shot protocol (`robot_meta.meta.eval`) on the toy family (and PandaSlide for the paired control): statistics, ordering, files, errors."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from toy_env import ToyEnv, ToyTask, ToyTasks, toy_config, toy_trainer

from robot_meta.envs import TaskDistribution
from robot_meta.meta.eval import (
    EVAL_FILE,
    PLOT_FILE,
    AdapterMethod,
    EvalResult,
    UnitResult,
    aggregate,
    evaluate,
    mean_ci,
    plot_success,
    run_methods,
    t_quantile_975,
)
from robot_meta.meta.rollout import cached_env

# -- statistics --------------------------------------------------------------------------------------


def test_t_quantile_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 40), 50, 100, 1000]:
        assert t_quantile_975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=2e-5)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile_975(0)


def test_mean_ci_known_case() -> None:
    # x = 0.2, 0.4, 0.6, 0.8: mean 0.5, s = sqrt(1/15) = 0.258199, t_{0.975,3} = 3.182446
    # half-width = 3.182446 * 0.258199 / 2 = 0.410853
    mean, lo, hi = mean_ci([0.2, 0.4, 0.6, 0.8])
    assert mean == pytest.approx(0.5)
    assert lo == pytest.approx(0.5 - 0.410853, abs=1e-6) and hi == pytest.approx(0.5 + 0.410853, abs=1e-6)
    # clipped to [0, 1] for rates; a single unit has no interval
    assert mean_ci([0.0, 1.0, 1.0], bounds=(0.0, 1.0))[2] == 1.0
    m1, lo1, hi1 = mean_ci([0.7])
    assert m1 == 0.7 and math.isnan(lo1) and math.isnan(hi1)
    with pytest.raises(ValueError, match="at least one"):
        mean_ci([])


# -- a scripted adapter with known outcomes ----------------------------------------------------------


class ScriptedAdapter:
    """Stays put (never succeeds) until it has adapted on at least one shot; then acts perfectly.

    ``uses_shots=False`` makes it a non-adapting policy that always acts perfectly.
    """

    def __init__(self, uses_shots: bool = True) -> None:
        self.uses_shots = uses_shots
        self.task: ToyTask = ToyTask()
        self.adapted = False
        self.observed = 0
        self.rng = np.random.default_rng(0)

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self.task, self.adapted, self.observed, self.rng = task, False, 0, rng

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        self.observed += 1

    def adapt(self) -> None:
        self.adapted = self.observed > 0

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        if self.uses_shots and not self.adapted:
            return 1 if greedy else int(self.rng.integers(3))  # "stay" when greedy: never succeeds
        direction = np.sign(obs[2]) * np.sign(self.task.gain)
        return int(1 + direction)

    def act_unadapted(self, obs: np.ndarray) -> int:
        return self.act(obs, True) if not self.uses_shots else 1  # before any shot: "stay"


def test_protocol_order_and_target_transitions() -> None:
    methods = [
        AdapterMethod("scripted", lambda _s: ScriptedAdapter(), ToyEnv),
        AdapterMethod("fixed", lambda _s: ScriptedAdapter(uses_shots=False), ToyEnv),
    ]
    res = run_methods(
        methods, ToyTasks(), shots=(0, 1, 3), episodes=3, seeds=(0, 1), num_tasks=3, progress=False
    )
    s = res["scripted"].per_k
    assert set(s) == {0, 1, 3} and all(v.n_units == 6 for v in s.values())
    # K=0 is evaluated before any shot: the stay-put policy never succeeds; it returns -sum |x - goal|
    assert s[0].success == 0.0 and s[0].target_transitions == 0
    assert s[0].ret == pytest.approx(float(np.mean([u.ret for u in res["scripted"].units if u.k == 0])))
    assert s[0].ret < -5.0  # 20 steps at 0.3-0.5 from the goal
    # after one shot it has adapted and solves every task
    assert s[1].success == 1.0 and s[3].success == 1.0
    assert s[1].ci_low == 1.0 and s[1].ci_high == 1.0
    # the transitions seen grow with K and are at most K full episodes
    units1 = [u for u in res["scripted"].units if u.k == 1]
    units3 = [u for u in res["scripted"].units if u.k == 3]
    for u1, u3 in zip(units1, units3, strict=True):
        assert 1 <= u1.target_transitions <= 20 and u1.target_transitions < u3.target_transitions <= 60
    # the non-adapting policy is evaluated once: same numbers for every K, no target transitions
    f = res["fixed"].per_k
    assert f[0].success == f[1].success == f[3].success == 1.0
    assert {v.target_transitions for v in f.values()} == {0}


def test_units_are_shared_and_deterministic() -> None:
    def once() -> list[Any]:
        m = AdapterMethod("scripted", lambda _s: ScriptedAdapter(), ToyEnv)
        out = run_methods([m], ToyTasks(), shots=(0, 2), episodes=2, seeds=(3,), num_tasks=2, progress=False)
        return [u.to_dict() for u in out["scripted"].units]

    a, b = once(), once()
    assert a == b
    assert [u["task"] for u in a if u["k"] == 0] == [u["task"] for u in a if u["k"] == 2]


def test_aggregate_matches_manual_mean_and_ci() -> None:
    m = AdapterMethod("scripted", lambda _s: ScriptedAdapter(), ToyEnv)
    res = run_methods([m], ToyTasks(), shots=(0,), episodes=2, seeds=(0, 1), num_tasks=2, progress=False)
    units = res["scripted"].units
    agg = aggregate("x", units)
    rets = [u.ret for u in units]
    mean, lo, hi = mean_ci(rets)
    assert agg.per_k[0].ret == pytest.approx(mean) and agg.per_k[0].ret_ci_low == pytest.approx(lo)
    assert agg.per_k[0].ret_ci_high == pytest.approx(hi) and lo < mean < hi


# -- the paired no-adaptation control -------------------------------------------------------------------


class RecordingToyEnv(ToyEnv):
    """ToyEnv that records ``(seed, first observation)`` of every reset (a factory of its own: own cached envs)."""

    def __init__(self) -> None:
        super().__init__()
        self.resets: list[tuple[int | None, np.ndarray]] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        self.resets.append((seed, obs.copy()))
        return obs, info


def test_control_replays_the_starts_and_goals_of_the_adapted_episodes() -> None:
    main, ctrl = cached_env(RecordingToyEnv), cached_env(RecordingToyEnv, slot="control")
    assert main is not ctrl
    main.resets.clear()  # type: ignore[attr-defined]
    ctrl.resets.clear()  # type: ignore[attr-defined]
    m = AdapterMethod("scripted", lambda _s: ScriptedAdapter(), RecordingToyEnv)
    e, n_tasks = 3, 2
    res = run_methods(
        [m], ToyTasks(), shots=(0, 1, 3), episodes=e, seeds=(0,), num_tasks=n_tasks, progress=False
    )
    main_r: list[tuple[int | None, np.ndarray]] = main.resets  # type: ignore[attr-defined]
    ctrl_r: list[tuple[int | None, np.ndarray]] = ctrl.resets  # type: ignore[attr-defined]
    # per unit, the main env runs [3 eval K=0][shot 1][3 eval K=1][shots 2, 3][3 eval K=3] ...
    per_unit = e + 1 + e + 2 + e
    assert len(main_r) == n_tasks * per_unit
    # ... and the control env [seeded reset][3 control K=1][seeded reset][3 control K=3]
    assert len(ctrl_r) == n_tasks * 2 * (1 + e)
    for t in range(n_tasks):
        unit = main_r[t * per_unit : (t + 1) * per_unit]
        k0, k1, k3 = unit[:e], unit[e + 1 : 2 * e + 1], unit[2 * e + 3 :]
        blocks = ctrl_r[t * 2 * (1 + e) : (t + 1) * 2 * (1 + e)]
        assert blocks[0][0] is not None and blocks[1 + e][0] is not None  # a fresh world before each block
        for adapted, control in ((k1, blocks[1 : 1 + e]), (k3, blocks[2 + e :])):
            assert [s for s, _ in control] == [None] * e
            for (_, a), (_, b) in zip(adapted, control, strict=True):
                np.testing.assert_array_equal(a, b)  # same start state and goal, bitwise
        # the K=0 episodes are other episodes: the reason for the control
        assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(k0, k1, strict=True))
    # stay-put before any shot, perfect after: the control never succeeds, the paired gain is 1
    for u in res["scripted"].units:
        if u.k == 0:
            assert u.control_success is None and u.control_ret is None
        else:
            assert u.success == 1.0 and u.control_success == 0.0 and u.control_ret is not None
            assert u.control_ret < u.ret
    for k in (1, 3):
        st = res["scripted"].per_k[k].control
        assert st is not None and st.n_units == n_tasks
        assert st.success == 0.0 and st.gain == 1.0 and (st.gain_ci_low, st.gain_ci_high) == (1.0, 1.0)
    assert res["scripted"].per_k[0].control is None


class StickyToyEnv(ToyEnv):
    """ToyEnv whose unseeded resets depend on what the env ran before (as a PyBullet world's solver state does).

    The start moves by 1e-4 per step taken since the last seeded reset: episodes run in between
    (e.g. a control run in the protocol's own env) would change every later episode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps_since_seed = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = super().reset(seed=seed, options=options)
        if seed is not None:
            self.steps_since_seed = 0
        self.x += 1e-4 * self.steps_since_seed
        return self._obs(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.steps_since_seed += 1
        return super().step(action)


class _RecordResets(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        super().__init__(env)
        self.resets: list[tuple[int | None, np.ndarray]] = []

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.resets.append((kwargs.get("seed"), obs.copy()))
        return obs, info


@dataclass(frozen=True)
class _RecordingPanda:
    env_id: str

    def __call__(self) -> gym.Env[np.ndarray, int]:
        return _RecordResets(gym.make(self.env_id, action_mode="discrete"))


class _ObsHashAdapter(ScriptedAdapter):
    """The same deterministic policy adapted or not (a hash of the observation); explores half the time."""

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        if self.rng.random() < (0.0 if greedy else 0.5):
            return int(self.rng.integers(9))
        return self.act_unadapted(obs)

    def act_unadapted(self, obs: np.ndarray) -> int:
        return int(abs(float(obs[:3].sum())) * 1e4) % 9


def test_control_on_a_pybullet_env_same_starts_and_bitwise_adapted_numbers() -> None:
    """PandaSlide: a world that keeps solver state across unseeded resets (the control runs in its own env)."""
    factory = _RecordingPanda("robot_meta/PandaSlide-v0")
    main, ctrl = cached_env(factory), cached_env(factory, slot="control")

    def once(control: bool) -> tuple[list[Any], Any, Any]:
        main.resets.clear()  # type: ignore[attr-defined]
        ctrl.resets.clear()  # type: ignore[attr-defined]
        m = AdapterMethod("hash", lambda _s: _ObsHashAdapter(), factory)
        tasks = TaskDistribution.preset("slide").split("test")
        out = run_methods(
            [m], tasks, shots=(0, 1, 2), episodes=2, seeds=(0,), num_tasks=1, progress=False, control=control
        )
        rows = [(u.k, u.success, u.ret, u.target_transitions, u.control_success) for u in out["hash"].units]
        return rows, m.adapter(0).rng.bit_generator.state, main.unwrapped.np_random.bit_generator.state  # type: ignore[attr-defined]

    on = once(True)
    main_r: list[tuple[int | None, np.ndarray]] = list(main.resets)  # type: ignore[attr-defined]
    ctrl_r: list[tuple[int | None, np.ndarray]] = list(ctrl.resets)  # type: ignore[attr-defined]
    off = once(False)
    assert [r[:4] for r in on[0]] == [r[:4] for r in off[0]] and on[1:] == off[1:]
    assert [r[4] is None for r in on[0]] == [True, False, False] and all(r[4] is None for r in off[0])
    # main: [2 eval K=0][shot][2 eval K=1][shot][2 eval K=2];
    # control: [seeded reset][2 control K=1][seeded reset][2 control K=2], the same first observations
    assert len(main_r) == 8 and [s for s, _ in ctrl_r] == [main_r[0][0], None, None] * 2
    for (_, a), (_, b) in zip(main_r[3:5] + main_r[6:], ctrl_r[1:3] + ctrl_r[4:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(main_r[1][1], main_r[3][1])


@pytest.mark.parametrize("env_factory", [ToyEnv, StickyToyEnv])
def test_control_leaves_the_adapted_numbers_and_every_stream_bitwise_unchanged(env_factory: type) -> None:
    def once(control: bool) -> tuple[list[Any], Any, Any]:
        m = AdapterMethod("scripted", lambda _s: ScriptedAdapter(), env_factory)
        out = run_methods(
            [m],
            ToyTasks(),
            shots=(0, 1, 2, 4),
            episodes=2,
            seeds=(5,),
            num_tasks=2,
            progress=False,
            control=control,
        )
        rows = [
            (u.seed, u.task_index, u.k, u.success, u.ret, u.target_transitions, u.task)
            for u in out["scripted"].units
        ]
        adapter_rng = m.adapter(5).rng.bit_generator.state  # type: ignore[attr-defined]
        return rows, adapter_rng, cached_env(env_factory).unwrapped.np_random.bit_generator.state

    with_control, without = once(True), once(False)
    assert with_control == without
    # the exploration stream was used (the shots explored) and ends in the same state either way
    assert with_control[1] != np.random.default_rng(0).bit_generator.state


def test_paired_gain_is_the_mean_of_per_unit_differences_with_its_t_interval() -> None:
    adapted = [0.6, 0.8, 0.4, 1.0]
    control = [0.2, 0.6, 0.4, 0.4]
    units = [UnitResult(0, i, 0, 0.0, -9.0, 0) for i in range(4)]  # K=0: no control
    units += [
        UnitResult(0, i, 1, a, -1.0 - i, 50, None, c, -5.0 - i)
        for i, (a, c) in enumerate(zip(adapted, control, strict=True))
    ]
    st = aggregate("m", units).per_k
    assert st[0].control is None and "paired_gain" not in st[0].to_dict()
    c = st[1].control
    assert c is not None and c.n_units == 4
    # differences 0.4, 0.2, 0.0, 0.6: mean 0.3, s = sqrt(0.2 / 3) = 0.258199, t_{0.975,3} = 3.182446
    # half-width = 3.182446 * 0.258199 / 2 = 0.410853
    assert c.gain == pytest.approx(0.3)
    assert c.gain_ci_low == pytest.approx(0.3 - 0.410853, abs=1e-6)
    assert c.gain_ci_high == pytest.approx(0.3 + 0.410853, abs=1e-6)
    # the control's own mean and interval, and its mean return -6.5
    _, lo, hi = mean_ci(control, bounds=(0.0, 1.0))
    assert (c.success, c.ci_low, c.ci_high) == (pytest.approx(0.4), pytest.approx(lo), pytest.approx(hi))
    assert c.ret == pytest.approx(-6.5)
    # not the unpaired difference of the K=1 and K=0 means (0.7 - 0.0)
    assert st[1].success - st[0].success == pytest.approx(0.7)
    d = st[1].to_dict()
    assert d["paired_gain"] == pytest.approx(0.3) and d["control_success"] == pytest.approx(0.4)
    assert d["paired_gain_ci_low"] == pytest.approx(0.3 - 0.410853, abs=1e-6) and d["n_control_units"] == 4
    # a gain interval is clipped to [-1, 1]
    wide = [
        UnitResult(0, i, 1, a, 0.0, 1, None, c_, 0.0) for i, (a, c_) in enumerate([(1.0, 0.0), (0.0, 1.0)])
    ]
    cw = aggregate("w", wide).per_k[1].control
    assert cw is not None and cw.gain == 0.0 and (cw.gain_ci_low, cw.gain_ci_high) == (-1.0, 1.0)
    # the text table has a paired-gain row under the method
    table = EvalResult("test", (0, 1), 1, (0,), 4, {"m": aggregate("m", units)}).table()
    assert "paired gain" in table and "+0.30 [-0.11,+0.71]" in table


def test_non_adapting_methods_and_control_off_report_no_control(tmp_path: Path) -> None:
    fixed = AdapterMethod("fixed", lambda _s: ScriptedAdapter(uses_shots=False), ToyEnv)
    scripted = AdapterMethod("scripted", lambda _s: ScriptedAdapter(), ToyEnv)
    res = run_methods(
        [fixed], ToyTasks(), shots=(0, 1, 3), episodes=2, seeds=(0,), num_tasks=2, progress=False
    )
    off = run_methods(
        [scripted],
        ToyTasks(),
        shots=(0, 1),
        episodes=2,
        seeds=(0,),
        num_tasks=2,
        progress=False,
        control=False,
    )
    for r in (res["fixed"], off["scripted"]):
        assert all(u.control_success is None and u.control_ret is None for u in r.units)
        assert all(s.control is None for s in r.per_k.values())
        assert not any("control_success" in u.to_dict() for u in r.units)
        assert not any("paired_gain" in s.to_dict() for s in r.per_k.values())
    saved = json.loads(
        EvalResult("test", (0, 1, 3), 2, (0,), 2, dict(res)).save(tmp_path / EVAL_FILE).read_text()
    )
    for key in ("control_success", "control_return"):
        assert all(key not in u for u in saved["methods"]["fixed"]["units"])
    assert all("paired_gain" not in cell for cell in saved["methods"]["fixed"]["K"].values())
    assert "paired gain" not in EvalResult("test", (0, 1, 3), 2, (0,), 2, dict(res)).table()


def test_unit_results_round_trip_and_old_files_without_the_control_load() -> None:
    old = {
        "seed": 1,
        "task_index": 2,
        "k": 3,
        "success": 0.5,
        "return": -4.0,
        "target_transitions": 150,
        "task": {"gain": 1.0},
    }
    u = UnitResult.from_dict(old)
    assert (u.control_success, u.control_ret) == (None, None) and u.to_dict() == old
    new = UnitResult(1, 2, 3, 0.5, -4.0, 150, {"gain": 1.0}, 0.25, -6.0)
    d = json.loads(json.dumps(new.to_dict()))
    assert d["control_success"] == 0.25 and d["control_return"] == -6.0
    assert UnitResult.from_dict(d) == new
    # a cell file of the K-shot comparison written before the control: its table has no control keys
    from robot_meta.meta.eval import kshot_table

    rows = kshot_table.methods_table({"meta-dqn": {0: [UnitResult.from_dict(old)]}}, (0,))
    assert set(rows["meta-dqn"]["K"]["3"]) == {
        "success",
        "ci_low",
        "ci_high",
        "return",
        "target_transitions",
        "n_units",
    }
    rows = kshot_table.methods_table(
        {"meta-dqn": {0: [new, UnitResult(1, 3, 3, 1.0, -2.0, 150, None, 0.5, -3.0)]}}, (0,)
    )
    assert rows["meta-dqn"]["K"]["3"]["paired_gain"] == pytest.approx(0.375)


# -- trained toy runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["meta-dqn", "reptile", "context"])
def test_evaluate_trained_toy_run_writes_json_and_plot(algo: str, tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config(algo, meta_iterations=6), signed=algo != "reptile")
    trainer.train()
    kw: dict[str, Any] = dict(
        shots=(0, 1, 2),
        episodes=2,
        seeds=(0, 1),
        num_tasks=2,
        tasks=ToyTasks(),
        env_factory=ToyEnv,
        progress=False,
    )
    res = evaluate(trainer, "test", out=tmp_path, **kw)
    expected = {"meta-dqn": ["meta-dqn"], "reptile": ["reptile", "reptile-head"], "context": ["context"]}[
        algo
    ]
    assert list(res.methods) == expected
    data = json.loads((tmp_path / EVAL_FILE).read_text())
    assert data["split"] == "test" and data["seeds"] == [0, 1] and data["shots"] == [0, 1, 2]
    for name in expected:
        per_k = data["methods"][name]["K"]
        assert set(per_k) == {"0", "1", "2"}
        for k, cell in per_k.items():
            units = [u for u in data["methods"][name]["units"] if u["k"] == int(k)]
            assert len(units) == 4 and cell["n_units"] == 4
            assert cell["success"] == pytest.approx(np.mean([u["success"] for u in units]))
            assert cell["return"] == pytest.approx(np.mean([u["return"] for u in units]))
            assert cell["ci_low"] <= cell["success"] <= cell["ci_high"]
        assert per_k["0"]["target_transitions"] == 0 < per_k["1"]["target_transitions"]
        assert per_k["1"]["target_transitions"] < per_k["2"]["target_transitions"] <= 40
        # the paired control (on by default) at K > 0 only; its gain is the mean of the unit differences
        assert "paired_gain" not in per_k["0"] and data["control"] is True
        for k in ("1", "2"):
            units = [u for u in data["methods"][name]["units"] if u["k"] == int(k)]
            diffs = [u["success"] - u["control_success"] for u in units]
            assert (
                per_k[k]["paired_gain"] == pytest.approx(np.mean(diffs)) and per_k[k]["n_control_units"] == 4
            )
            assert per_k[k]["control_success"] == pytest.approx(
                np.mean([u["control_success"] for u in units])
            )
    # with the control off, the adapted numbers (and so the shots and the streams behind them) are bitwise the same
    off = evaluate(trainer, "test", control=False, **kw)  # a trainer in memory without out: writes nothing
    for name in expected:
        on_rows = [(u.k, u.success, u.ret, u.target_transitions) for u in res.methods[name].units]
        assert on_rows == [(u.k, u.success, u.ret, u.target_transitions) for u in off.methods[name].units]
        assert all(u.control_success is None for u in off.methods[name].units)
    png = (tmp_path / PLOT_FILE).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    # the JSON form (with the control keys) plots too, as benchmarks/kshot.py does
    out = plot_success({n: m["K"] for n, m in data["methods"].items()}, tmp_path / "from_json.png")
    assert out.stat().st_size > 5_000


@pytest.mark.parametrize("algo", ["meta-dqn", "reptile", "context"])
def test_act_unadapted_is_the_policy_before_any_shot(algo: str, tmp_path: Path) -> None:
    """Every adapter of a trained run, and its export under the runtime: after a shot and adapt(),
    `act_unadapted` still acts as the K=0 policy, changes nothing and draws nothing."""
    from robot_meta.export import ExportConfig, export_run
    from robot_meta.meta import load_run
    from robot_meta.meta.eval import ExportAdapter, methods_for_run
    from robot_meta.meta.rollout import run_episode
    from robot_meta.runtime import AdaptivePolicy

    trainer = toy_trainer(toy_config(algo, meta_iterations=6), signed=algo != "reptile")
    trainer.train(tmp_path / "run", progress=False)
    export_run(tmp_path / "run", tmp_path / "export", config=ExportConfig(parity_samples=64))
    adapters = {m.name: m.adapter(0) for m in methods_for_run(load_run(tmp_path / "run"), ToyEnv)}
    adapters["export"] = ExportAdapter.load(tmp_path / "export")
    obs = np.random.default_rng(1).uniform(-1, 1, (200, 3)).astype(np.float32)
    task = ToyTask(-1.1)
    env = ToyEnv()
    for name, ad in adapters.items():
        ad.begin(task, np.random.default_rng(2))
        k0 = [ad.act(o, True) for o in obs]
        assert [ad.act_unadapted(o) for o in obs] == k0, name
        for seed in (3, 4):
            run_episode(env, task, seed, lambda o, ad=ad: ad.act(o, False), ad.observe)  # type: ignore[misc]
            ad.adapt()
        stream = ad.rng.bit_generator.state  # type: ignore[attr-defined]
        assert [ad.act_unadapted(o) for o in obs] == k0, name
        assert ad.rng.bit_generator.state == stream, name  # type: ignore[attr-defined]
    # the runtime's meta-trained Q-values are those of a fresh load, bitwise; the adapted ones moved
    fresh = AdaptivePolicy.load(tmp_path / "export")
    policy = adapters["export"].policy  # type: ignore[attr-defined]
    assert policy.adaptations > 0
    for o in obs[:20]:
        np.testing.assert_array_equal(policy.meta_q_values(o), fresh.q_values(o))
    assert any(not np.array_equal(policy.q_values(o), fresh.q_values(o)) for o in obs[:20])
    # the export under the protocol: the control is reported and leaves the adapted numbers alone
    kw: dict[str, Any] = dict(
        shots=(0, 1, 2),
        episodes=2,
        seeds=(0,),
        num_tasks=2,
        tasks=ToyTasks(),
        env_factory=ToyEnv,
        progress=False,
    )
    on = evaluate(tmp_path / "export", out=tmp_path / "on", plot=False, **kw)
    off = evaluate(tmp_path / "export", out=tmp_path / "off", plot=False, control=False, **kw)
    (m_on,) = on.methods.values()
    (m_off,) = off.methods.values()
    assert [(u.success, u.ret) for u in m_on.units] == [(u.success, u.ret) for u in m_off.units]
    assert [u.control_success is not None for u in m_on.units] == [u.k > 0 for u in m_on.units]
    assert m_on.per_k[2].control is not None and m_off.per_k[2].control is None


def test_reptile_head_and_full_adaptation_differ() -> None:
    trainer = toy_trainer(toy_config("reptile", meta_iterations=8), signed=False)
    trainer.train()
    res = evaluate(
        trainer,
        "test",
        (0, 2),
        2,
        (0,),
        num_tasks=3,
        tasks=ToyTasks(signed=False),
        env_factory=ToyEnv,
        progress=False,
    )
    full, head = res.methods["reptile"], res.methods["reptile-head"]
    # the same un-adapted policy at K=0, on the same units
    assert [u.ret for u in full.units if u.k == 0] == [u.ret for u in head.units if u.k == 0]
    # different adaptation rules give different adapted policies
    assert [u.ret for u in full.units if u.k == 2] != [u.ret for u in head.units if u.k == 2]


# -- bad arguments -----------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors(tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config("context", meta_iterations=1))
    kw: dict[str, Any] = dict(tasks=ToyTasks(), env_factory=ToyEnv, progress=False)
    with pytest.raises(ValueError, match="shots is empty"):
        evaluate(trainer, "test", shots=(), **kw)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        evaluate(trainer, "val", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shots must be >= 0"):
        evaluate(trainer, "test", shots=(-1, 2), **kw)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(trainer, "test", episodes=0, **kw)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate(tmp_path / "nope", "test")


# -- the K-shot comparison's target arithmetic (robot_meta.meta.eval.kshot) ------------------------------------------------------------------


def test_kshot_benchmark_targets_from_a_table() -> None:
    from robot_meta.meta.eval import kshot_table as kshot

    def row(pairs: dict[int, tuple[float, int]]) -> dict[str, Any]:
        return {"K": {str(k): {"success": s, "target_transitions": n} for k, (s, n) in pairs.items()}}

    methods = {
        "meta-dqn": row({0: (0.3, 0), 5: (0.62, 200)}),
        "context": row({0: (0.3, 0), 5: (0.70, 240)}),
        "domain-rand": row({0: (0.3, 0), 5: (0.3, 0)}),
        "finetune": row({0: (0.3, 0), 5: (0.5, 250)}),
        "oracle": row({0: (0.8, 0), 5: (0.8, 0)}),
        "scratch": row({0: (0.0, 0), 5: (0.1, 250)}),
        "scratch-10x": row({0: (0.0, 0), 5: (0.4, 2_500)}),
        "scratch-100x": row({0: (0.0, 0), 5: (0.75, 25_000)}),
    }
    t = kshot.targets(methods, (0, 5))
    assert t["oracle_minus_domain_rand"] == pytest.approx(0.5) and t["oracle_gap_met"]
    assert t["best_meta"] == "context" and t["recovered_fraction"] == pytest.approx((0.7 - 0.3) / 0.5)
    assert t["recovery_met"] and t["beats_finetune"]
    # scratch first reaches 70 % at 25,000 transitions: 25,000 / 240 = 104x
    assert t["scratch_transitions_to_match"] == 25_000 and not t["scratch_ratio_is_lower_bound"]
    assert t["scratch_ratio"] == pytest.approx(25_000 / 240) and t["sample_efficiency_met"]
    methods["scratch-100x"] = row({0: (0.0, 0), 5: (0.6, 25_000)})
    t = kshot.targets(methods, (0, 5))
    assert t["scratch_ratio_is_lower_bound"] and t["scratch_ratio"] == pytest.approx(25_000 / 240)


def test_kshot_benchmark_targets_pair_methods_on_common_seeds() -> None:
    """A target never compares one method's seeds with another's: scratch on seed 0 only is matched
    against the meta methods on seed 0 only, while the oracle gap uses both seeds."""
    from robot_meta.meta.eval import kshot_table as kshot
    from robot_meta.meta.eval.stats import UnitResult

    def units(per_seed: dict[int, dict[int, float]], mult: int = 1) -> dict[int, list[UnitResult]]:
        return {
            seed: [
                UnitResult(seed, i, k, succ, -1.0, mult * k * 50)
                for k, succ in by_k.items()
                for i in range(2)
            ]
            for seed, by_k in per_seed.items()
        }

    flat = {0: {0: 0.3, 5: 0.3}, 1: {0: 0.3, 5: 0.3}}
    table = {
        "oracle": units({0: {0: 0.5, 5: 0.5}, 1: {0: 0.9, 5: 0.9}}, 0),
        "domain-rand": units(flat, 0),
        "finetune": units(flat),
        "meta-dqn": units({0: {0: 0.3, 5: 0.4}, 1: {0: 0.3, 5: 0.8}}),
        "reptile": units(flat),
        "reptile-head": units(flat),
        "context": units(flat),
        "scratch": units({0: {0: 0.0, 5: 0.0}}),
        "scratch-10x": units({0: {0: 0.0, 5: 0.2}}, 10),
        "scratch-100x": units({0: {0: 0.0, 5: 0.45}}, 100),
    }
    t = kshot.paired_targets(table, (0, 1, 2), (0, 5))
    assert t["seeds_oracle_gap"] == [0, 1] and t["oracle_minus_domain_rand"] == pytest.approx(0.4)
    assert t["seeds_recovery"] == [0, 1] and t["best_meta"] == "meta-dqn"
    assert t["best_meta_success"] == pytest.approx(0.6)
    assert t["recovered_fraction"] == pytest.approx((0.6 - 0.3) / 0.4)
    # seed 0 alone: meta-dqn 40 % at 250 transitions; scratch-100x reaches 45 % at 25,000 -> 100x
    assert t["seeds_sample_efficiency"] == [0] and t["efficiency_meta_success"] == pytest.approx(0.4)
    assert t["scratch_ratio"] == pytest.approx(100.0) and not t["scratch_ratio_is_lower_bound"]
    rows = kshot.methods_table(table, (0, 1, 2))
    assert rows["scratch"]["seeds"] == [0] and rows["oracle"]["seeds"] == [0, 1]


def test_kshot_benchmark_runs_families_in_worker_processes() -> None:
    """`--jobs`: one worker process per family with the caller's other arguments; a failing worker
    is reported by family and exit code (here real processes of the script, in --dry-run mode)."""
    from robot_meta.meta.eval.kshot import compute_in_parallel

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "kshot.py"
    ok = ["--budget", "small", "--families", "push,slide", "--jobs=2", "--cells", "meta-dqn", "--dry-run"]
    assert compute_in_parallel(script, ["push", "slide"], ok, jobs=2) == []
    bad = ["--budget", "small", "--cells", "no-such-cell", "--jobs", "1"]
    assert compute_in_parallel(script, ["push", "slide"], bad, jobs=1) == ["push (exit 2)", "slide (exit 2)"]


def test_kshot_markdown_shows_the_paired_gain_column(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/kshot.py's table: a `paired gain K=k` column where cells carry the control, `-` for the others."""
    import importlib

    from robot_meta.meta.eval import kshot_table

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    for name in ("kshot", "common"):  # the scripts' top-level modules: gone again after the test
        monkeypatch.delitem(sys.modules, name, raising=False)
    bench = importlib.import_module("kshot")
    for name in ("kshot", "common"):
        monkeypatch.setitem(sys.modules, name, sys.modules[name])
    pairs = [(0.5, 0.2), (0.7, 0.6)]  # adapted, control at K=1: differences 0.3, 0.1 -> gain +0.20
    units = {
        "meta-dqn": {
            0: [UnitResult(0, i, 0, 0.4, -3.0, 0) for i in range(2)]
            + [UnitResult(0, i, 1, a, -1.0, 50, None, c, -2.0) for i, (a, c) in enumerate(pairs)]
        },
        "domain-rand": {0: [UnitResult(0, i, k, 0.3, -1.0, 0) for i in range(2) for k in (0, 1)]},
    }
    res = {
        "shots": [0, 1], "seeds": [0], "family": "push", "split": "test", "num_tasks": 2, "episodes": 1,
        "budget": "small", "methods": kshot_table.methods_table(units, (0,)), "targets": {}, "cell_seconds": 0.0,
        "missing_cells": [],
    }  # fmt: skip
    rows = {
        line.split(" | ")[0]: line
        for line in bench.family_markdown(res).splitlines()
        if line.startswith("| ")
    }
    assert "| paired gain K=1 |" in rows["| method"] and "paired gain K=0" not in rows["| method"]
    assert "| +0.20 [-1.00, +1.00] |" in rows["| meta-dqn"]  # t_{0.975,1} = 12.7: the interval is clipped
    assert rows["| domain-rand"].split(" | ")[4] == "-"
    # cells of older code (no control anywhere): no such column
    for m in res["methods"].values():
        for cell in m["K"].values():
            for key in [k for k in cell if "control" in k or "paired" in k]:
                del cell[key]
    assert "paired gain" not in bench.family_markdown(res)
