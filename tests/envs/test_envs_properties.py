"""Property-based tests (hypothesis) of `TaskParams` and the task distributions.

Valid draws - anywhere inside `PARAM_LIMITS`, not only inside the presets - build a stable
simulation: after ~1 s of settling the state is finite and the object is not below the support
surface (unless it slid off the table's edge, which a steep, slippery tilt may legitimately do).
Invalid values are refused on construction with a `ValueError` naming the field.

One Push env is shared by every simulation example (a module fixture): a task change costs a few
`changeDynamics` calls, and each example settles 25 control steps (1 s of simulated time).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from envs_helpers import PICK, PUSH, REACH, SLIDE, action_index, make_env, raw
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from robot_meta.envs import TaskDistribution, TaskParams
from robot_meta.envs.params import OBJECT_SHAPES, PARAM_LIMITS, SPLITS, TERRAINS
from robot_meta.envs.scene import SURFACE_CENTER_X, SURFACE_HALF

SETTLE_STEPS = 25  # 1 s at the 25 Hz control rate
#: How far the object's centre may sit below the surface under it (interpenetration slack), m.
SINK_TOLERANCE = 0.003
SIM = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FAST = settings(max_examples=200, deadline=None)


def _in_limits(name: str) -> st.SearchStrategy[float]:
    lo, hi = PARAM_LIMITS[name]
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def valid_params(draw: st.DrawFn) -> TaskParams:
    """Any valid `TaskParams`, edges of the physical limits included."""
    terrain = draw(st.sampled_from(TERRAINS))
    slope = draw(_in_limits("terrain_slope_deg")) if terrain == "tilted" else 0.0
    rough = draw(st.floats(1e-4, PARAM_LIMITS["terrain_roughness"][1])) if terrain == "bumpy" else 0.0
    return TaskParams(
        object_mass=draw(_in_limits("object_mass")),
        object_shape=draw(st.sampled_from(OBJECT_SHAPES)),
        object_size=draw(_in_limits("object_size")),
        lateral_friction=draw(_in_limits("lateral_friction")),
        terrain=terrain,
        terrain_slope_deg=slope,
        terrain_roughness=rough,
    )


@st.composite
def preset_draws(draw: st.DrawFn) -> tuple[str, str, TaskParams]:
    """A task drawn by `TaskDistribution.sample` from any preset and split."""
    name = draw(st.sampled_from(TaskDistribution.preset_names()))
    split = draw(st.sampled_from(SPLITS))
    seed = draw(st.integers(0, 2**32 - 1))
    task = TaskDistribution.preset(name).split(split).sample(1, np.random.default_rng(seed))[0]
    return name, split, task


@pytest.fixture(scope="module")
def push_env() -> Iterator[gym.Env[np.ndarray, Any]]:
    env = gym.make(PUSH)
    env.reset(seed=0)
    yield env
    env.close()


def _settle_and_check(env: gym.Env[np.ndarray, Any], task: TaskParams) -> None:
    u = raw(env)
    obs, info = env.reset(options={"task": task})
    assert info["task"] == task and np.isfinite(obs).all(), f"non-finite reset observation for {task}"
    stay = action_index(env, "stay")
    for _ in range(SETTLE_STEPS):
        obs, _, terminated, _, _ = env.step(stay)
        assert np.isfinite(obs).all(), f"non-finite state while settling {task}"
        if terminated:
            break
    pos, orn, lin, ang = u.scene.object_state()
    assert np.isfinite(np.concatenate([pos, orn, lin, ang])).all(), f"non-finite object state for {task}"
    x, y, z = pos
    on_table = abs(x - SURFACE_CENTER_X) < SURFACE_HALF[0] - 0.01 and abs(y) < SURFACE_HALF[1] - 0.01
    if on_table:
        floor = u.scene.surface_height(x, y)
        assert z > floor - SINK_TOLERANCE, (
            f"object centre {z:.4f} m is below the surface ({floor:.4f} m) after settling {task}"
        )
        assert np.linalg.norm(lin) < 5.0, f"object still flying at {np.linalg.norm(lin):.2f} m/s: {task}"
    else:  # slid off the edge: it may fall, but never explode
        assert np.linalg.norm(lin) < 20.0 and z > -10.0, f"object left the table violently: {pos}, {task}"


#: Found by this test: a steep tilt towards the robot pushed the surface through the arm's mount
#: links, and the solver threw the object off at up to 360 m/s (1 reset in 9 before the fix).
STEEP_TOWARDS_ROBOT = TaskParams(
    object_mass=0.05594788051463019, object_shape="cuboid", object_size=0.05594788051463019,
    lateral_friction=0.8876343431355703, terrain="tilted", terrain_slope_deg=-13.908334315211029,
)  # fmt: skip


@SIM
@example(task=STEEP_TOWARDS_ROBOT)
@given(task=valid_params())
def test_every_valid_task_builds_a_stable_simulation(
    push_env: gym.Env[np.ndarray, Any], task: TaskParams
) -> None:
    _settle_and_check(push_env, task)


@pytest.mark.parametrize("env_id", [SLIDE, PICK, REACH])
def test_every_valid_task_is_stable_in_the_other_families(env_id: str) -> None:
    """The same property on the other task families (fewer examples each; Push gets the most)."""
    with make_env(env_id) as env:
        env.reset(seed=0)

        @settings(max_examples=25, deadline=None)
        @given(task=valid_params())
        def check(task: TaskParams) -> None:
            _settle_and_check(env, task)

        check()


@pytest.mark.parametrize("slope", [-20.0, -13.9, 20.0])
def test_steep_tilts_never_touch_the_arm_mount(push_env: gym.Env[np.ndarray, Any], slope: float) -> None:
    u = raw(push_env)
    task = STEEP_TOWARDS_ROBOT.replace(terrain_slope_deg=slope)
    for _ in range(20):  # 1 in 9 resets exploded before the fix
        _settle_and_check(push_env, task)
        assert not u.sim.getContactPoints(bodyA=u.robot.body, bodyB=u.scene.surface, linkIndexA=0)
        assert not u.sim.getContactPoints(bodyA=u.robot.body, bodyB=u.scene.surface, linkIndexA=1)


@SIM
@given(draw=preset_draws())
def test_every_preset_draw_is_valid_in_its_split_and_stable(
    push_env: gym.Env[np.ndarray, Any], draw: tuple[str, str, TaskParams]
) -> None:
    name, split, task = draw
    assert TaskDistribution.preset(name).split(split).contains(task)  # type: ignore[arg-type]
    _settle_and_check(push_env, task)


@FAST
@given(task=valid_params())
def test_to_dict_round_trips_through_json(task: TaskParams) -> None:
    back = TaskParams.from_dict(json.loads(json.dumps(task.to_dict())))
    assert back == task
    vec = task.to_vector()
    assert vec.dtype == np.float32 and np.isfinite(vec).all()


@FAST
@given(name=st.sampled_from(TaskDistribution.preset_names()), seed=st.integers(0, 2**32 - 1))
def test_splits_are_disjoint_on_mass_and_friction(name: str, seed: int) -> None:
    dist = TaskDistribution.preset(name)
    rng = np.random.default_rng(seed)
    for task in dist.split("interp").sample(5, rng):
        # An interp task never falls inside the train region (held-out intervals or shape).
        assert not dist.split("train").contains(task)
    for task in dist.split("ood").sample(5, rng):
        assert not dist.split("train").contains(task)
        assert not dist.split("interp").contains(task)
    # A test task lies in the train region but is never the train task drawn from the same seed.
    train_tasks = dist.sample(5, np.random.default_rng(seed))
    test_tasks = dist.split("test").sample(5, np.random.default_rng(seed))
    assert all(dist.contains(t) for t in test_tasks)
    assert not set(train_tasks) & set(test_tasks)


# -- invalid input -------------------------------------------------------------------------------------
def _outside(name: str) -> st.SearchStrategy[float]:
    lo, hi = PARAM_LIMITS[name]
    width = hi - lo
    return st.one_of(
        st.floats(max_value=lo, exclude_max=True, min_value=lo - 1e6 * max(width, 1.0)),
        st.floats(min_value=hi, exclude_min=True, max_value=hi + 1e6 * max(width, 1.0)),
        st.sampled_from([math.nan, math.inf, -math.inf]),
    )


@st.composite
def invalid_field(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(field the error must name, kwargs of an invalid TaskParams)."""
    kind = draw(st.sampled_from(["range", "type", "shape", "terrain", "slope", "rough", "bumpy0"]))
    if kind == "range":
        name = draw(st.sampled_from(sorted(PARAM_LIMITS)))
        kwargs: dict[str, Any] = {name: draw(_outside(name))}
        if name == "terrain_slope_deg":
            kwargs["terrain"] = "tilted"
        if name == "terrain_roughness":
            kwargs["terrain"] = "bumpy"
        return name, kwargs
    if kind == "type":
        name = draw(st.sampled_from(sorted(PARAM_LIMITS)))
        value = draw(st.sampled_from(["0.5", None, True, [0.5], {"v": 1}, b"1", complex(1, 0)]))
        return name, {name: value}
    if kind == "shape":
        bad = draw(st.text(min_size=0, max_size=12).filter(lambda s: s not in OBJECT_SHAPES))
        return "object_shape", {"object_shape": bad}
    if kind == "terrain":
        bad = draw(st.text(min_size=0, max_size=12).filter(lambda s: s not in TERRAINS))
        return "terrain", {"terrain": bad}
    if kind == "slope":  # a slope on a terrain that is not tilted
        slope = draw(_in_limits("terrain_slope_deg").filter(lambda v: v != 0.0))
        terrain = draw(st.sampled_from(["flat", "bumpy"]))
        rough = 0.005 if terrain == "bumpy" else 0.0
        return "terrain_slope_deg", {
            "terrain": terrain,
            "terrain_slope_deg": slope,
            "terrain_roughness": rough,
        }
    if kind == "rough":  # roughness on a terrain that is not bumpy
        rough = draw(st.floats(1e-4, PARAM_LIMITS["terrain_roughness"][1]))
        return "terrain_roughness", {
            "terrain": draw(st.sampled_from(["flat", "tilted"])),
            "terrain_roughness": rough,
        }
    return "terrain_roughness", {"terrain": "bumpy", "terrain_roughness": 0.0}


