"""StrikePlanner (numpy only): the posterior moves the strike where the observed travel says, holds
after the strike, refuses bad input, and round-trips through its files with a hash check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_meta.runtime import (
    AdaptConfig,
    ObservationError,
    StrikeLayout,
    StrikePlanner,
    TransitionError,
    is_strike_planner_dir,
    load_device_policy,
    without_adaptation,
)
from robot_meta.runtime.strike import OFF_TABLE_TRAVEL, STRIKE_FILE

# a 15-value observation: ee velocity, object position, object velocity, goal, object - ee
LAYOUT = StrikeLayout(
    ee_velocity=0, object_position=3, object_velocity=6, goal_position=9, object_minus_ee=12
)
STRIKES = [11, 12, 13]
# particle A: a slippery table, particle B: twice as slippery
TABLE = np.array([[0.10, 0.30, 0.50], [0.30, 0.50, 0.70]])


def obs(x: float = -0.1, goal_dx: float = 0.5, moving: bool = False, z: float = 0.02) -> np.ndarray:
    o = np.zeros(15)
    o[3:6] = [x, 0.0, z]
    o[6] = 0.3 if moving else 0.0
    o[9:12] = [x + goal_dx, 0.0, 0.02]
    o[12:15] = [0.05, 0.0, 0.0]  # fingertips 5 cm behind the object
    return o


def planner(**kw: float) -> StrikePlanner:
    return StrikePlanner(TABLE, STRIKES, LAYOUT, sigma=0.04, window=0.06, **kw)  # type: ignore[arg-type]


def shot(p: StrikePlanner, column: int, travel: float, z_end: float = 0.02, adapt: bool = True) -> None:
    start = obs()
    p.observe(start, STRIKES[column], 0.0, obs(moving=True), False)  # in flight: nothing recorded yet
    p.observe(obs(moving=True), 0, 0.0, obs(x=-0.1 + travel, z=z_end), False)  # at rest: recorded
    if adapt:
        p.adapt()


def test_one_shot_moves_the_strike_to_the_one_that_lands() -> None:
    p = planner()
    # prior: each particle lands with a different strike; the tie goes to the first (B's 0.50)
    assert p.act(obs()) == STRIKES[1]
    np.testing.assert_allclose(p.landing_share(0.5), [0.0, 0.5, 0.5])
    shot(p, 0, 0.10, adapt=False)  # the slowest strike went 10 cm: the table is A
    np.testing.assert_allclose(p.posterior(), [0.5, 0.5])  # observe only records; adapt moves it
    assert p.act(obs()) == STRIKES[1] and p.observed == 0
    report = p.adapt()
    assert report.applied and report.transitions == 1 and not report.rolled_back
    # the posterior mean's error on the observed travel: prior (0.2 - 0.1)^2 = 0.01, then about 0
    assert report.loss_before == pytest.approx(0.01) and report.loss_after < 1e-6
    assert p.observed == 1 and p.adaptations == 1
    assert p.posterior()[0] > 0.999  # exp(-0.5 * (0.2 / 0.04)^2) = 3.7e-6 for B
    assert p.act(obs()) == STRIKES[2]
    assert p.act_prior(obs()) == STRIKES[1]  # the prior choice is still there, state unchanged
    assert p.posterior()[0] > 0.999
    idle = p.adapt()  # nothing new: nothing applied, and it says why
    assert not idle.applied and "no strike" in idle.reason and p.adaptations == 1
    p.reset_adaptation()
    np.testing.assert_allclose(p.posterior(), [0.5, 0.5])
    assert p.observed == 0 and p.adaptations == 0


def test_recorded_strikes_are_dropped_by_a_reset() -> None:
    p = planner()
    shot(p, 0, 0.10, adapt=False)
    p.reset_adaptation()  # a new task before the background adaptation ran
    assert not p.adapt().applied
    np.testing.assert_allclose(p.posterior(), [0.5, 0.5])


def test_holds_away_from_the_start_state() -> None:
    p = planner(hold_action=0)
    assert p.act(obs(moving=True)) == 0
    far = obs()
    far[12] = 0.3  # the arm is 30 cm behind the object: not the strike pose
    assert p.act(far) == 0


def test_a_strike_off_the_table_counts_as_far() -> None:
    table = np.array([[0.2, 0.4, OFF_TABLE_TRAVEL], [0.2, OFF_TABLE_TRAVEL, OFF_TABLE_TRAVEL]])
    p = StrikePlanner(table, STRIKES, LAYOUT)
    shot(p, 1, 0.3, z_end=-0.5)  # the middle strike dropped the object off the edge
    assert p.posterior()[1] > 0.999


def test_bad_input_is_refused() -> None:
    p = planner()
    bad = obs()
    bad[4] = np.nan
    with pytest.raises(ObservationError, match="non-finite"):
        p.act(bad)
    with pytest.raises(ObservationError, match="at least 15"):
        p.act(np.zeros(5))
    with pytest.raises(TransitionError, match="reward"):
        p.observe(obs(), STRIKES[0], float("nan"), obs(), False)
    with pytest.raises(TransitionError, match="action"):
        p.observe(obs(), 99, 0.0, obs(), False)
    with pytest.raises(TransitionError, match="non-finite"):
        p.observe(obs(), STRIKES[0], 0.0, bad, False)
    with pytest.raises(ValueError, match="n_actions"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, n_actions=12)
    with pytest.raises(ValueError, match="table"):
        StrikePlanner(np.zeros(3), [1, 2, 3], LAYOUT)
    with pytest.raises(ValueError, match="non-finite"):
        StrikePlanner(np.array([[0.1, np.inf, 0.3]]), STRIKES, LAYOUT)
    with pytest.raises(ValueError, match="distinct"):
        StrikePlanner(TABLE, [1, 1, 2], LAYOUT)
    with pytest.raises(ValueError, match="sigma"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, sigma=0.0)
    with pytest.raises(ValueError, match="object_minus_ee"):
        StrikeLayout.from_observation_layout([("ee_velocity", 3), ("object_position", 3)])


def test_layout_from_an_observation_layout() -> None:
    layout = StrikeLayout.from_observation_layout(
        [("ee_position", 3), ("ee_velocity", 3), ("object_position", 3), ("object_quaternion", 4),
         ("object_velocity", 3), ("object_angular_velocity", 3), ("goal_position", 3),
         ("object_minus_ee", 3), ("goal_minus_object", 3)]
    )  # fmt: skip
    assert layout == StrikeLayout(3, 6, 13, 19, 22)


def test_save_load_round_trip_and_corruption(tmp_path: Path) -> None:
    p = StrikePlanner(
        TABLE, STRIKES, LAYOUT, n_actions=17, env_id="robot_meta/PandaSlide-v0", train_distribution={"a": 1},
        lateral=True, scale_correction=0.5,
    )  # fmt: skip
    p.save(tmp_path, provenance={"seed": 0})
    assert is_strike_planner_dir(tmp_path) and not is_strike_planner_dir(tmp_path / "missing")
    q = load_device_policy(tmp_path)
    assert isinstance(q, StrikePlanner)
    np.testing.assert_array_equal(q.travel, p.travel)
    assert (q.strikes, q.layout, q.sigma, q.window) == (p.strikes, p.layout, p.sigma, p.window)
    assert (q.n_actions, q.env_id, q.train_distribution) == (17, "robot_meta/PandaSlide-v0", {"a": 1})
    assert (q.lateral, q.scale_correction) == (True, 0.5)
    with pytest.raises(ValueError, match="no AdaptConfig"):
        load_device_policy(tmp_path, AdaptConfig(method="ridge"))
    shot(q, 0, 0.10)
    assert q.act(obs()) == STRIKES[2]
    raw = bytearray((tmp_path / STRIKE_FILE).read_bytes())
    raw[-40] ^= 0xFF
    (tmp_path / STRIKE_FILE).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        StrikePlanner.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no strike planner"):
        StrikePlanner.load(tmp_path / "missing")


def test_lateral_offset_narrows_the_landing_window() -> None:
    table = np.array([[0.10, 0.30, 0.545]])
    flat = StrikePlanner(table, STRIKES, LAYOUT, window=0.06)
    planar = StrikePlanner(table, STRIKES, LAYOUT, window=0.06, lateral=True)
    # the goal 50 cm ahead and 5 cm aside: along x the fastest strike (54.5 cm) is within 6 cm, but in
    # the plane it stops sqrt(0.045^2 + 0.05^2) = 6.7 cm from the goal
    np.testing.assert_allclose(flat.landing_share(0.5, lateral_offset=0.05), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(planar.landing_share(0.5, lateral_offset=0.05), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(planar.landing_share(0.5, lateral_offset=0.0), [0.0, 0.0, 1.0])
    o = obs(goal_dx=0.5)
    o[10] = 0.05  # goal y: 5 cm aside
    assert planar.act(o) == STRIKES[0]  # no strike lands: the first of the tied ones
    assert flat.act(o) == STRIKES[2]


def test_scale_correction_moves_the_plan_by_the_observed_ratio() -> None:
    table = np.array([[0.10, 0.30, 0.50]])  # one particle: the model thinks the slowest goes 10 cm
    p = StrikePlanner(table, STRIKES, LAYOUT, window=0.03, scale_correction=0.0)
    assert p.act(obs(goal_dx=0.36)) == STRIKES[0]  # nothing lands within 3 cm of 36 cm: the first
    shot(p, 0, 0.12)  # it went 12 cm: this task slides 1.2x as far as the model says
    np.testing.assert_allclose(p.planned_travel(), [[0.12, 0.36, 0.60]])
    assert p.act(obs(goal_dx=0.36)) == STRIKES[1]
    assert p.act_prior(obs(goal_dx=0.36)) == STRIKES[0]  # the prior plans with the uncorrected table
    shrunk = StrikePlanner(table, STRIKES, LAYOUT, scale_correction=1.0)
    shot(shrunk, 0, 0.12)  # one observation against a pseudo-count of 1: half the log ratio
    np.testing.assert_allclose(shrunk.planned_travel(), table * np.sqrt(1.2))
    shrunk.reset_adaptation()
    np.testing.assert_allclose(shrunk.planned_travel(), table)
    with pytest.raises(ValueError, match="scale_correction"):
        StrikePlanner(table, STRIKES, LAYOUT, scale_correction=-1.0)


APPROACH = {"+x": 1, "-x": 2, "+y": 3, "-y": 4}


def test_follow_up_moves_behind_a_short_object_and_strikes_again() -> None:
    p = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH)
    assert StrikePlanner(TABLE, STRIKES, LAYOUT).act(obs(x=0.1, goal_dx=0.3)) in STRIKES  # at the pose
    short = obs(x=0.1, goal_dx=0.3)
    short[12] = 0.25  # the object rests 25 cm ahead of the fingertips, 30 cm short of the goal
    assert StrikePlanner(TABLE, STRIKES, LAYOUT).act(short) == 0  # without approach: hold
    assert p.act(short) == APPROACH["+x"]
    aside = short.copy()
    aside[13] = -0.02  # and 2 cm to the side
    assert p.act(aside) == APPROACH["-y"]
    moving = short.copy()
    moving[6] = 0.2  # still sliding: wait
    assert p.act(moving) == 0
    close = short.copy()
    close[9] = short[3] + 0.04  # within the window of the goal: done
    assert p.act(close) == 0
    behind = obs(x=0.1, goal_dx=0.3)  # fingertips 5 cm behind, at rest: the strike pose again
    assert p.act(behind) == STRIKES[0]  # 30 cm: particle A's middle strike or B's slowest, tie -> first


def test_follow_up_strikes_are_not_recorded() -> None:
    p = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH)
    shot(p, 0, 0.10, adapt=False)  # the episode's first strike: recorded
    p.observe(obs(x=0.0), STRIKES[2], 0.0, obs(x=0.0, moving=True), False)  # a follow-up from the pose
    p.observe(obs(x=0.0, moving=True), 0, 0.0, obs(x=0.4), False)
    assert p.adapt().transitions == 1
    p.observe(obs(x=-0.1), 0, 0.0, obs(x=-0.1), False)  # a reset: the object is back at its start
    shot(p, 0, 0.10, adapt=False)  # the next episode's first strike is recorded again
    assert p.adapt().transitions == 1
    with pytest.raises(ValueError, match="approach"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, approach={"+x": 1})


# particle A lands 20 cm with the middle strike, particle B with the slowest
TWO = np.array([[0.10, 0.20, 0.40], [0.20, 0.40, 0.60]])


def test_in_episode_plans_the_follow_up_with_the_first_strikes_travel() -> None:
    start, follow = obs(x=-0.1, goal_dx=0.4), obs(x=0.1, goal_dx=0.2)  # the goal stays at x = 0.3
    for in_episode, want in ((True, STRIKES[1]), (False, STRIKES[0])):
        p = StrikePlanner(TWO, STRIKES, LAYOUT, approach=APPROACH, in_episode=in_episode)
        assert p.act(start) == STRIKES[1]  # 40 cm: A's fastest or B's middle strike, tie -> the middle
        # it went 20 cm, which is A's middle strike: A's 20 cm strike is the middle one too
        assert p.act(follow) == want  # without the episode's memory: the prior's tie -> the slowest
        np.testing.assert_allclose(p.posterior(), [0.5, 0.5])  # the posterior itself did not move
        assert p.act_prior(obs(x=0.1, goal_dx=0.25)) == STRIKES[0]  # a new goal: a new episode, no memory
    # adaptation switched off (the protocol's control, the device's --no-adapt): the prior plans the follow-up too
    p = StrikePlanner(TWO, STRIKES, LAYOUT, approach=APPROACH, in_episode=True)
    assert p.act_prior(start) == STRIKES[1] and p.act_prior(follow) == STRIKES[0]
    off = without_adaptation(StrikePlanner(TWO, STRIKES, LAYOUT, approach=APPROACH, in_episode=True))
    assert off.act(start) == STRIKES[1] and off.act(follow) == STRIKES[0] and not off.in_episode


def test_short_credit_prefers_a_strike_that_falls_short_to_one_that_overshoots() -> None:
    # two particles say the slower strike stops 20 cm short and the faster lands; one says the slower
    # lands and the faster overshoots
    table = np.array([[0.30, 0.50], [0.30, 0.50], [0.50, 0.70]])
    start = obs(x=-0.1, goal_dx=0.5)
    plain = StrikePlanner(table, STRIKES[:2], LAYOUT, approach=APPROACH)
    assert plain.act(start) == STRIKES[1]  # lands on 2 of 3
    assert (
        StrikePlanner(table, STRIKES[:2], LAYOUT, approach=APPROACH, short_credit=0.3).act(start)
        == STRIKES[1]
    )
    # 1/3 + 0.6 * 2/3 = 0.73 > 2/3: a short strike can be followed up, an overshoot cannot
    assert (
        StrikePlanner(table, STRIKES[:2], LAYOUT, approach=APPROACH, short_credit=0.6).act(start)
        == STRIKES[0]
    )
    assert (
        StrikePlanner(table, STRIKES[:2], LAYOUT, short_credit=0.6).act(start) == STRIKES[1]
    )  # no follow-up
    with pytest.raises(ValueError, match="short_credit"):
        StrikePlanner(table, STRIKES[:2], LAYOUT, short_credit=1.5)


def test_match_gap_stops_the_approach_at_the_first_strikes_gap() -> None:
    start = obs(x=-0.1, goal_dx=0.5)
    start[12] = 0.03  # the episode starts with the fingertips 3 cm behind the object
    short = obs(x=0.1, goal_dx=0.3)
    short[12] = 0.045  # after the strike the arm is 4.5 cm behind it: inside the fixed 5 cm stop
    fixed = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH)
    matched = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH, match_gap=True)
    for p in (fixed, matched):
        p.act(start)
    short[6] = 0.0
    ee_moving = short.copy()
    ee_moving[0] = 0.1  # the arm still moving: not the strike pose, so the approach decides
    assert fixed.act(ee_moving) == 0  # within 5 cm: hold, then strike from 4.5 cm
    assert matched.act(ee_moving) == APPROACH["+x"]  # 1.5 cm further than the start's gap: close in
    assert fixed.act(short) in STRIKES  # at rest within 8 cm: the strike pose
    assert matched.act(short) == APPROACH["+x"]  # not yet at the start's gap: close in first


def test_the_approach_moves_finely_near_its_target_when_the_env_has_fine_moves() -> None:
    fine = {**APPROACH, "+x fine": 7, "-x fine": 8, "+y fine": 9, "-y fine": 10}
    p = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=fine, n_actions=17)
    far, near, aside = obs(x=0.1, goal_dx=0.3), obs(x=0.1, goal_dx=0.3), obs(x=0.1, goal_dx=0.3)
    far[12], near[12] = 0.25, 0.07  # 20 cm and 2 cm beyond the 5 cm stop
    near[0] = 0.1  # the arm still moving (at rest within 8 cm would be the strike pose)
    aside[12], aside[13] = 0.25, 0.02  # 2 cm aside: 1.2 cm beyond the alignment
    assert p.act(far) == APPROACH["+x"] and p.act(near) == fine["+x fine"] and p.act(aside) == fine["+y fine"]
    assert StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH).act(near) == APPROACH["+x"]  # coarse only
    with pytest.raises(ValueError, match="optionally"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, approach={**APPROACH, "+x fine": 7})


def test_chase_approaches_a_sliding_object_but_keeps_its_margin() -> None:
    waits = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH)
    chases = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH, chase=True)
    sliding = obs(x=0.0, goal_dx=0.4, moving=True)
    sliding[12] = 0.12  # the object slides 12 cm ahead of the fingertips, 40 cm short of the goal
    assert waits.act(sliding) == 0  # holds until the object rests
    assert chases.act(sliding) == APPROACH["+x"]  # closes in while it slides
    near = sliding.copy()
    near[12] = 0.07  # beyond the 5 cm stop, but within it plus the 3 cm margin for a sliding object
    assert chases.act(near) == 0
    near[6] = 0.0  # the object came to rest: close in to the strike gap (the arm still moving)
    near[0] = 0.1
    assert chases.act(near) == APPROACH["+x"]
    beyond = sliding.copy()
    beyond[9] = sliding[3] + 0.03  # the sliding object is already within the window of the goal: hold
    assert chases.act(beyond) == 0
    assert StrikePlanner(TABLE, STRIKES, LAYOUT, chase=True).act(sliding) == 0  # no approach, no chase


def test_follow_up_reach_credits_only_short_stops_a_follow_up_can_land_in_time() -> None:
    # goal 50 cm ahead: the fastest strike lands on particle A and leaves B and C 7-8 cm short at
    # x = 0.32-0.33; the slowest leaves every particle 35 cm short at x = 0.05, where the middle strike lands
    table = np.array([[0.15, 0.35, 0.50], [0.15, 0.35, 0.42], [0.15, 0.35, 0.43]])
    start = obs(x=-0.1, goal_dx=0.5)
    kw = {"approach": APPROACH, "short_credit": 0.5}
    # every short stop earns credit: 1/3 + 0.5 * 2/3 for the fastest against 0.5 for the slowest
    assert StrikePlanner(table, STRIKES, LAYOUT, **kw).act(start) == STRIKES[2]  # type: ignore[arg-type]
    # only stops at x <= 0.15 from which a strike lands: 1/3 for the fastest against 0.5 for the slowest
    two = StrikePlanner(table, STRIKES, LAYOUT, follow_up_reach=0.15, **kw)  # type: ignore[arg-type]
    assert two.act(start) == STRIKES[0]
    # from x = 0.05 no strike lands any more (35 cm left; the strikes go 15, 27 and 42-50 cm), and the
    # middle strike's stop at x = 0.17 is too far for a follow-up: no credit
    table[:, 1] = 0.27
    no_landing = StrikePlanner(table, STRIKES, LAYOUT, follow_up_reach=0.15, **kw)  # type: ignore[arg-type]
    assert no_landing.act(start) == STRIKES[2]
    with pytest.raises(ValueError, match="follow_up_reach"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, follow_up_reach=float("nan"))


def test_chase_and_follow_up_reach_survive_save_and_load(tmp_path: Path) -> None:
    StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH, chase=True, follow_up_reach=0.15).save(tmp_path)
    loaded = StrikePlanner.load(tmp_path)
    assert loaded.chase and loaded.follow_up_reach == 0.15


def in_flight(p: StrikePlanner, column: int, travel: float, z_end: float = 0.02) -> None:
    """A strike whose object still moves at the last transition (travel so far `travel`)."""
    p.observe(obs(), STRIKES[column], 0.0, obs(moving=True), False)
    p.observe(obs(moving=True), 0, 0.0, obs(x=-0.1 + travel, moving=True, z=z_end), False)


def test_a_strike_still_moving_at_the_time_limit_counts_as_at_least_its_travel() -> None:
    # the slowest strike: A predicts 10 cm, B 30 cm; the object is still sliding at 25 cm when time runs out
    p = planner()
    in_flight(p, 0, 0.25)
    assert not p.adapt().applied  # not at rest, not terminated: nothing recorded yet
    p.end_episode()
    report = p.adapt()
    assert report.applied and report.transitions == 1
    # censored at 0.25: B (30 cm, further) keeps its weight, A (10 cm) is 0.15 / 0.04 = 3.75 sigma short,
    # Q(3.75) = 8.8e-5 against Q(-1.25) = 0.89
    w = p.posterior()
    assert w[1] > 0.9998 and w[0] == pytest.approx(8.84e-5 / 0.894, rel=0.02)
    # an exact reading of 0.25 would have split them by distance instead (A 3.75 sigma, B 1.25 sigma off)
    exact = planner()
    shot(exact, 0, 0.25)
    assert exact.posterior()[1] == pytest.approx(1 / (1 + np.exp(-0.5 * (3.75**2 - 1.25**2))), rel=1e-6)
    p.end_episode()  # nothing in flight any more: nothing recorded
    assert not p.adapt().applied


def test_a_strike_in_flight_at_a_reset_is_kept_censored_and_a_falling_one_counts_as_off_the_table() -> None:
    p = planner()
    in_flight(p, 0, 0.25)
    p.observe(obs(x=-0.1), 0, 0.0, obs(x=-0.1), False)  # the next episode: the object is back at its start
    assert p.adapt().transitions == 1 and p.posterior()[1] > 0.999
    table = np.array([[0.2, 0.4, OFF_TABLE_TRAVEL], [0.2, OFF_TABLE_TRAVEL, OFF_TABLE_TRAVEL]])
    falls = StrikePlanner(table, STRIKES, LAYOUT)
    in_flight(falls, 1, 0.3, z_end=-0.5)  # falling off the edge when time ran out: an exact off-table travel
    falls.end_episode()
    falls.adapt()
    assert falls.posterior()[1] > 0.999


FINE = {**APPROACH, "+x fine": 7, "-x fine": 8, "+y fine": 9, "-y fine": 10}


def test_creep_pushes_near_goals_with_fine_moves_and_never_strikes_again() -> None:
    p = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=FINE, n_actions=17, creep_first=0.22)
    start = obs(x=-0.1, goal_dx=0.2)
    start[12] = 0.01  # the episode's start: fingertips 1 cm behind the object
    assert p.act(start) == FINE["+x fine"]  # 20 cm <= 22 cm: creep, no strike
    pushing = obs(x=-0.05, goal_dx=0.15)
    pushing[0] = 0.1  # the arm moving, in contact (not the strike pose)
    assert p.act(pushing) == FINE["+x fine"]
    past = pushing.copy()
    past[12] = -0.01  # the fingertips past the object's centre: do not push it on (or back)
    assert p.act(past) == 0
    aside = pushing.copy()
    aside[13] = -0.015  # the object turned 1.5 cm aside of the fingertips: align first
    assert p.act(aside) == FINE["-y fine"]
    at_rest = obs(x=0.0, goal_dx=0.1)
    at_rest[12] = 0.01  # object and arm at rest, fingertips behind: the strike pose, but this episode creeps
    assert p.act(at_rest) == FINE["+x fine"]
    done = obs(x=0.095, goal_dx=0.005)
    assert p.act(done) == 0  # within creep_stop (1 cm) of the goal: hold
    far = obs(x=-0.1, goal_dx=0.3)  # a new episode (a new goal) 30 cm ahead: beyond creep_first, strike
    assert p.act(far) in STRIKES
    assert StrikePlanner(TABLE, STRIKES, LAYOUT, approach=FINE, n_actions=17).act(start) in STRIKES  # off


def test_creep_follow_takes_over_after_a_strike_that_stops_short() -> None:
    p = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=FINE, n_actions=17, creep_follow=0.1)
    assert p.act(obs(x=-0.1, goal_dx=0.5)) in STRIKES  # 50 cm: strike
    sliding = obs(x=0.2, goal_dx=0.2, moving=True)
    assert p.act(sliding) == 0  # still sliding: no creep yet (chase is off: hold)
    short = obs(x=0.32, goal_dx=0.08)  # the same goal (x = 0.4)
    short[12] = 0.01  # at rest 8 cm short, within creep_follow, fingertips behind it
    assert p.act(short) == FINE["+x fine"]
    too_far = StrikePlanner(TABLE, STRIKES, LAYOUT, approach=FINE, n_actions=17, creep_follow=0.05)
    too_far.act(obs(x=-0.1, goal_dx=0.5))
    assert too_far.act(short) in STRIKES  # 8 cm > 5 cm: a follow-up strike from the pose instead


def test_creep_credit_prefers_the_strike_that_leaves_the_object_short_for_the_creep() -> None:
    # goal 40 cm ahead, 4 cm window: the fastest strike lands on A and overshoots B (share 0.5); the
    # middle one leaves A 8 cm and B 6 cm short, both within creep_follow; the slowest 30 cm short
    table = np.array([[0.10, 0.32, 0.40], [0.10, 0.34, 0.60]])
    kw = {"approach": FINE, "n_actions": 17, "creep_follow": 0.1, "window": 0.04}
    start = obs(x=-0.1, goal_dx=0.4)
    choose = [StrikePlanner(table, STRIKES, LAYOUT, creep_credit=c, **kw).act(start) for c in (0.0, 0.4, 0.6)]  # type: ignore[arg-type]
    assert choose == [STRIKES[2], STRIKES[2], STRIKES[1]]  # credit x 1.0 of the posterior against 0.5


def test_creep_needs_fine_moves_refuses_bad_distances_and_survives_save_and_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fine moves"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, approach=APPROACH, creep_first=0.2)
    with pytest.raises(ValueError, match="fine moves"):
        StrikePlanner(TABLE, STRIKES, LAYOUT, creep_follow=0.1)
    for bad in (
        {"creep_first": -0.1},
        {"creep_follow": float("nan")},
        {"creep_stop": -0.01},
        {"creep_credit": 2.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            StrikePlanner(TABLE, STRIKES, LAYOUT, approach=FINE, n_actions=17, **bad)  # type: ignore[arg-type]
    kw = {"creep_first": 0.22, "creep_follow": 0.1, "creep_stop": 0.02, "creep_credit": 0.5}
    StrikePlanner(TABLE, STRIKES, LAYOUT, approach=FINE, n_actions=17, **kw).save(tmp_path)  # type: ignore[arg-type]
    loaded = StrikePlanner.load(tmp_path)
    assert (loaded.creep_first, loaded.creep_follow, loaded.creep_stop, loaded.creep_credit) == (
        0.22,
        0.1,
        0.02,
        0.5,
    )
