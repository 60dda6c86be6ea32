"""`TaskParams` validation and serialisation, `TaskDistribution` presets and splits."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_meta.envs import OBJECT_SHAPES, PARAM_LIMITS, PRIVILEGED_DIM, SPLITS, TaskDistribution, TaskParams

PRESETS = TaskDistribution.preset_names()

# -- TaskParams validation ---------------------------------------------------------------------------

#: (field named in the message, constructor kwargs, text the message must contain besides the field)
INVALID: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("object_mass", {"object_mass": 0.0}, ("0.0", "0.01", "10.0")),
    ("object_mass", {"object_mass": -1.0}, ("-1.0", "0.01", "10.0")),
    ("object_mass", {"object_mass": True}, ("True",)),
    ("object_mass", {"object_mass": "1.0"}, ("'1.0'",)),
    ("object_shape", {"object_shape": "torus"}, ("torus", "cube", "capsule")),
    ("lateral_friction", {"lateral_friction": math.nan}, ("nan", "0.005", "2.0")),
    ("lateral_friction", {"lateral_friction": False}, ("False",)),
    ("object_size", {"object_size": math.inf}, ("inf", "0.02", "0.12")),
    ("object_size", {"object_size": 0.5}, ("0.5", "0.02", "0.12")),
    ("terrain_slope_deg", {"terrain": "tilted", "terrain_slope_deg": 45.0}, ("45.0", "-20.0", "20.0")),
    ("terrain_slope_deg", {"terrain": "tilted", "terrain_slope_deg": -25.0}, ("-25.0", "-20.0", "20.0")),
    ("terrain_slope_deg", {"terrain": "flat", "terrain_slope_deg": 5.0}, ("5.0", "tilted")),
    ("terrain_roughness", {"terrain": "flat", "terrain_roughness": 0.005}, ("0.005", "bumpy")),
    (
        "terrain_roughness",
        {"terrain": "tilted", "terrain_slope_deg": 3.0, "terrain_roughness": 0.005},
        ("bumpy",),
    ),
    ("terrain_roughness", {"terrain": "bumpy", "terrain_roughness": 0.0}, ("0.0", "bumpy")),
    ("terrain_roughness", {"terrain": "bumpy", "terrain_roughness": 0.05}, ("0.05", "0.02")),
    ("terrain", {"terrain": "sand"}, ("sand", "flat", "tilted", "bumpy")),
]


@pytest.mark.parametrize(("field", "kwargs", "mentions"), INVALID, ids=[f"{f}-{kw}" for f, kw, _ in INVALID])
def test_invalid_task_params_raise_value_error_naming_the_field(
    field: str, kwargs: dict[str, Any], mentions: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match=field) as excinfo:
        TaskParams(**kwargs)
    message = str(excinfo.value)
    for text in mentions:
        assert text in message, f"{message!r} should mention {text!r}"


def test_from_dict_refuses_unknown_keys_and_names_them() -> None:
    data = {**TaskParams().to_dict(), "colour": "red"}
    with pytest.raises(ValueError, match="colour"):
        TaskParams.from_dict(data)


def test_from_dict_validates_values() -> None:
    with pytest.raises(ValueError, match="object_mass"):
        TaskParams.from_dict({"object_mass": -2.0})


def test_task_params_are_frozen() -> None:
    p = TaskParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.object_mass = 1.0  # type: ignore[misc]


def test_replace_validates_again() -> None:
    with pytest.raises(ValueError, match="lateral_friction"):
        TaskParams().replace(lateral_friction=-0.1)


@pytest.mark.parametrize(
    "params",
    [
        TaskParams(),
        TaskParams(object_mass=3.25, object_shape="capsule", object_size=0.07, lateral_friction=0.031),
        TaskParams(object_shape="sphere", terrain="tilted", terrain_slope_deg=-7.5),
        TaskParams(object_shape="cuboid", terrain="bumpy", terrain_roughness=0.0085),
    ],
    ids=["default", "capsule", "tilted", "bumpy"],
)
def test_to_dict_from_dict_round_trips_through_json(params: TaskParams) -> None:
    text = json.dumps(params.to_dict())
    back = TaskParams.from_dict(json.loads(text))
    assert back == params
    assert back.to_dict() == params.to_dict()


def test_to_vector_layout() -> None:
    p = TaskParams(object_mass=2.0, object_shape="cylinder", object_size=0.05, lateral_friction=0.3)
    vec = p.to_vector()
    assert vec.shape == (PRIVILEGED_DIM,)
    assert vec.dtype == np.float32
    assert vec[0] == pytest.approx(math.log(2.0))
    assert vec[2] == pytest.approx(0.3)
    assert vec[5 + OBJECT_SHAPES.index("cylinder")] == 1.0
    assert vec[5 : 5 + len(OBJECT_SHAPES)].sum() == 1.0
    assert vec[5 + len(OBJECT_SHAPES) :].sum() == 1.0


def _floats(name: str) -> st.SearchStrategy[float]:
    lo, hi = PARAM_LIMITS[name]
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


@st.composite
def valid_params(draw: st.DrawFn) -> TaskParams:
    terrain = draw(st.sampled_from(["flat", "tilted", "bumpy"]))
    slope = draw(_floats("terrain_slope_deg")) if terrain == "tilted" else 0.0
    rough = (
        draw(st.floats(min_value=1e-6, max_value=PARAM_LIMITS["terrain_roughness"][1]))
        if terrain == "bumpy"
        else 0.0
    )
    return TaskParams(
        object_mass=draw(_floats("object_mass")),
        object_shape=draw(st.sampled_from(OBJECT_SHAPES)),
        object_size=draw(_floats("object_size")),
        lateral_friction=draw(_floats("lateral_friction")),
        terrain=terrain,  # type: ignore[arg-type]
        terrain_slope_deg=slope,
        terrain_roughness=rough,
    )


@settings(max_examples=60, deadline=None)
@given(valid_params())
def test_any_valid_task_round_trips_and_encodes_finitely(params: TaskParams) -> None:
    assert TaskParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    assert params.replace() == params
    vec = params.to_vector()
    assert vec.shape == (PRIVILEGED_DIM,)
    assert np.isfinite(vec).all()


# -- TaskDistribution ------------------------------------------------------------------------------------


def test_preset_names_cover_every_family() -> None:
    assert {"reach", "push", "slide", "pick_place", "manipulation-all"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("split", SPLITS)
def test_samples_fall_in_their_own_split(name: str, split: str) -> None:
    dist = TaskDistribution.preset(name).split(split)  # type: ignore[arg-type]
    assert dist.active == split
    samples = dist.sample(300, np.random.default_rng(0))
    assert len(samples) == 300
    assert all(isinstance(p, TaskParams) for p in samples)
    outside = [p for p in samples if not dist.contains(p)]
    assert not outside, f"{name}:{split} sampled outside its own region: {outside[:3]}"


@pytest.mark.parametrize("name", PRESETS)
def test_interp_split_is_disjoint_from_train(name: str) -> None:
    train = TaskDistribution.preset(name)
    interp = train.split("interp")
    samples = interp.sample(500, np.random.default_rng(1))
    assert not [p for p in samples if train.contains(p)], "an interp task lies in the train region"
    for p in samples:
        assert not train.train.object_mass.contains(p.object_mass), (
            f"interp mass {p.object_mass} is a train mass"
        )
        assert not train.train.lateral_friction.contains(p.lateral_friction), (
            f"interp friction {p.lateral_friction} is a train friction"
        )
    assert not train.train.object_mass.overlaps(train.interp.object_mass)
    assert not train.train.lateral_friction.overlaps(train.interp.lateral_friction)


@pytest.mark.parametrize("name", PRESETS)
def test_interp_split_holds_out_a_shape_never_sampled_in_train(name: str) -> None:
    dist = TaskDistribution.preset(name)
    train_shapes = {p.object_shape for p in dist.sample(500, np.random.default_rng(2))}
    interp_shapes = {p.object_shape for p in dist.split("interp").sample(500, np.random.default_rng(3))}
    held_out = interp_shapes - train_shapes
    assert held_out, f"{name}: interp shapes {interp_shapes} are all seen in train {train_shapes}"
    assert not held_out & set(dist.train.object_shapes)


@pytest.mark.parametrize("name", PRESETS)
def test_test_split_draws_the_train_distribution(name: str) -> None:
    """`test` has the train ranges and shapes: every test task lies in the train region, and the
    two splits' samples have the same spread (the same shapes, and mass quantiles within 15 %)."""
    dist = TaskDistribution.preset(name)
    test = dist.split("test").sample(600, np.random.default_rng(11))
    train = dist.sample(600, np.random.default_rng(12))
    assert all(dist.contains(p) for p in test), "a test task lies outside the train region"
    assert {p.object_shape for p in test} == {p.object_shape for p in train} == set(dist.train.object_shapes)
    assert {p.terrain for p in test} == {p.terrain for p in train}
    for q in (0.25, 0.5, 0.75):
        mt = float(np.quantile([p.object_mass for p in test], q))
        mr = float(np.quantile([p.object_mass for p in train], q))
        assert abs(np.log(mt / mr)) < 0.15, f"{name}: test mass q{q} {mt:.3f} vs train {mr:.3f}"
    assert dist.test.contains(train[0]) and dist.test.to_dict() != dist.train.to_dict()