@FAST
@given(case=invalid_field())
def test_every_invalid_task_is_refused_with_a_message_naming_the_field(
    case: tuple[str, dict[str, Any]],
) -> None:
    name, kwargs = case
    with pytest.raises(ValueError, match=rf"TaskParams\.{name}") as err:
        TaskParams(**kwargs)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    assert any(w in message for w in ("allowed", "must be", "needs")), message
    with pytest.raises(ValueError, match=rf"TaskParams\.{name}"):
        TaskParams.from_dict({**TaskParams().to_dict(), **kwargs})


@FAST
@given(key=st.text(min_size=1, max_size=20).filter(lambda k: k not in TaskParams().to_dict()))
def test_unknown_fields_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="unknown field"):
        TaskParams.from_dict({key: 1.0})


@FAST
@given(
    name=st.text(max_size=20).filter(lambda n: n.partition(":")[0] not in TaskDistribution.preset_names()),
    split=st.text(max_size=10).filter(lambda s: s not in SPLITS),
    n=st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True), st.just(True), st.just("3")),
)
def test_unknown_preset_split_or_count_is_refused(name: str, split: str, n: Any) -> None:
    with pytest.raises(ValueError, match="unknown task distribution preset"):
        TaskDistribution.preset(name)
    with pytest.raises(ValueError, match="unknown split"):
        TaskDistribution.preset("push").split(split)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        TaskDistribution.preset("push").sample(n, 0)


