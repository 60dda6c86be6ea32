"""Hidden physical task parameters and the distributions they are drawn from.

`TaskParams` is one task: the object (mass, shape, size), the contact (lateral friction) and the
support surface (terrain). `TaskDistribution` is a preset region of that space with four splits, the
standard meta-RL protocol (Meta-World ML1, PEARL, MAML-RL) plus two generalisation tiers:

- ``train``: the task pools of meta-training;
- ``test`` (the headline): *unseen task instances from the training distribution* - the same ranges
  and shapes as ``train``, drawn from a dedicated seed stream that no training pool uses, so a test
  task never coincides with a train-pool task even when both are drawn from the same seed;
- ``interp``: held-out mass and friction intervals lying *between* the train intervals, plus one
  held-out shape (interpolation to parameter values never seen in training);
- ``ood``: beyond the train ranges (extrapolation), with the held-out shape and steeper terrain.

``interp`` and ``ood`` are disjoint from ``train`` (and from each other) in mass and friction.

This module imports only numpy: it is used by the simulator, the trainers and the manifest of an
exported policy alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "OBJECT_SHAPES",
    "PARAM_LIMITS",
    "PRIVILEGED_DIM",
    "SPLITS",
    "TERRAINS",
    "TEST_STREAM",
    "ObjectShape",
    "Region",
    "Split",
    "TaskDistribution",
    "TaskParams",
    "TaskSpace",
    "Terrain",
    "as_rng",
]

ObjectShape = Literal["cube", "cuboid", "cylinder", "sphere", "capsule"]
Terrain = Literal["flat", "tilted", "bumpy"]
Split = Literal["train", "test", "interp", "ood"]

OBJECT_SHAPES: tuple[ObjectShape, ...] = get_args(ObjectShape)
TERRAINS: tuple[Terrain, ...] = get_args(Terrain)
SPLITS: tuple[Split, ...] = get_args(Split)

#: Physically supported range of each continuous field (inclusive). Outside it the simulation is
#: either meaningless (zero mass) or unstable at 1/500 s (a 20 kg object in a 20 N gripper).
PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "object_mass": (0.01, 10.0),
    "object_size": (0.02, 0.12),
    "lateral_friction": (0.005, 2.0),
    "terrain_slope_deg": (-20.0, 20.0),
    "terrain_roughness": (0.0, 0.02),
}

#: Length of `TaskParams.to_vector()` (appended to observations with ``privileged=True``).
PRIVILEGED_DIM = 5 + len(OBJECT_SHAPES) + len(TERRAINS)

#: Seed-stream tag of the ``test`` split. A test space re-seeds every draw from a child seed
#: ``SeedSequence([TEST_STREAM, four 32-bit words of the caller's generator])``; the train pools draw
#: straight from the caller's generator (tag 0). Two draws coincide only if two independent 128-bit
#: seeded streams produce the same float64 tuple, so a test task is never a train-pool task, whatever
#: seeds the caller uses for both.
TEST_STREAM = 0x7E57


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a Generator, a seed or None (fresh entropy) and return a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _check_float(name: str, value: Any) -> float:
    lo, hi = PARAM_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"TaskParams.{name} must be a number in [{lo}, {hi}], got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"TaskParams.{name}={v!r} is out of range: allowed [{lo}, {hi}]")
    return v


@dataclass(frozen=True)
class TaskParams:
    """One task: the hidden physical parameters of the scene, validated on construction."""

    object_mass: float = 0.5
    """Mass of the manipulated object, kg."""
    object_shape: ObjectShape = "cube"
    """Collision shape of the object."""
    object_size: float = 0.04
    """Characteristic size of the object, m (cube edge, sphere/cylinder diameter, capsule length)."""
    lateral_friction: float = 0.5
    """Coulomb friction coefficient of the object and the support surface."""
    terrain: Terrain = "flat"
    """Support surface: ``flat``, ``tilted`` (a plane rising along +x) or ``bumpy`` (a heightfield)."""
    terrain_slope_deg: float = 0.0
    """Tilt of the support surface about the y axis, degrees; positive rises away from the robot."""
    terrain_roughness: float = 0.0
    """Peak height of the bumps of a ``bumpy`` surface, m."""

    def __post_init__(self) -> None:
        for name in PARAM_LIMITS:
            object.__setattr__(self, name, _check_float(name, getattr(self, name)))
        if self.object_shape not in OBJECT_SHAPES:
            raise ValueError(
                f"TaskParams.object_shape={self.object_shape!r} is unknown: allowed {list(OBJECT_SHAPES)}"
            )
        if self.terrain not in TERRAINS:
            raise ValueError(f"TaskParams.terrain={self.terrain!r} is unknown: allowed {list(TERRAINS)}")
        if self.terrain != "tilted" and self.terrain_slope_deg != 0.0:
            raise ValueError(
                f"TaskParams.terrain_slope_deg={self.terrain_slope_deg} needs terrain='tilted' "
                f"(terrain is {self.terrain!r}); set the slope to 0 or the terrain to 'tilted'"
            )
        if self.terrain != "bumpy" and self.terrain_roughness != 0.0:
            raise ValueError(
                f"TaskParams.terrain_roughness={self.terrain_roughness} needs terrain='bumpy' "
                f"(terrain is {self.terrain!r}); set the roughness to 0 or the terrain to 'bumpy'"
            )
        if self.terrain == "bumpy" and self.terrain_roughness == 0.0:
            raise ValueError("TaskParams.terrain_roughness=0.0 with terrain='bumpy': allowed (0, 0.02]")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `TaskParams.from_dict` inverts it exactly."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskParams:
        """Build from a dict as written by `to_dict`; unknown keys are refused, missing ones default."""
        if not isinstance(data, Mapping):
            raise ValueError(f"TaskParams.from_dict needs a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TaskParams.from_dict: unknown field(s) {unknown}; allowed {sorted(known)}")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> TaskParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_vector(self) -> np.ndarray:
        """Fixed-length float32 encoding for the privileged (oracle) observation.

        Layout: log(mass), size/0.1, friction, slope/20, roughness/0.01, one-hot shape, one-hot terrain.
        """
        vec = np.zeros(PRIVILEGED_DIM, dtype=np.float32)
        vec[:5] = (
            math.log(self.object_mass),
            self.object_size / 0.1,
            self.lateral_friction,
            self.terrain_slope_deg / 20.0,
            self.terrain_roughness / 0.01,
        )
        vec[5 + OBJECT_SHAPES.index(self.object_shape)] = 1.0
        vec[5 + len(OBJECT_SHAPES) + TERRAINS.index(self.terrain)] = 1.0
        return vec


@dataclass(frozen=True)
class Region:
    """A union of closed intervals of one scalar parameter, sampled uniformly (or log-uniformly)."""

    intervals: tuple[tuple[float, float], ...]
    log: bool = False

    def __post_init__(self) -> None:
        ivs = tuple((float(lo), float(hi)) for lo, hi in self.intervals)
        if not ivs:
            raise ValueError("Region needs at least one interval")
        for lo, hi in ivs:
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"Region interval ({lo}, {hi}) must be finite with low <= high")
            if self.log and lo <= 0:
                raise ValueError(f"Region interval ({lo}, {hi}) must be positive for log sampling")
        object.__setattr__(self, "intervals", tuple(sorted(ivs)))

    @classmethod
    def of(cls, *intervals: tuple[float, float], log: bool = False) -> Region:
        return cls(tuple(intervals), log=log)

    @property
    def low(self) -> float:
        return self.intervals[0][0]

    @property
    def high(self) -> float:
        return max(hi for _, hi in self.intervals)

    def _t(self, x: float) -> float:
        return math.log(x) if self.log else x

    def contains(self, x: float) -> bool:
        return any(lo <= x <= hi for lo, hi in self.intervals)

    def overlaps(self, other: Region) -> bool:
        """True if the two regions share more than a boundary point."""
        return any(lo < ohi and olo < hi for lo, hi in self.intervals for olo, ohi in other.intervals)

    def sample(self, rng: np.random.Generator) -> float:
        lengths = np.array([self._t(hi) - self._t(lo) for lo, hi in self.intervals])
        total = float(lengths.sum())
        if total == 0.0:
            idx = int(rng.integers(len(self.intervals)))
            return self.intervals[idx][0]
        idx = int(rng.choice(len(self.intervals), p=lengths / total))
        lo, hi = self.intervals[idx]
        u = float(rng.uniform(self._t(lo), self._t(hi)))
        return float(min(max(math.exp(u) if self.log else u, lo), hi))

    def to_dict(self) -> dict[str, Any]:
        return {"intervals": [list(iv) for iv in self.intervals], "log": self.log}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Region:
        return cls(tuple((float(lo), float(hi)) for lo, hi in data["intervals"]), log=bool(data["log"]))


@dataclass(frozen=True)
class TaskSpace:
    """The region of one split: a product of per-parameter regions and categorical choices.

    Terrain is drawn first; a ``tilted`` task draws its slope magnitude from `terrain_slope_deg`
    and a random sign, a ``bumpy`` one its roughness from `terrain_roughness`.

    `stream` tags the seed stream: 0 draws straight from the caller's generator; any other value
    draws each task from a child generator seeded by ``[stream, 4 words of the caller's generator]``
    (the ``test`` split uses `TEST_STREAM`), so two spaces with different tags never share draws.
    `contains` ignores the tag: the region is the same.
    """

    object_mass: Region
    object_size: Region
    lateral_friction: Region
    object_shapes: tuple[ObjectShape, ...]
    terrains: tuple[Terrain, ...] = ("flat",)
    terrain_slope_deg: Region = field(default_factory=lambda: Region.of((0.0, 0.0)))
    terrain_roughness: Region = field(default_factory=lambda: Region.of((0.0, 0.0)))
    slope_sign: Literal["both", "up", "down"] = "both"
    stream: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.stream, bool) or not isinstance(self.stream, int) or not 0 <= self.stream < 2**32:
            raise ValueError(f"TaskSpace.stream={self.stream!r} must be an int in [0, 2**32)")
        if not self.object_shapes or any(s not in OBJECT_SHAPES for s in self.object_shapes):
            raise ValueError(
                f"TaskSpace.object_shapes={self.object_shapes} must be a non-empty subset of {OBJECT_SHAPES}"
            )
        if not self.terrains or any(t not in TERRAINS for t in self.terrains):
            raise ValueError(f"TaskSpace.terrains={self.terrains} must be a non-empty subset of {TERRAINS}")

    def sample_one(self, rng: np.random.Generator) -> TaskParams:
        if self.stream:
            words = [int(w) for w in rng.integers(0, 2**32, size=4, dtype=np.uint64)]
            rng = np.random.default_rng([self.stream, *words])
        shape = self.object_shapes[int(rng.integers(len(self.object_shapes)))]
        terrain = self.terrains[int(rng.integers(len(self.terrains)))]
        mass = self.object_mass.sample(rng)
        size = self.object_size.sample(rng)
        friction = self.lateral_friction.sample(rng)
        slope = rough = 0.0
        if terrain == "tilted":
            slope = self.terrain_slope_deg.sample(rng)
            sign = {"up": 1.0, "down": -1.0}.get(self.slope_sign, 1.0 if rng.random() < 0.5 else -1.0)
            slope *= sign
        elif terrain == "bumpy":
            rough = self.terrain_roughness.sample(rng)
        return TaskParams(
            object_mass=mass,
            object_shape=shape,
            object_size=size,
            lateral_friction=friction,
            terrain=terrain,
            terrain_slope_deg=slope,
            terrain_roughness=rough,
        )

    def contains(self, p: TaskParams) -> bool:
        if p.object_shape not in self.object_shapes or p.terrain not in self.terrains:
            return False
        ok = (
            self.object_mass.contains(p.object_mass)
            and self.object_size.contains(p.object_size)
            and self.lateral_friction.contains(p.lateral_friction)
        )
        if p.terrain == "tilted":
            ok = ok and self.terrain_slope_deg.contains(abs(p.terrain_slope_deg))
        if p.terrain == "bumpy":
            ok = ok and self.terrain_roughness.contains(p.terrain_roughness)
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "object_mass": self.object_mass.to_dict(),
            "object_size": self.object_size.to_dict(),
            "lateral_friction": self.lateral_friction.to_dict(),
            "object_shapes": list(self.object_shapes),
            "terrains": list(self.terrains),
            "terrain_slope_deg": self.terrain_slope_deg.to_dict(),
            "terrain_roughness": self.terrain_roughness.to_dict(),
            "slope_sign": self.slope_sign,
            "stream": self.stream,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpace:
        return cls(
            object_mass=Region.from_dict(data["object_mass"]),
            object_size=Region.from_dict(data["object_size"]),
            lateral_friction=Region.from_dict(data["lateral_friction"]),
            object_shapes=tuple(data["object_shapes"]),
            terrains=tuple(data["terrains"]),
            terrain_slope_deg=Region.from_dict(data["terrain_slope_deg"]),
            terrain_roughness=Region.from_dict(data["terrain_roughness"]),
            slope_sign=data.get("slope_sign", "both"),
            stream=int(data.get("stream", 0)),
        )


@dataclass(frozen=True)
class TaskDistribution:
    """A named task distribution with ``train`` / ``test`` / ``interp`` / ``ood`` splits.

    ``TaskDistribution.preset("push")`` is the train split of the push preset;
    ``.split("test")`` returns the same distribution drawing unseen task instances from the train
    region (its own seed stream, `TEST_STREAM`), ``.split("interp")`` the held-out intervals and shape
    between the train intervals, ``.split("ood")`` the region beyond the train ranges.
    """

    name: str
    train: TaskSpace
    interp: TaskSpace
    ood: TaskSpace
    nominal: TaskParams = field(default_factory=TaskParams)
    active: Split = "train"

    def __post_init__(self) -> None:
        if self.active not in SPLITS:
            raise ValueError(f"unknown split {self.active!r}: allowed {list(SPLITS)}")
        if self.train.stream == TEST_STREAM:
            raise ValueError(
                f"TaskDistribution {self.name!r}: the train space uses the test seed stream {TEST_STREAM}"
            )
        for fname in ("object_mass", "lateral_friction"):
            tr, ip = getattr(self.train, fname), getattr(self.interp, fname)
            if tr.overlaps(ip):
                raise ValueError(
                    f"TaskDistribution {self.name!r}: interp {fname} {ip.intervals} overlaps train {tr.intervals}"
                )
            hull = (min(tr.low, ip.low), max(tr.high, ip.high))
            for lo, hi in getattr(self.ood, fname).intervals:
                if lo < hull[1] and hi > hull[0]:
                    raise ValueError(
                        f"TaskDistribution {self.name!r}: ood {fname} ({lo}, {hi}) lies inside the train range {hull}"
                    )
        if not set(self.interp.object_shapes) - set(self.train.object_shapes):
            raise ValueError(
                f"TaskDistribution {self.name!r}: the interp split must hold out a shape unseen in train"
            )

    @staticmethod
    def preset_names() -> tuple[str, ...]:
        from robot_meta.envs.presets import PRESETS

        return tuple(PRESETS)

    @classmethod
    def preset(cls, name: str) -> TaskDistribution:
        """A named preset: ``reach``, ``push``, ``slide``, ``pick_place`` or ``manipulation-all``.

        ``"push:test"`` is accepted as a shorthand for ``preset("push").split("test")``.
        """
        from robot_meta.envs.presets import PRESETS

        base, _, split = name.partition(":")
        if base not in PRESETS:
            raise ValueError(f"unknown task distribution preset {base!r}: choose one of {list(PRESETS)}")
        dist = PRESETS[base]
        return dist.split(split) if split else dist  # type: ignore[arg-type]

    def split(self, name: Split) -> TaskDistribution:
        """The same distribution, sampling from split `name` (``train``, ``test``, ``interp``, ``ood``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: allowed {list(SPLITS)}")
        return dataclasses.replace(self, active=name)

    @property
    def test(self) -> TaskSpace:
        """The ``test`` region: the train region on its own seed stream (`TEST_STREAM`)."""
        return dataclasses.replace(self.train, stream=TEST_STREAM)

    @property
    def space(self) -> TaskSpace:
        """The region of the active split."""
        space: TaskSpace = getattr(self, self.active)
        return space

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> list[TaskParams]:
        """Draw `n` tasks from the active split."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"TaskDistribution.sample: n must be a non-negative int, got {n!r}")
        gen = as_rng(rng)
        space = self.space
        return [space.sample_one(gen) for _ in range(int(n))]

    def contains(self, params: TaskParams) -> bool:
        """True if `params` lies in the active split's region (``test`` and ``train`` share one)."""
        return self.space.contains(params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "active": self.active,
            "nominal": self.nominal.to_dict(),
            "train": self.train.to_dict(),
            "interp": self.interp.to_dict(),
            "ood": self.ood.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskDistribution:
        """Inverse of `to_dict`.

        A document written before the ``interp`` split existed (keys ``train``, ``test``, ``ood``,
        where ``test`` held the held-out intervals and shape) is read with that region as ``interp``,
        and an ``active`` of ``"test"`` in it becomes ``"interp"``, so old manifests keep meaning the
        tasks they were evaluated on.
        """
        legacy = "interp" not in data and "test" in data
        active = data.get("active", "train")
        if legacy and active == "test":
            active = "interp"
        return cls(
            name=str(data["name"]),
            train=TaskSpace.from_dict(data["train"]),
            interp=TaskSpace.from_dict(data["test" if legacy else "interp"]),
            ood=TaskSpace.from_dict(data["ood"]),
            nominal=TaskParams.from_dict(data["nominal"]),
            active=active,
        )