@pytest.mark.parametrize("name", PRESETS)
def test_test_tasks_never_coincide_with_train_pool_tasks(name: str) -> None:
    """A dedicated seed stream: test tasks drawn from *the same seeds* as the train pools (the
    trainer's ``[seed, 0]``, the evaluator's ``[seed, 0x5EED]``, plain ints) are all distinct from
    every train-pool task, down to each float."""
    dist = TaskDistribution.preset(name)
    seeds: list[object] = [*range(20), *([s, 0] for s in range(20)), *([s, 0x5EED] for s in range(20))]
    pools = [p for s in seeds for p in dist.sample(16, np.random.default_rng(s))]  # type: ignore[arg-type]
    tests = [p for s in seeds for p in dist.split("test").sample(16, np.random.default_rng(s))]  # type: ignore[arg-type]
    assert not set(pools) & set(tests), "a test task coincides with a train-pool task"
    pool_masses = {p.object_mass for p in pools}
    pool_frictions = {p.lateral_friction for p in pools}
    assert not [p for p in tests if p.object_mass in pool_masses or p.lateral_friction in pool_frictions]
    # and the stream is its own: a generator shared by both splits still gives distinct tasks
    shared = np.random.default_rng(5)
    a, b = dist.sample(8, shared), dist.split("test").sample(8, shared)
    assert not set(a) & set(b)


