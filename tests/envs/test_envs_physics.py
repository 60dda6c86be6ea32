"""Each hidden parameter measurably changes the physics.

Numbers measured on pybullet 3.2.7 (1/500 s substeps, 20 solver iterations) are quoted next to
each assertion; the assertions keep wide margins around them (ratios, not exact floats).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from envs_helpers import (
    PUSH,
    lift_height,
    make_env,
    push_displacement,
    raw,
    resting_position,
    strike_distance,
    strike_launch_speed,
    teleport_ee,
)

from robot_meta.envs import TaskParams

CUBE = TaskParams(object_mass=0.5, object_shape="cube", object_size=0.05, lateral_friction=0.5)
PUCK = TaskParams(object_mass=0.3, object_shape="cylinder", object_size=0.06, lateral_friction=0.1)


def test_mass_heavy_object_moves_clearly_less_under_the_same_push() -> None:
    light = push_displacement(CUBE.replace(object_mass=0.1))[0]  # measured 11.9 cm
    heavy = push_displacement(CUBE.replace(object_mass=2.0))[0]  # measured 5.7 cm
    assert light > 0.08
    assert 0.02 < heavy < 0.09
    assert light / heavy > 1.5


def test_mass_changes_the_push_outcome_monotonically() -> None:
    # measured 11.9, 10.6, 7.4, 4.2 cm for 0.1, 0.3, 1.0, 4.0 kg
    d = [push_displacement(CUBE.replace(object_mass=m))[0] for m in (0.1, 0.3, 1.0, 4.0)]
    assert d[0] > d[1] > d[2] > d[3] > 0.01, d
    assert d[0] / d[3] > 2.0


def test_mass_decides_whether_the_grasp_holds() -> None:
    """20 N per finger x friction 0.8 carries about 3.3 kg: 0.5 kg is lifted, 4 kg slips out."""
    grippy = CUBE.replace(object_size=0.04, lateral_friction=0.8)
    assert lift_height(grippy.replace(object_mass=0.5)) > 0.12  # measured 15.9 cm
    assert lift_height(grippy.replace(object_mass=2.0)) > 0.10  # measured 14.2 cm
    assert lift_height(grippy.replace(object_mass=4.0)) < 0.01  # measured 0.0 cm


def test_lateral_friction_slippery_object_coasts_much_further() -> None:
    slippery = push_displacement(CUBE.replace(lateral_friction=0.1))[0]  # measured 32.6 cm
    grippy = push_displacement(CUBE.replace(lateral_friction=1.0))[0]  # measured 2.0 cm
    assert slippery > 0.2
    assert grippy < 0.08
    assert slippery / grippy > 3.0


def test_lateral_friction_changes_the_push_outcome_monotonically() -> None:
    # measured 32.6, 18.6, 13.8, 9.5 cm for friction 0.1, 0.2, 0.3, 0.5
    d = [push_displacement(CUBE.replace(lateral_friction=f))[0] for f in (0.1, 0.2, 0.3, 0.5)]
    assert all(a > 1.2 * b for a, b in itertools.pairwise(d)), d


def test_lateral_friction_decides_whether_the_grasp_holds() -> None:
    """A 1 kg cube: friction 0.3 gives 12 N of grip (slips), 0.8 gives 32 N (holds)."""
    kg = CUBE.replace(object_size=0.04, object_mass=1.0)
    assert lift_height(kg.replace(lateral_friction=0.8)) > 0.12  # measured 15.9 cm
    assert lift_height(kg.replace(lateral_friction=0.3)) < 0.01  # measured 0.0 cm


def test_shape_changes_the_push_outcome() -> None:
    # Each shape ends 6-15 cm away from where the nominal cube ends (rolling resistance 1e-3: the
    # sphere rolls furthest; cylinder and capsule happen to land close to each other).
    moved = {
        s: push_displacement(CUBE.replace(object_shape=s)) for s in ("cube", "cylinder", "sphere", "capsule")
    }
    cube, cylinder, sphere, capsule = (moved[s][0] for s in ("cube", "cylinder", "sphere", "capsule"))
    assert sphere > 2.0 * cube, "a sphere rolls: it must travel much further than a sliding cube"
    assert sphere > 2.0 * capsule
    assert cube / cylinder > 1.5 or cylinder / cube > 1.5
    # changing the shape away from the nominal cube moves the final position by at least 2 cm
    gaps = {
        s: float(np.linalg.norm(np.array(moved[s]) - np.array(moved["cube"])))
        for s in ("cylinder", "sphere", "capsule")
    }
    assert min(gaps.values()) > 0.02, gaps


@pytest.mark.parametrize(
    ("shape", "half_height"),
    [("cube", 0.5), ("cuboid", 0.4), ("cylinder", 0.5), ("sphere", 0.5), ("capsule", 0.25)],
)
def test_shape_and_size_set_the_resting_height(shape: str, half_height: float) -> None:
    for size in (0.03, 0.08):
        _, rest = resting_position(CUBE.replace(object_shape=shape, object_size=size), n=10)
        assert rest[2] == pytest.approx(half_height * size, abs=1.5e-3), (shape, size, rest)


def test_size_changes_the_resting_height() -> None:
    small_rest = resting_position(CUBE.replace(object_size=0.03), n=10)[1]
    big_rest = resting_position(CUBE.replace(object_size=0.08), n=10)[1]
    assert big_rest[2] - small_rest[2] == pytest.approx(0.025, abs=2e-3)  # 4.0 cm vs 1.5 cm centre height


def test_size_changes_the_reach_tool_tip() -> None:
    """Reach: the tool hangs below the gripper, so its size moves the tip the reward is measured at."""
    tips = []
    for size in (0.03, 0.08):
        with make_env("robot_meta/PandaReach-v0", task=CUBE.replace(object_size=size)) as env:
            _, info = env.reset(seed=0)
            u = raw(env)
            ee = u.robot.ee_state()[0]
            tips.append(ee[2] - u.task.tip_position()[2])  # type: ignore[attr-defined]
            assert info["distance"] == pytest.approx(np.linalg.norm(u.task.goal - u.task.tip_position()))  # type: ignore[attr-defined]
    assert tips[0] == pytest.approx(0.03, abs=3e-3)
    assert tips[1] == pytest.approx(0.08, abs=3e-3)


@pytest.mark.parametrize("slope", [15.0, -15.0])
def test_tilted_slippery_object_slides_downhill_on_its_own(slope: float) -> None:
    task = CUBE.replace(lateral_friction=0.1, terrain="tilted", terrain_slope_deg=slope)
    placed, rest = resting_position(task, n=25)
    dx = rest[0] - placed[0]
    # measured: 77 cm downhill in 1 s (tan 15 deg = 0.27 > friction 0.1); positive slopes rise along +x
    assert -math.copysign(1.0, slope) * dx > 0.2, f"moved {dx:+.3f} m on a {slope} deg slope"
    assert rest[2] < placed[2] - 0.05


def test_tilted_grippy_or_gentle_slope_holds_the_object() -> None:
    # tan 15 deg = 0.27 < friction 1.0; tan 5 deg = 0.087 < friction 0.1
    grippy = CUBE.replace(lateral_friction=1.0, terrain="tilted", terrain_slope_deg=15.0)
    gentle = CUBE.replace(lateral_friction=0.1, terrain="tilted", terrain_slope_deg=5.0)
    for task in (grippy, gentle):
        placed, rest = resting_position(task, n=25)
        assert np.linalg.norm(rest - placed) < 0.005, (task, rest - placed)


def test_steeper_slope_slides_further() -> None:
    d10 = resting_position(CUBE.replace(lateral_friction=0.1, terrain="tilted", terrain_slope_deg=10.0))
    d15 = resting_position(CUBE.replace(lateral_friction=0.1, terrain="tilted", terrain_slope_deg=15.0))
    slide10, slide15 = d10[0][0] - d10[1][0], d15[0][0] - d15[1][0]  # measured 36 cm, 77 cm
    assert slide10 > 0.1
    assert slide15 / slide10 > 1.5


@pytest.mark.parametrize("slope", [-20.0, -7.5, 4.0, 15.0, 20.0])
def test_tilted_surface_height_at_x_0_3_is_x_tan_slope(slope: float) -> None:
    expected = 0.3 * math.tan(math.radians(slope))
    with make_env(PUSH, task=CUBE.replace(terrain="tilted", terrain_slope_deg=slope)) as env:
        env.reset(seed=0)
        u = raw(env)
        teleport_ee(env, [-0.3, -0.25, 0.15])
        assert u.scene.surface_height(0.3, 0.0) == pytest.approx(expected, abs=1e-9)
        # the simulated surface itself: cast a ray straight down at x = 0.3
        hit = u.sim.rayTest((0.3, 0.0, 1.0), (0.3, 0.0, -1.0))[0]
        assert hit[0] == u.scene.surface
        assert hit[3][2] == pytest.approx(expected, abs=1e-6)


def test_flat_surface_is_at_zero() -> None:
    with make_env(PUSH, task=CUBE) as env:
        env.reset(seed=0)
        hit = raw(env).sim.rayTest((0.3, 0.0, 1.0), (0.3, 0.0, -1.0))[0]
        assert hit[3][2] == pytest.approx(0.0, abs=1e-6)


def test_bumpy_object_rests_above_the_flat_height_and_roughness_sets_how_far() -> None:
    _, flat = resting_position(CUBE, n=25)  # measured 2.499 cm (half the 5 cm cube)
    assert flat[2] == pytest.approx(0.025, abs=5e-4)
    rest = {}
    for r in (0.005, 0.02):
        placed, settled = resting_position(CUBE.replace(terrain="bumpy", terrain_roughness=r), n=25)
        assert abs(settled[2] - placed[2]) < r, "the object should settle on the bumps, not fall through"
        rest[r] = settled[2]
    # measured: 2.79 cm on 5 mm bumps, 3.65 cm on 20 mm bumps
    assert rest[0.005] > flat[2] + 0.001
    assert rest[0.02] > rest[0.005] + 0.004
    assert rest[0.02] < flat[2] + 0.02 + 1e-3  # never above the highest bump


def test_bumpy_surface_height_is_reported_consistently() -> None:
    task = CUBE.replace(terrain="bumpy", terrain_roughness=0.01)
    with make_env(PUSH, task=task) as env:
        env.reset(seed=0)
        u = raw(env)
        teleport_ee(env, [-0.3, -0.25, 0.15])
        u.scene.place_object(0.5, 0.4)  # out of the way of the rays
        heights = []
        for x, y in [(-0.1, 0.05), (0.0, 0.0), (0.1, -0.1), (0.2, 0.15)]:
            hit = u.sim.rayTest((x, y, 1.0), (x, y, -1.0))[0]
            assert hit[3][2] == pytest.approx(u.scene.surface_height(x, y), abs=1.5e-3)
            heights.append(hit[3][2])
        assert max(heights) - min(heights) > 0.002, "a bumpy surface should not be flat"
        assert all(-1e-6 <= h <= 0.01 + 1e-6 for h in heights)


def test_slide_strike_distance_grows_with_strike_speed() -> None:
    # measured: 13.3, 27.1, 42.4, 75.4 cm at 0.5, 0.7, 0.9, 1.2 m/s
    d = [strike_distance(PUCK, v) for v in (0.5, 0.7, 0.9, 1.2)]
    assert all(b > 1.2 * a for a, b in itertools.pairwise(d)), d
    assert d[0] > 0.05
    assert d[-1] / d[0] > 3.0


def test_slide_strike_distance_shrinks_with_friction() -> None:
    # measured at 0.9 m/s: 82.4, 42.4, 22.0 cm on friction 0.05, 0.1, 0.2 (about 1 / friction)
    d = [strike_distance(PUCK.replace(lateral_friction=f), 0.9) for f in (0.05, 0.1, 0.2)]
    assert d[0] / d[1] > 1.5
    assert d[1] / d[2] > 1.5
    assert d[2] > 0.05


def test_slide_strike_distance_shrinks_uphill() -> None:
    def tilted(slope: float) -> TaskParams:
        return PUCK.replace(terrain="tilted", terrain_slope_deg=slope) if slope else PUCK

    # measured at 0.9 m/s: 63.3, 42.4, 36.5, 26.5 cm on slopes -2, 0, +2, +4 deg
    down2, flat, up2, up4 = (strike_distance(tilted(s), 0.9) for s in (-2.0, 0.0, 2.0, 4.0))
    assert down2 > 1.3 * flat
    assert flat > up2 > up4
    assert up4 < 0.75 * flat


def test_slide_torque_limited_strike_launches_a_4x_heavier_puck_at_least_1_5x_slower() -> None:
    """slide.py: the strike's joint torques are capped (`STRIKE_TORQUE_SCALE`), so once the fingers
    touch the puck the motors add only bounded momentum and the launch speed falls with mass."""
    # measured at 1.0 m/s: 0.99 m/s at 0.5 kg, 0.61 m/s at 2 kg; 0.87 m/s at 1 kg, 0.38 m/s at 4 kg
    v05, v2 = (strike_launch_speed(PUCK.replace(object_mass=m), 1.0) for m in (0.5, 2.0))
    v1, v4 = (strike_launch_speed(PUCK.replace(object_mass=m), 1.0) for m in (1.0, 4.0))
    assert v05 / v2 >= 1.5, f"0.5 kg: {v05:.2f} m/s, 2 kg: {v2:.2f} m/s"
    assert v1 / v4 >= 1.5, f"1 kg: {v1:.2f} m/s, 4 kg: {v4:.2f} m/s"
    # a light puck still leaves at the commanded speed: the cap bounds force, not the swing
    assert strike_launch_speed(PUCK.replace(object_mass=0.1), 1.0) == pytest.approx(1.0, abs=0.08)


def test_slide_full_torque_strike_would_launch_every_mass_alike() -> None:
    """The cause is the torque limit: at the rated torques the arm strikes with whatever force it
    takes and a 4 kg puck leaves as fast as a 0.1 kg one (within 5 %; measured 1.02 vs 1.04 m/s)."""
    light = strike_launch_speed(PUCK.replace(object_mass=0.1), 1.0, torque_scale=1.0)
    heavy = strike_launch_speed(PUCK.replace(object_mass=4.0), 1.0, torque_scale=1.0)
    assert abs(heavy - light) < 0.05 * light, f"0.1 kg: {light:.2f} m/s, 4 kg: {heavy:.2f} m/s"


def test_slide_heavier_puck_slides_shorter_under_the_same_strike() -> None:
    # measured at 1.0 m/s, friction 0.1: 52.3, 32.8, 19.6 cm at 0.3, 1.2, 2.0 kg (friction 0.2: 25.7 cm)
    d = [strike_distance(PUCK.replace(object_mass=m), 1.0) for m in (0.3, 1.2, 2.0)]
    assert d[0] > 1.4 * d[1] and d[1] > 1.4 * d[2], d
    assert d[2] > 0.1
    # and friction still halves it
    grippy = strike_distance(PUCK.replace(lateral_friction=0.2), 1.0)
    assert grippy < 0.6 * d[0]


def test_fingers_have_flat_parallel_pads() -> None:
    """The loaded Panda's fingers collide through a box pad plus their own hull (robot.FINGER_PAD)."""
    import gymnasium as gym
    import pybullet as pb

    env = gym.make("robot_meta/PandaPickPlace-v0")
    try:
        base = env.unwrapped
        for link in (9, 10):
            types = [d[2] for d in base.sim.getCollisionShapeData(base.robot.body, link)]
            assert types.count(pb.GEOM_BOX) == 1 and types.count(pb.GEOM_MESH) == 1, types
    finally:
        env.close()


