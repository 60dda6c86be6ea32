"""The task scene: the support surface (terrain) and the manipulated object.

Bodies are never removed. PyBullet leaks 1-4 KB per removed body or collision shape
(bullet3 #1660), which a meta-learner that changes task at every reset would turn into unbounded
growth. Instead each distinct object geometry (shape, size on a `SIZE_GRID` grid) and each
heightfield roughness (on a `ROUGHNESS_GRID` grid) is built once per env and cached; the unused
ones are parked far away as static, collision-free bodies. Memory is therefore bounded by the
number of grid cells a distribution can reach, and a task change costs a few `changeDynamics` /
`resetBasePositionAndOrientation` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_meta.envs.params import TaskParams
from robot_meta.envs.sim import PyBulletSim

__all__ = ["ROUGHNESS_GRID", "SIZE_GRID", "ObjectGeometry", "Scene"]

#: Object sizes are realised on this grid (m): at most 21 sizes x 5 shapes bodies per env.
SIZE_GRID = 0.005
#: Rolling resistance of every object (PyBullet's rollingFriction): a pushed sphere rolls ~3x and a
#: lying capsule ~7x as far as a cube, and both come to rest (at 1e-4 they rolled off the table).
ROLLING_FRICTION = 1e-3
#: Shapes that can roll or pivot on a point contact get rolling and spinning friction; boxes do not
#: need them, and the extra solver rows would cost every contact (~25 % of the physics time).
ROUND_SHAPES = frozenset({"sphere", "capsule", "cylinder"})
#: Terrain roughness is realised on this grid (m).
ROUGHNESS_GRID = 0.0005

SURFACE_HALF = (0.9, 0.6, 0.05)  # support box half extents (x, y, z), m
SURFACE_CENTER_X = 0.15  # spans x in [-0.75, 1.05]: the slide goal lies beyond the arm's reach
HF_CELLS = (40, 30)  # heightfield cells along x, y
HF_CELL = 0.03  # m
HF_CENTER = (0.0, 0.0)
_PARK_Z = -10.0
_OBJECT_COLORS = {
    "cube": (0.85, 0.25, 0.2, 1.0),
    "cuboid": (0.9, 0.55, 0.15, 1.0),
    "cylinder": (0.2, 0.45, 0.85, 1.0),
    "sphere": (0.25, 0.7, 0.3, 1.0),
    "capsule": (0.6, 0.3, 0.75, 1.0),
}


@dataclass(frozen=True)
class ObjectGeometry:
    """Realised geometry of an object (after snapping its size to the grid)."""

    shape: str
    size: float

    @property
    def half_height(self) -> float:
        """Distance from the centre to the resting surface, m (capsules lie on their side)."""
        s = self.size
        return {"cube": s / 2, "cuboid": 0.4 * s, "cylinder": s / 2, "sphere": s / 2, "capsule": s / 4}[
            self.shape
        ]

    @property
    def hang_length(self) -> float:
        """Vertical extent when held from the top (capsules hang along their axis), m."""
        s = self.size
        return {"cube": s, "cuboid": 0.8 * s, "cylinder": s, "sphere": s, "capsule": 1.5 * s}[self.shape]

    @property
    def half_extent_x(self) -> float:
        """Half length along x when resting (capsules lie along y), m."""
        s = self.size
        return {"cube": s / 2, "cuboid": 0.75 * s, "cylinder": s / 2, "sphere": s / 2, "capsule": s / 4}[
            self.shape
        ]

    @property
    def footprint_radius(self) -> float:
        """Radius of the horizontal footprint, m (for placement clearances)."""
        s = self.size
        return {"cube": 0.71 * s, "cuboid": 0.9 * s, "cylinder": s / 2, "sphere": s / 2, "capsule": 0.75 * s}[
            self.shape
        ]

    @property
    def rest_orientation(self) -> tuple[float, float, float, float]:
        """Orientation resting on a flat surface: capsules lie along y (they roll along x)."""
        if self.shape == "capsule":
            h = math.sqrt(0.5)
            return (h, 0.0, 0.0, h)
        return (0.0, 0.0, 0.0, 1.0)


def _quat_about_y(angle: float) -> tuple[float, float, float, float]:
    return (0.0, math.sin(angle / 2), 0.0, math.cos(angle / 2))


def _quat_mul(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


class Scene:
    """Support surface + one active object, reconfigured in place for each task."""

    def __init__(self, sim: PyBulletSim) -> None:
        self.sim = sim
        half = SURFACE_HALF
        shape = sim.createCollisionShape(sim.GEOM_BOX, halfExtents=half)
        visual = sim.createVisualShape(sim.GEOM_BOX, halfExtents=half, rgbaColor=(0.82, 0.82, 0.78, 1.0))
        self.surface = sim.createMultiBody(0.0, shape, visual, basePosition=(SURFACE_CENTER_X, 0.0, -half[2]))
        sim.changeDynamics(self.surface, -1, lateralFriction=1.0)
        self._objects: dict[tuple[str, float], int] = {}
        self._heightfields: dict[float, tuple[int, np.ndarray, float]] = {}
        self.body = -1
        self.geometry = ObjectGeometry("cube", 0.04)
        self.params = TaskParams()
        self._slope_rad = 0.0
        self._tan_slope = 0.0
        self._hf_heights: np.ndarray | None = None
        self._bump_pattern = self._make_bump_pattern()
        self.goal_marker = sim.createMultiBody(
            0.0,
            -1,
            sim.createVisualShape(sim.GEOM_SPHERE, radius=0.02, rgbaColor=(0.1, 0.9, 0.1, 0.5)),
            basePosition=(0.0, 0.0, _PARK_Z),
        )

    # -- configuration -------------------------------------------------------------------------
    def apply(self, params: TaskParams) -> None:
        """Configure terrain and object for `params` (cheap: no body is created twice)."""
        self._apply_terrain(params)
        geometry = ObjectGeometry(params.object_shape, snap(params.object_size, SIZE_GRID, 0.02))
        body = self._object_body(geometry)
        if body != self.body:
            if self.body >= 0:
                self._park(self.body)
            self.body = body
            self.sim.setCollisionFilterGroupMask(body, -1, 1, -1)
        self.geometry = geometry
        s = self.sim
        s.changeDynamics(
            body,
            -1,
            mass=params.object_mass,
            lateralFriction=params.lateral_friction,
            rollingFriction=ROLLING_FRICTION if geometry.shape in ROUND_SHAPES else 0.0,
            spinningFriction=ROLLING_FRICTION if geometry.shape in ROUND_SHAPES else 0.0,
            restitution=0.0,
            linearDamping=0.0,
            angularDamping=0.0,
        )
        self.params = params

    def _object_body(self, g: ObjectGeometry) -> int:
        key = (g.shape, g.size)
        if key in self._objects:
            return self._objects[key]
        s, sim = g.size, self.sim
        color = _OBJECT_COLORS[g.shape]
        if g.shape == "cube":
            kw = {"shapeType": sim.GEOM_BOX, "halfExtents": (s / 2, s / 2, s / 2)}
        elif g.shape == "cuboid":
            kw = {"shapeType": sim.GEOM_BOX, "halfExtents": (0.75 * s, 0.5 * s, 0.4 * s)}
        elif g.shape == "cylinder":
            kw = {"shapeType": sim.GEOM_CYLINDER, "radius": s / 2, "height": s}
        elif g.shape == "sphere":
            kw = {"shapeType": sim.GEOM_SPHERE, "radius": s / 2}
        else:  # capsule: cylinder of length s with hemispherical caps of radius s/4
            kw = {"shapeType": sim.GEOM_CAPSULE, "radius": s / 4, "height": s}
        col = sim.createCollisionShape(**kw)
        vis_kw = dict(kw)
        if "height" in vis_kw:
            vis_kw["length"] = vis_kw.pop("height")
        vis = sim.createVisualShape(rgbaColor=color, **vis_kw)
        body = sim.createMultiBody(1.0, col, vis, basePosition=(0.0, 0.0, 1.0), useMaximalCoordinates=True)
        self._objects[key] = body
        return body

    def _park(self, body: int) -> None:
        """Move a body out of the world: static, collision-free, far away."""
        s = self.sim
        s.setCollisionFilterGroupMask(body, -1, 0, 0)
        s.changeDynamics(body, -1, mass=0.0)
        s.resetBaseVelocity(body, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        s.resetBasePositionAndOrientation(
            body, (30.0 + 0.5 * (body % 200), 30.0, _PARK_Z), (0.0, 0.0, 0.0, 1.0)
        )

    def _make_bump_pattern(self) -> np.ndarray:
        """A fixed smooth bump pattern with peak 1 on the heightfield grid (scaled by roughness)."""
        nx, ny = HF_CELLS[0] + 1, HF_CELLS[1] + 1
        rng = np.random.default_rng(20261122)
        coarse = rng.uniform(0.0, 1.0, size=(nx // 3 + 2, ny // 3 + 2))
        xs = np.linspace(0, coarse.shape[0] - 1.001, nx)
        ys = np.linspace(0, coarse.shape[1] - 1.001, ny)
        x0, y0 = xs.astype(int), ys.astype(int)
        fx, fy = (xs - x0)[:, None], (ys - y0)[None, :]
        c = coarse
        grid = (
            c[x0][:, y0] * (1 - fx) * (1 - fy)
            + c[x0 + 1][:, y0] * fx * (1 - fy)
            + c[x0][:, y0 + 1] * (1 - fx) * fy
            + c[x0 + 1][:, y0 + 1] * fx * fy
        )
        grid -= grid.min()
        return grid / grid.max()

    def _apply_terrain(self, params: TaskParams) -> None:
        s = self.sim
        slope = math.radians(params.terrain_slope_deg)
        if slope != self._slope_rad:
            # Rotate the support box about the y axis through the workspace origin (0, 0, 0):
            # a positive slope rises along +x (the surface normal leans towards -x).
            q = _quat_about_y(-slope)
            cx, cz = SURFACE_CENTER_X, -SURFACE_HALF[2]
            pos = (
                cx * math.cos(slope) - cz * math.sin(slope),
                0.0,
                cx * math.sin(slope) + cz * math.cos(slope),
            )
            s.resetBasePositionAndOrientation(self.surface, pos, q)
            self._slope_rad = slope
            self._tan_slope = math.tan(slope)
        rough = snap(params.terrain_roughness, ROUGHNESS_GRID, 0.0) if params.terrain == "bumpy" else 0.0
        active = self._hf_heights is not None
        if rough == 0.0:
            if active:
                for body, _, _ in self._heightfields.values():
                    s.resetBasePositionAndOrientation(body, (30.0, -30.0, _PARK_Z), (0, 0, 0, 1))
                self._hf_heights = None
            return
        if rough not in self._heightfields:
            heights = self._bump_pattern * rough
            col = s.createCollisionShape(
                s.GEOM_HEIGHTFIELD,
                meshScale=(HF_CELL, HF_CELL, 1.0),
                heightfieldData=heights.T.ravel().tolist(),  # x varies fastest
                numHeightfieldRows=heights.shape[0],
                numHeightfieldColumns=heights.shape[1],
            )
            body = s.createMultiBody(0.0, col, -1, basePosition=(30.0, -30.0, _PARK_Z))
            s.changeDynamics(body, -1, lateralFriction=1.0)
            s.changeVisualShape(body, -1, rgbaColor=(0.7, 0.65, 0.55, 1.0))
            self._heightfields[rough] = (body, heights, rough / 2)
        for key, (body, _, _) in self._heightfields.items():
            if key != rough:
                s.resetBasePositionAndOrientation(body, (30.0, -30.0, _PARK_Z), (0, 0, 0, 1))
        body, heights, zc = self._heightfields[rough]
        # PyBullet centres a heightfield on the midpoint of its height range.
        s.resetBasePositionAndOrientation(body, (HF_CENTER[0], HF_CENTER[1], zc), (0, 0, 0, 1))
        self._hf_heights = heights

    # -- geometry queries ------------------------------------------------------------------------
    def surface_height(self, x: float, y: float) -> float:
        """Height of the support surface at (x, y), m."""
        h = x * self._tan_slope
        if self._hf_heights is not None:
            h += self._heightfield_at(x, y)
        return h

    def _heightfield_at(self, x: float, y: float) -> float:
        assert self._hf_heights is not None
        nx, ny = self._hf_heights.shape
        gx = (x - HF_CENTER[0]) / HF_CELL + (nx - 1) / 2
        gy = (y - HF_CENTER[1]) / HF_CELL + (ny - 1) / 2
        if not (0 <= gx <= nx - 1 and 0 <= gy <= ny - 1):
            return 0.0
        i, j = min(int(gx), nx - 2), min(int(gy), ny - 2)
        fx, fy = gx - i, gy - j
        h = self._hf_heights
        return float(
            h[i, j] * (1 - fx) * (1 - fy)
            + h[i + 1, j] * fx * (1 - fy)
            + h[i, j + 1] * (1 - fx) * fy
            + h[i + 1, j + 1] * fx * fy
        )

    def max_height_around(self, x: float, y: float, radius: float) -> float:
        """Highest surface point under a disc (for dropping an object onto bumps)."""
        if self._hf_heights is None:
            return max(self.surface_height(x + dx, y) for dx in (-radius, radius))
        pts = [(x + dx, y + dy) for dx in (-radius, 0.0, radius) for dy in (-radius, 0.0, radius)]
        return max(self.surface_height(px, py) for px, py in pts)

    @property
    def surface_orientation(self) -> tuple[float, float, float, float]:
        return _quat_about_y(-self._slope_rad)

    # -- object placement and state ------------------------------------------------------------------
    def place_object(self, x: float, y: float, yaw: float = 0.0) -> np.ndarray:
        """Put the object at rest on the surface at (x, y); returns its position."""
        g = self.geometry
        r = g.footprint_radius
        base = self.max_height_around(x, y, r) if self._hf_heights is not None else self.surface_height(x, y)
        # On a tilt, the centre sits half_height along the surface normal.
        z = (
            base
            + g.half_height / math.cos(self._slope_rad)
            + (0.0005 if self._hf_heights is not None else 0.0)
        )
        yaw_q = (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
        orn = _quat_mul(self.surface_orientation, _quat_mul(yaw_q, g.rest_orientation))
        pos = np.array([x, y, z])
        self.sim.resetBasePositionAndOrientation(self.body, pos.tolist(), orn)
        self.sim.resetBaseVelocity(self.body, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        return pos

    def object_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Object position, orientation (quaternion x, y, z, w), linear and angular velocity."""
        pos, orn = self.sim.getBasePositionAndOrientation(self.body)
        lin, ang = self.sim.getBaseVelocity(self.body)
        return np.array(pos), np.array(orn), np.array(lin), np.array(ang)

    def show_goal(self, position: np.ndarray) -> None:
        self.sim.resetBasePositionAndOrientation(self.goal_marker, position.tolist(), (0, 0, 0, 1))

    @property
    def n_bodies_built(self) -> int:
        """Object and heightfield bodies built so far (bounded by the grids)."""
        return len(self._objects) + len(self._heightfields)


def snap(value: float, grid: float, minimum: float) -> float:
    """Round `value` to the grid (never below `minimum`), as a clean float."""
    return round(max(minimum, round(value / grid) * grid), 6)