@st.composite
def invalid_region(draw: st.DrawFn) -> tuple[str, tuple[tuple[float, float], ...], bool]:
    """(expected message, intervals, log) of a `Region` that must be refused."""
    kind = draw(st.sampled_from(["empty", "nonfinite", "reversed", "log"]))
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    if kind == "empty":
        return "at least one interval", (), False
    if kind == "nonfinite":
        bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        pair = (bad, 1.0) if draw(st.booleans()) else (0.0, bad)
        return "must be finite", (pair,), False
    if kind == "reversed":
        lo = draw(finite)
        hi = draw(st.floats(max_value=lo, exclude_max=True, min_value=lo - 1e6, allow_nan=False))
        return "low <= high", ((lo, hi),), False
    lo = draw(st.floats(-1e6, 0.0, allow_nan=False))
    return "must be positive for log sampling", ((lo, lo + draw(st.floats(0.0, 10.0))),), True


@FAST
@given(case=invalid_region())
def test_invalid_distribution_regions_are_refused(
    case: tuple[str, tuple[tuple[float, float], ...], bool],
) -> None:
    from robot_meta.envs.params import Region

    expected, intervals, log = case
    with pytest.raises(ValueError, match=re.escape(expected)):
        Region(intervals, log=log)


@FAST
@given(
    shapes=st.lists(st.text(max_size=8), max_size=3).filter(
        lambda s: not s or any(x not in OBJECT_SHAPES for x in s)
    ),
    name=st.sampled_from(TaskDistribution.preset_names()),
)
def test_invalid_task_spaces_and_tampered_distributions_are_refused(shapes: list[Any], name: str) -> None:
    import dataclasses

    from robot_meta.envs.params import TaskSpace

    dist = TaskDistribution.preset(name)
    with pytest.raises(ValueError, match=r"TaskSpace\.object_shapes=.* must be a non-empty subset"):
        dataclasses.replace(dist.train, object_shapes=tuple(shapes))
    doc = dist.to_dict()
    doc["interp"]["object_mass"] = doc["train"]["object_mass"]  # an interp split that leaks train tasks
    with pytest.raises(ValueError, match=r"interp object_mass .* overlaps train"):
        TaskDistribution.from_dict(doc)
    assert TaskSpace.from_dict(dist.train.to_dict()) == dist.train