def yawed_lift(yaw: float) -> float:
    """Lift (m) of a 0.1 kg, friction-0.3 cube standing yawed across the fingers: open above it,
    descend, close, lift."""
    import gymnasium as gym

    env = gym.make("robot_meta/PandaPickPlace-v0")
    try:
        base = env.unwrapped
        act = {a.label: i for i, a in enumerate(base.actions)}
        light = TaskParams(object_mass=0.1, object_shape="cube", object_size=0.04, lateral_friction=0.3)
        env.reset(seed=0, options={"task": light})
        x, y, _ = base.scene.object_state()[0]
        p0 = base.scene.place_object(float(x), float(y), yaw=yaw)
        env.step(act["open"])
        env.step(act["open"])
        base.robot.teleport_ee(np.array([p0[0], p0[1], p0[2] + 0.06]))
        base._ee_pos = base.robot.ee_state()[0]
        base._setpoint = base._ee_pos.copy()
        for label, n in (("-z", 10), ("close", 4), ("+z", 6)):
            for _ in range(n):
                env.step(act[label])
        return float(base.scene.object_state()[0][2] - p0[2])
    finally:
        env.close()


@pytest.mark.parametrize("yaw", [0.0, 0.6])
def test_light_slippery_object_is_lifted_not_squeezed_out(yaw: float) -> None:
    """Regression: with the tapered finger hull alone, a 0.1 kg cube at friction 0.3 yawed 0.6 rad
    across the fingers squirted out while they closed (lift 0.4 cm; 1.9 cm unyawed), although 2 x 20 N x 0.3 = 12 N
    of grip far exceeds its 1 N weight. With the flat pads it is lifted (measured 9.4 cm)."""
    assert yawed_lift(yaw) > 0.08


