"""The named task distributions of `TaskDistribution.preset`: one (train, interp, ood) table per family.

Only data and the helper that turns the table into `TaskSpace` splits; the types and their checks
are `robot_meta.envs.params`. Imports only numpy (through params).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from robot_meta.envs.params import ObjectShape, Region, TaskDistribution, TaskParams, TaskSpace, Terrain

__all__ = ["PRESETS"]


def _r(*intervals: tuple[float, float], log: bool = False) -> Region:
    return Region(tuple(intervals), log=log)


def _preset(
    name: str,
    *,
    mass: tuple[Sequence[tuple[float, float]], Sequence[tuple[float, float]], Sequence[tuple[float, float]]],
    friction: tuple[
        Sequence[tuple[float, float]], Sequence[tuple[float, float]], Sequence[tuple[float, float]]
    ],
    size: tuple[float, float],
    shapes: tuple[tuple[ObjectShape, ...], ObjectShape],
    terrains: tuple[Terrain, ...],
    slope: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0)),
    roughness: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0)),
    nominal: TaskParams,
    slope_sign: Literal["both", "up", "down"] = "both",
) -> TaskDistribution:
    """Build a preset from (train, interp, ood) intervals; interp and ood shapes add the held-out one."""
    train_shapes, held_out = shapes
    all_shapes = (*train_shapes, held_out)
    common = dict(object_size=_r(size), terrains=terrains, slope_sign=slope_sign)
    train = TaskSpace(
        object_mass=_r(*mass[0], log=True),
        lateral_friction=_r(*friction[0], log=True),
        object_shapes=train_shapes,
        terrain_slope_deg=_r(slope[0]),
        terrain_roughness=_r(roughness[0]),
        **common,  # type: ignore[arg-type]
    )
    interp = dataclasses.replace(
        train,
        object_mass=_r(*mass[1], log=True),
        lateral_friction=_r(*friction[1], log=True),
        object_shapes=all_shapes,
    )
    ood = dataclasses.replace(
        train,
        object_mass=_r(*mass[2], log=True),
        lateral_friction=_r(*friction[2], log=True),
        object_shapes=all_shapes,
        terrain_slope_deg=_r(slope[1]),
        terrain_roughness=_r(roughness[1]),
    )
    return TaskDistribution(name=name, train=train, interp=interp, ood=ood, nominal=nominal)


#: The named presets of `TaskDistribution.preset` (train/interp/ood intervals per family).
PRESETS: dict[str, TaskDistribution] = {
    # Reach: the gripper holds a tool of hidden shape and size whose tip must touch the target.
    "reach": _preset(
        "reach",
        mass=([(0.1, 0.3), (0.6, 1.0)], [(0.3, 0.6)], [(1.0, 2.0)]),
        friction=([(0.3, 0.5), (0.7, 1.0)], [(0.5, 0.7)], [(0.1, 0.3)]),
        size=(0.03, 0.08),
        shapes=(("cube", "cuboid", "cylinder", "sphere"), "capsule"),
        terrains=("flat",),
        nominal=TaskParams(object_mass=0.2, object_shape="cube", object_size=0.05, lateral_friction=0.5),
    ),
    # Push: the shove that lands the object depends on friction, shape (slides or rolls) and terrain
    # (downhill further, uphill shorter, bumps stop it short); see robot_meta/envs/tasks/push.py.
    "push": _preset(
        "push",
        mass=([(0.1, 0.3), (0.8, 2.0)], [(0.3, 0.8)], [(2.0, 4.0)]),
        friction=([(0.08, 0.14), (0.25, 0.4)], [(0.14, 0.25)], [(0.04, 0.08)]),
        size=(0.04, 0.06),
        shapes=(("cube", "cylinder", "sphere", "capsule"), "cuboid"),
        terrains=("flat", "tilted", "bumpy"),
        slope=((2.0, 5.0), (5.0, 8.0)),
        roughness=((0.002, 0.006), (0.006, 0.01)),
        nominal=TaskParams(object_mass=0.5, object_shape="cube", object_size=0.05, lateral_friction=0.15),
    ),
    # Slide: the strike strength that lands the puck on the goal depends on friction, mass and slope.
    "slide": _preset(
        "slide",
        mass=([(0.1, 0.3), (0.8, 2.0)], [(0.3, 0.8)], [(2.0, 4.0)]),
        friction=([(0.05, 0.08), (0.14, 0.25)], [(0.08, 0.14)], [(0.025, 0.05)]),
        size=(0.05, 0.07),
        shapes=(("cylinder", "cube"), "cuboid"),
        terrains=("flat", "tilted"),
        slope=((0.0, 2.0), (2.0, 4.0)),
        nominal=TaskParams(object_mass=0.3, object_shape="cylinder", object_size=0.06, lateral_friction=0.1),
    ),
    # Pick and place: grip force x friction must carry the weight; shape decides how it is grasped.
    "pick_place": _preset(
        "pick_place",
        mass=([(0.05, 0.15), (0.4, 0.8)], [(0.15, 0.4)], [(0.8, 1.5)]),
        friction=([(0.3, 0.5), (0.8, 1.2)], [(0.5, 0.8)], [(0.1, 0.3)]),
        size=(0.035, 0.05),
        shapes=(("cube", "cuboid", "cylinder"), "capsule"),
        terrains=("flat", "tilted"),
        slope=((0.0, 3.0), (3.0, 6.0)),
        nominal=TaskParams(object_mass=0.1, object_shape="cube", object_size=0.04, lateral_friction=0.8),
    ),
    # Every family's parameters at once, for multi-family meta-training.
    "manipulation-all": _preset(
        "manipulation-all",
        mass=([(0.05, 0.3), (0.8, 2.0)], [(0.3, 0.8)], [(2.0, 4.0)]),
        friction=([(0.05, 0.1), (0.2, 1.0)], [(0.1, 0.2)], [(0.02, 0.05), (1.0, 1.5)]),
        size=(0.035, 0.07),
        shapes=(("cube", "cuboid", "cylinder", "capsule"), "sphere"),
        terrains=("flat", "tilted", "bumpy"),
        slope=((0.0, 4.0), (4.0, 8.0)),
        roughness=((0.002, 0.006), (0.006, 0.01)),
        nominal=TaskParams(),
    ),
}