@pytest.mark.parametrize("name", PRESETS)
def test_env_reset_on_the_test_split_draws_other_tasks_than_train(name: str) -> None:
    """The env draws at reset through `TaskDistribution.space` with its own RNG: the test space's
    stream applies there too, so the same env seed gives different tasks on train and test."""
    dist = TaskDistribution.preset(name)
    train_tasks = [dist.space.sample_one(np.random.default_rng(s)) for s in range(30)]
    test_tasks = [dist.split("test").space.sample_one(np.random.default_rng(s)) for s in range(30)]
    assert not set(train_tasks) & set(test_tasks)
    assert all(dist.contains(p) for p in test_tasks)


@pytest.mark.parametrize("name", PRESETS)
def test_ood_lies_outside_the_train_hull(name: str) -> None:
    dist = TaskDistribution.preset(name)
    ood = dist.split("ood").sample(500, np.random.default_rng(4))
    for fname in ("object_mass", "lateral_friction"):
        lo = min(getattr(dist.train, fname).low, getattr(dist.interp, fname).low)
        hi = max(getattr(dist.train, fname).high, getattr(dist.interp, fname).high)
        inside = [getattr(p, fname) for p in ood if lo <= getattr(p, fname) <= hi]
        assert not inside, f"{name}: ood {fname} values {inside[:5]} lie inside the train hull [{lo}, {hi}]"
    assert not [p for p in ood if dist.split("interp").contains(p) or dist.contains(p)]