# -- push's shove (robot_meta/envs/tasks/push.py): what sets how far it sends the object --------------

NOMINAL_PUSH = CUBE.replace(lateral_friction=0.15)  # the push preset's nominal task


def shove(task: TaskParams, speed: float = 0.8) -> float:
    """Travel (m, along +x) of push's object after one shove at `speed` m/s, then holding."""
    return strike_distance(task, speed, env_id=PUSH)


def test_push_a_4_degree_tilt_sends_the_shoved_cube_far_further_downhill_and_shorter_uphill() -> None:
    """Friction 0.15: the cube holds still on a 4 deg tilt (tan 4 deg = 0.07 < 0.15) but, shoved, it
    decelerates at g (0.15 cos 4 - sin 4) = 0.08 g downhill and 0.22 g uphill instead of 0.15 g."""
    flat = shove(NOMINAL_PUSH)  # measured 25.0 cm at 0.8 m/s
    down = shove(NOMINAL_PUSH.replace(terrain="tilted", terrain_slope_deg=-4.0))  # measured 48.0 cm
    up = shove(NOMINAL_PUSH.replace(terrain="tilted", terrain_slope_deg=4.0))  # measured 16.5 cm
    assert down > 1.5 * flat, (down, flat)
    assert up < 0.8 * flat, (up, flat)
    assert flat > 0.15