@pytest.mark.parametrize("name", PRESETS)
def test_sampling_is_reproducible_per_seed(name: str) -> None:
    dist = TaskDistribution.preset(name)
    a = dist.sample(50, np.random.default_rng(7))
    b = dist.sample(50, np.random.default_rng(7))
    c = dist.sample(50, 7)
    d = dist.sample(50, np.random.default_rng(8))
    assert a == b == c
    assert a != d


def test_split_shorthand_matches_split_method() -> None:
    assert TaskDistribution.preset("push:test") == TaskDistribution.preset("push").split("test")
    assert TaskDistribution.preset("push:interp") == TaskDistribution.preset("push").split("interp")


def test_legacy_distribution_documents_read_their_held_out_test_region_as_interp() -> None:
    """Manifests written before the split change have ``train``/``test``/``ood``, their ``test`` the
    held-out intervals: that region is read as ``interp`` (an active ``test`` too)."""
    dist = TaskDistribution.preset("slide")
    doc = dist.to_dict()
    legacy = {**{k: v for k, v in doc.items() if k != "interp"}, "test": doc["interp"], "active": "test"}
    back = TaskDistribution.from_dict(legacy)
    assert back == dist.split("interp")
    assert TaskDistribution.from_dict({**legacy, "active": "train"}) == dist


@pytest.mark.parametrize("n", [-1, 2.5, "3", True, None])
def test_sample_refuses_bad_n(n: Any) -> None:
    with pytest.raises(ValueError, match="n must be"):
        TaskDistribution.preset("push").sample(n, np.random.default_rng(0))


def test_sample_zero_is_empty() -> None:
    assert TaskDistribution.preset("push").sample(0, np.random.default_rng(0)) == []


def test_unknown_preset_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no-such-preset"):
        TaskDistribution.preset("no-such-preset")


@pytest.mark.parametrize("split", ["validation", "TRAIN", ""])
def test_unknown_split_raises_value_error(split: str) -> None:
    with pytest.raises(ValueError, match="split"):
        TaskDistribution.preset("push").split(split)  # type: ignore[arg-type]


def test_unknown_split_in_shorthand_raises_value_error() -> None:
    with pytest.raises(ValueError, match="split"):
        TaskDistribution.preset("push:validation")


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("split", SPLITS)
def test_distribution_round_trips_through_json(name: str, split: str) -> None:
    dist = TaskDistribution.preset(name).split(split)  # type: ignore[arg-type]
    back = TaskDistribution.from_dict(json.loads(json.dumps(dist.to_dict())))
    assert back == dist
    assert back.sample(20, 11) == dist.sample(20, 11)


@pytest.mark.parametrize("stream", [-1, 2**32, 1.5, True, "7"])
def test_bad_seed_streams_are_refused(stream: object) -> None:
    with pytest.raises(ValueError, match=r"TaskSpace\.stream=.* must be an int in \[0, 2\*\*32\)"):
        dataclasses.replace(TaskDistribution.preset("push").train, stream=stream)  # type: ignore[arg-type]


def test_a_train_space_on_the_test_stream_is_refused() -> None:
    from robot_meta.envs.params import TEST_STREAM

    dist = TaskDistribution.preset("push")
    with pytest.raises(ValueError, match="the train space uses the test seed stream"):
        dataclasses.replace(dist, train=dist.test)
    assert dist.test.stream == TEST_STREAM