def test_push_bumps_stop_the_shoved_cube_short() -> None:
    """5 mm bumps catch the sliding cube's edges: measured 17.5 / 20.6 cm against 25.0 / 37.6 cm on the
    flat at 0.8 / 0.95 m/s."""
    for speed in (0.8, 0.95):
        flat = shove(NOMINAL_PUSH, speed)
        bumpy = shove(NOMINAL_PUSH.replace(terrain="bumpy", terrain_roughness=0.005), speed)
        assert bumpy < 0.8 * flat, (speed, bumpy, flat)


def test_push_a_shoved_sphere_rolls_twice_as_far_as_a_sliding_cube_whatever_the_friction() -> None:
    """Rolling resistance, not sliding friction, slows a rolling ball: the sphere's travel barely
    changes from friction 0.1 to 0.3 while the cube's falls about 3x."""
    sphere = [shove(NOMINAL_PUSH.replace(object_shape="sphere", lateral_friction=f)) for f in (0.1, 0.3)]
    cube = [shove(NOMINAL_PUSH.replace(lateral_friction=f)) for f in (0.1, 0.3)]
    # measured at 0.8 m/s: sphere 60.3 / 60.2 cm, cube 42.6 / 13.7 cm on friction 0.1 / 0.3; 59.7 cm vs
    # 25.0 cm (cube) and 23.0 cm (cylinder) on friction 0.15
    assert abs(sphere[0] - sphere[1]) < 0.2 * sphere[0], sphere
    assert cube[0] > 2.5 * cube[1], cube
    on_nominal = shove(NOMINAL_PUSH.replace(object_shape="sphere"))
    assert on_nominal > 1.8 * shove(NOMINAL_PUSH)
    assert on_nominal > 1.8 * shove(NOMINAL_PUSH.replace(object_shape="cylinder"))


def test_push_the_full_torque_shove_leaves_every_mass_alike() -> None:
    """Push shoves at the rated torques, so mass barely changes the travel (slide's strike is the
    torque-limited one): measured 27.4 cm at 0.1 kg, 29.2 cm at 2 kg (0.8 m/s)."""
    light, heavy = (shove(NOMINAL_PUSH.replace(object_mass=m)) for m in (0.1, 2.0))
    assert abs(light - heavy) < 0.2 * light, (light, heavy)


def test_push_a_coarse_move_into_the_object_is_a_hit_that_launches_it_faster_than_the_arm() -> None:
    """Coarse moves (2.5 cm per 40 ms step) do not push quasi-statically: the position-controlled arm
    covers each step's ~1.3 cm in a jerk early in the step and is almost at rest at its end, so the
    fingers meet the object fast and kick it ahead: it leaves at about twice the end effector's mean
    speed and coasts on its own: coarse moves cannot grade a shove, push's shove actions do
    (robot_meta/envs/tasks/push.py)."""
    task = CUBE.replace(lateral_friction=0.15)
    with make_env(PUSH, task=task) as env:
        env.reset(seed=0)
        u = raw(env)
        u.task.goal = np.array([0.6, 0.0, 0.025])  # far ahead: nothing ends the probe early
        u.scene.place_object(-0.1, 0.0)
        teleport_ee(env, [-0.1 - u.scene.geometry.footprint_radius - 0.02, 0.0, 0.015])
        plus_x = [a.label for a in u.actions].index("+x")
        x0 = float(u.robot.ee_state()[0][0])
        obj_peak = 0.0
        for _ in range(4):
            _, _, terminated, truncated, _ = env.step(plus_x)
            assert not (terminated or truncated)
            obj_peak = max(obj_peak, float(np.linalg.norm(u.scene.object_state()[2])))
        ee_mean = (float(u.robot.ee_state()[0][0]) - x0) / (4 * u.control_dt)
    # measured: end effector 0.32 m/s on average, object 0.69 m/s just after contact
    assert 0.2 < ee_mean < 0.5, ee_mean
    assert obj_peak > 1.6 * ee_mean, (obj_peak, ee_mean)
