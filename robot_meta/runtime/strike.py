"""A few-shot strike planner for one-strike families (slide): a posterior over task particles.

numpy only. The table ``travel[m, s]`` holds a learned model's prediction of how far (along +x, in
metres) strike ``s`` sends the object on particle task ``m`` (particles are train-split tasks; the
table is built by `robot_meta.meta.strike.fit_strike_planner`). On the device:

- `observe` records the strike played from the start state and the object's travel until it
  rests or the episode terminates (with `approach`, only each episode's first strike); `end_episode`
  records a strike whose object still moves when the episode runs out of time as a censored travel
  (at least the distance so far); `adapt` (the control loop's background thread, at an episode's
  end) reweights the particles by each recorded travel's Gaussian likelihood
  ``N(observed; travel[m, s], sigma)`` (a censored one's upper tail), swapping the new weights in
  atomically;
- at an episode's start (object and arm at rest, the fingertips just behind the object) `act`
  plays the strike whose predicted travel lands within ``window`` of the goal for the largest
  posterior share of particles; every other step it holds, or, with `approach` (the default of a
  fit), moves the arm behind an object that rests short of the goal, where `act` strikes again.
  A fit's defaults refine that follow-up: the approach stops at the episode's start gap
  (`match_gap`), the follow-up is planned with the episode's first travel folded in (`in_episode`),
  the first strike earns `short_credit` for the share of particles it leaves short but within the
  arm's reach (an overshoot cannot be undone; a short strike is a probe), and follow-ups inform the
  posterior too (`record_follow_ups`); the approach starts while the struck object still slides
  (`chase`), and the short credit counts only stops from which a follow-up fits in the episode and
  lands (`follow_up_reach`: a two-strike plan per particle). Where the env has fine moves (push's
  0.5 cm), the planner also creeps: it pushes the object with the fingertips in contact to goals
  within `creep_first` instead of striking (no weak shove can undershoot those on a slippery or
  rolling object), and the rest of the way after a strike that stops within `creep_follow`
  (`creep_credit` scores the strikes that set that up).

    planner = StrikePlanner.load("exports/slide-strike")   # verifies the sha256 of its table
    a = planner.act(obs)
    planner.observe(obs, a, reward, next_obs, terminated)   # the shots: strikes and their travel
    planner.end_episode()                                    # at the time limit: a strike still in flight
    planner.adapt()                                          # the posterior moves (AdaptReport)
    planner.reset_adaptation()                               # back to the prior (a new task)

It is a device policy like `AdaptivePolicy` (``act``, ``observe``, ``adapt``, ``reset_adaptation``,
``n_actions``, ``adaptations``): `AdaptiveController`, `run_trials` and ``robot-meta adapt`` run it;
`load_device_policy` loads either from a directory.

BENCHMARKS.md ("Issue 16: the strike planner as a method, on the device", 2026-12-04) measures it on
slide's held-out tasks (against domain randomisation's 32 %).
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.runtime.manifest import sha256_file
from robot_meta.runtime.policy import AdaptReport, ObservationError, TransitionError

__all__ = [
    "FALL_DROP",
    "OFF_TABLE_TRAVEL",
    "REST_SPEED",
    "STRIKE_FILE",
    "STRIKE_FORMAT",
    "StrikeLayout",
    "StrikePlanner",
    "is_strike_planner_dir",
]

#: The travel (m) a strike that sends the object off the table counts as, in the model's training
#: targets and in the posterior's likelihood alike (beyond any goal: "too far").
OFF_TABLE_TRAVEL = 1.0
#: Object speed (m/s) below which a struck object counts as at rest (its travel is then read).
REST_SPEED = 0.02
#: A struck object whose height fell this far (m) below its start left the table.
FALL_DROP = 0.05

#: Travels below this (m) carry no scale information (a strike that hardly moved the object).
_MIN_TRAVEL = 0.02
#: The 1-step moves a follow-up strike's approach uses (`StrikePlanner.approach`).
APPROACH_MOVES = ("+x", "-x", "+y", "-y")
#: Optional finer moves of the same directions (push's 0.5 cm moves), used for the last `_FINE_ZONE` m.
FINE_MOVES = ("+x fine", "-x fine", "+y fine", "-y fine")
_FINE_ZONE = 0.03  # with FINE_MOVES: closer than this (m) to the approach's target, move finely
_AT_REST = 0.005  # object speed (m/s) below which it counts as at rest for a strike or an approach
_ARM_AT_REST = 0.02  # end-effector speed (m/s) below which the arm may strike
_POSE_X = 0.08  # the strike pose: the fingertips at most this far (m) behind the object ...
_POSE_Y = 0.01  # ... and at most this far aside
_ALIGNED_Y = 0.008  # the approach aligns the fingertips this well (< _POSE_Y) ...
_BEHIND_X = 0.05  # ... and stops this close behind the object (< _POSE_X): then it is the strike pose
_RESET_JUMP = 0.05  # the object moving back this far (m) between transitions marks a reset
_CHASE_MARGIN = 0.03  # with `chase`: keep this much (m) more than the strike gap behind a moving object

STRIKE_FILE = "strike_planner.npz"
STRIKE_FORMAT = 1
_META_FILE = "strike_planner.json"


def check_creep_settings(
    creep_first: float | None, creep_follow: float | None, creep_stop: float, creep_credit: float
) -> None:
    """ValueError naming the setting for a creep setting out of range (`StrikePlanner` and its fit's
    config both check with it)."""
    for name, dist in (("creep_first", creep_first), ("creep_follow", creep_follow)):
        if dist is not None and not (np.isfinite(dist) and dist > 0):
            raise ValueError(f"{name} must be None (off) or a positive distance (m), got {dist}")
    if not (np.isfinite(creep_stop) and creep_stop >= 0):
        raise ValueError(f"creep_stop must be a distance >= 0 (m), got {creep_stop}")
    if not (np.isfinite(creep_credit) and 0.0 <= creep_credit <= 1.0):
        raise ValueError(f"creep_credit must be in [0, 1], got {creep_credit}")


def _travel_table(travel: Any) -> np.ndarray:
    """`travel` as a float64 (particles, strikes) table; ValueError for another shape or a non-finite entry."""
    table = np.asarray(travel, np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
        raise ValueError(f"travel must be a (particles, strikes) table, got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise ValueError("travel has non-finite entries: refit the strike model")
    return table


def is_strike_planner_dir(directory: str | Path) -> bool:
    """Whether `directory` holds a saved strike planner (its metadata file)."""
    return (Path(directory) / _META_FILE).is_file()


_LAYOUT_FIELDS = ("ee_velocity", "object_position", "object_velocity", "goal_position", "object_minus_ee")


@dataclass(frozen=True)
class StrikeLayout:
    """Start offsets (in the observation vector) of the 3-vectors the planner reads."""

    ee_velocity: int
    object_position: int
    object_velocity: int
    goal_position: int
    object_minus_ee: int

    @classmethod
    def from_observation_layout(cls, layout: Sequence[tuple[str, int]]) -> StrikeLayout:
        """From an env's ``observation_layout`` ((name, size) pairs in order)."""
        offsets, pos = {}, 0
        for name, size in layout:
            offsets[name] = pos
            pos += int(size)
        missing = [f for f in _LAYOUT_FIELDS if f not in offsets]
        if missing:
            raise ValueError(
                f"the observation layout has no {missing}: the strike planner needs {_LAYOUT_FIELDS}"
            )
        return cls(**{f: offsets[f] for f in _LAYOUT_FIELDS})

    def end(self) -> int:
        """The smallest observation length that holds every field."""
        return max(getattr(self, f) for f in _LAYOUT_FIELDS) + 3


class StrikePlanner:
    """Posterior over particle tasks from observed strikes; the strike most likely to land, then hold."""

    def __init__(
        self,
        travel: np.ndarray,
        strikes: Sequence[int],
        layout: StrikeLayout,
        *,
        sigma: float = 0.04,
        window: float = 0.06,
        hold_action: int = 0,
        rest_speed: float = REST_SPEED,
        n_actions: int | None = None,
        env_id: str = "",
        train_distribution: Mapping[str, Any] | None = None,
        lateral: bool = False,
        scale_correction: float | None = None,
        approach: Mapping[str, int] | None = None,
        in_episode: bool = False,
        short_credit: float = 0.0,
        match_gap: bool = False,
        record_follow_ups: bool = False,
        reach_x: float | None = None,
        chase: bool = False,
        follow_up_reach: float | None = None,
        creep_first: float | None = None,
        creep_follow: float | None = None,
        creep_stop: float = 0.01,
        creep_credit: float = 0.0,
    ) -> None:
        travel = _travel_table(travel)
        if len(strikes) != travel.shape[1] or len(set(strikes)) != len(strikes):
            raise ValueError(
                f"strikes must be {travel.shape[1]} distinct action indices (one per table column), got {list(strikes)}"
            )
        for name, v in (("sigma", sigma), ("window", window), ("rest_speed", rest_speed)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number of metres (per second), got {v}")
        self.travel = travel
        self.strikes = [int(s) for s in strikes]
        self.layout = layout
        self.sigma, self.window = float(sigma), float(window)
        self.hold_action, self.rest_speed = int(hold_action), float(rest_speed)
        used = max(*self.strikes, self.hold_action) + 1
        self.n_actions = used if n_actions is None else int(n_actions)
        """Discrete actions of the env (the controller checks its fallback action against it)."""
        if self.n_actions < used or self.hold_action < 0 or min(self.strikes) < 0:
            raise ValueError(
                f"n_actions={self.n_actions}: the strikes {self.strikes} and hold action {self.hold_action} "
                "must be actions in [0, n_actions)"
            )
        self.env_id = str(env_id)
        """The env the table was fitted on ('' if unknown)."""
        self.train_distribution = dict(train_distribution) if train_distribution else None
        """``TaskDistribution.to_dict()`` of the fit's task distribution (None if unknown)."""
        if scale_correction is not None and not (np.isfinite(scale_correction) and scale_correction >= 0):
            raise ValueError(
                f"scale_correction must be None (off) or a pseudo-count >= 0, got {scale_correction}"
            )
        self.lateral = bool(lateral)
        """Land within `window` of the goal in the plane (the lateral offset, which a strike along +x
        cannot change, narrows the window along x), instead of along x only."""
        self.scale_correction = None if scale_correction is None else float(scale_correction)
        """None: plan with the particles' predicted travel. A pseudo-count c >= 0: scale each particle's
        on-table travel by exp(sum of the observed log travel ratios / (observations + c)), so the shots
        also correct the model's error on this task (c = 0: the full observed ratio)."""
        if approach is not None and set(approach) not in (
            set(APPROACH_MOVES),
            set(APPROACH_MOVES + FINE_MOVES),
        ):
            raise ValueError(
                f"approach must map each of {APPROACH_MOVES} (and optionally each of {FINE_MOVES}) to an action, "
                f"got {dict(approach)}"
            )
        self.approach = None if approach is None else {k: int(v) for k, v in approach.items()}
        """None: one strike per episode, then hold. Else the actions of the 1-step moves ``+x``, ``-x``,
        ``+y``, ``-y``: when the object rests short of the goal the arm moves behind it and strikes
        again (the follow-up strike is planned like the first; only each episode's first strike is
        recorded for the posterior)."""
        self.in_episode = bool(in_episode)
        """Plan a follow-up strike with the posterior times the likelihood of this episode's earlier
        strikes (their travel read from where the object rests now); `act` alone keeps that memory,
        so it also holds in episodes nothing is observed in. The posterior itself is not changed."""
        if not (np.isfinite(short_credit) and 0.0 <= short_credit <= 1.0):
            raise ValueError(f"short_credit must be in [0, 1], got {short_credit}")
        self.short_credit = float(short_credit)
        """With `approach`: a strike also scores this much per unit of posterior share whose travel
        stops short of the window (a follow-up can still land those; an overshoot cannot be undone)."""
        self.match_gap = bool(match_gap)
        """With `approach`: stop the approach at the episode's start gap between fingertips and object
        (read at its first strike) instead of at a fixed distance, so a follow-up strikes from the
        pose the travel table was fitted from."""
        if reach_x is not None and not np.isfinite(reach_x):
            raise ValueError(f"reach_x must be None or a finite x (m), got {reach_x}")
        self.reach_x = None if reach_x is None else float(reach_x)
        """The end effector's furthest x (m), or None (unknown): `short_credit` then counts only the
        strikes whose object stops where the arm can still get behind it (at its start gap)."""
        self.record_follow_ups = bool(record_follow_ups)
        """Record every strike played from the strike pose for the posterior, follow-ups included
        (else only each episode's first)."""
        if follow_up_reach is not None and not np.isfinite(follow_up_reach):
            raise ValueError(f"follow_up_reach must be None or a finite x (m), got {follow_up_reach}")
        self.follow_up_reach = None if follow_up_reach is None else float(follow_up_reach)
        """None, or the furthest x (m) where an object may come to rest for a follow-up strike to fit in
        the episode: `short_credit` then counts only the particles on which the strike leaves the object
        short, at or before this x, and some strike from there lands (a two-strike plan for the particle)."""
        self.chase = bool(chase)
        """With `approach`: start the approach while the struck object still slides (staying
        `_CHASE_MARGIN` further behind it than the strike gap until it rests), instead of holding
        until it rests; the episode's time, not the rule, was what most follow-ups ran out of."""
        check_creep_settings(creep_first, creep_follow, creep_stop, creep_credit)
        if (creep_first is not None or creep_follow is not None) and (
            self.approach is None or not set(FINE_MOVES) <= set(self.approach)
        ):
            raise ValueError(
                f"creep_first / creep_follow push with the fine moves: approach must map {FINE_MOVES} too"
            )
        self.creep_first = None if creep_first is None else float(creep_first)
        """None, or the goal distance (m) up to which an episode starts by creeping (pushing the object
        with the fine moves, fingertips in contact, until it is `creep_stop` short of the goal)
        instead of striking: a push no shove can undershoot, for goals a weak shove overshoots."""
        self.creep_follow = None if creep_follow is None else float(creep_follow)
        """None, or the goal distance (m) up to which an object resting short after a strike is crept
        the rest of the way instead of struck again."""
        self.creep_stop = float(creep_stop)
        """How far (m) short of the goal a creeping push stops (the object coasts on a little)."""
        self.creep_credit = float(creep_credit)
        """With `creep_follow`: a strike also scores this much per unit of posterior share it leaves
        short within `creep_follow` of the goal (where the creep takes over), instead of `short_credit`
        where that is larger."""
        self._ep_creep = False  # this episode creeps (it never strikes again once it started)
        self._ep_goal: np.ndarray | None = None  # `act`'s episode memory: the goal it was planned for,
        self._ep_strikes: list[tuple[int, float]] = []  # ... its strikes (column, object x at the strike)
        self._ep_gap: float | None = None  # ... and the fingertip-object gap (x) at its first strike
        self._first_done = False  # this episode's first strike is recorded (follow-ups are not)
        self._last_x: float | None = None  # the object's x at the latest transition (resets move it back)
        self._state = (np.zeros(travel.shape[0]), np.zeros(travel.shape[0]))  # (log weights, log-ratio sums)
        self._ratios = 0  # observations in the log-ratio sums
        self._pending: tuple[int, float, float] | None = None  # (strike column, x0, z0) of a strike in flight
        # (x, z) of the object in flight at the latest transition
        self._seen: tuple[float, float] = (0.0, 0.0)
        # (strike column, travel, censored) recorded, not yet adapted on
        self._outcomes: list[tuple[int, float, bool]] = []
        self._lock = threading.Lock()
        self.observed = 0
        """Strike outcomes the posterior holds (since load or the last `reset_adaptation`)."""
        self.adaptations = 0
        """`adapt` calls that moved the posterior."""

    @property
    def log_weights(self) -> np.ndarray:
        """Unnormalised log posterior weights of the particles (max 0)."""
        return self._state[0]

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles carry no lock
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- observation helpers -------------------------------------------------------------------
    def _vec(self, obs: np.ndarray, field: str) -> np.ndarray:
        i = getattr(self.layout, field)
        return obs[i : i + 3]

    def _check(self, obs: Any, what: str) -> np.ndarray:
        x = np.asarray(obs, np.float64)
        if x.ndim != 1 or x.shape[0] < self.layout.end():
            raise ObservationError(
                f"{what} must be a 1-D observation of at least {self.layout.end()} values, got shape {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ObservationError(f"{what} has non-finite values: check the sensor driver")
        return x

    def at_start(self, obs: np.ndarray) -> bool:
        """Object and arm at rest, the fingertips just behind (-x) the object: where a strike is played."""
        return self._at_start(self._check(obs, "obs"))

    def _at_start(self, x: np.ndarray) -> bool:  # `at_start` on a checked observation
        rel = self._vec(x, "object_minus_ee")
        return bool(
            np.linalg.norm(self._vec(x, "object_velocity")) < _AT_REST
            and np.linalg.norm(self._vec(x, "ee_velocity")) < _ARM_AT_REST
            and 0.0 < rel[0] < _POSE_X
            and abs(rel[1]) < _POSE_Y
        )

    # -- the device rule -----------------------------------------------------------------------
    def posterior(self) -> np.ndarray:
        """Normalised particle weights."""
        w = np.exp(self.log_weights - self.log_weights.max())
        out: np.ndarray = w / w.sum()
        return out

    def planned_travel(self, corrected: bool = True) -> np.ndarray:
        """The table the strike is chosen from: `travel`, with each particle's on-table entries scaled
        by its correction from the shots when `scale_correction` is set (and `corrected`)."""
        if self.scale_correction is None or not corrected or not self._ratios:
            return self.travel
        scale = np.exp(self._state[1] / (self._ratios + self.scale_correction))
        on_table = self.travel < OFF_TABLE_TRAVEL
        out: np.ndarray = np.where(on_table, self.travel * scale[:, None], self.travel)
        return out

    def landing_share(
        self,
        need: float,
        weights: np.ndarray | None = None,
        lateral_offset: float = 0.0,
        corrected: bool = True,
    ) -> np.ndarray:
        """Per strike, the share of particles (by `weights`, default the posterior) whose planned travel
        is within `window` of `need` (with `lateral`: within `window` of the goal in the plane, the
        object's lateral offset from it being `lateral_offset`)."""
        w = self.window
        if self.lateral:
            w = math.sqrt(max(w * w - float(lateral_offset) ** 2, 0.0))
        hit = np.abs(self.planned_travel(corrected) - float(need)) < w
        out: np.ndarray = (self.posterior() if weights is None else weights) @ hit
        return out

    def act(self, obs: np.ndarray) -> int:
        """At the start state the strike most likely to land on the goal; otherwise the hold action."""
        return self._act(obs, self.posterior())

    def act_prior(self, obs: np.ndarray) -> int:
        """`act` with adaptation switched off: every strike, follow-ups included, planned from the
        prior (uniform weights, no correction, nothing of this episode folded in); changes no posterior."""
        return self._act(obs, np.full(self.travel.shape[0], 1.0 / self.travel.shape[0]), False, False)

    def with_table(self, travel: np.ndarray) -> StrikePlanner:
        """This planner over other particles: the same rule and settings, the table `travel` (one row per
        particle, one column per strike), at its prior. A table of one row is a planner that knows the
        task (`robot_meta.meta.strike.privileged_planner`)."""
        travel = _travel_table(travel)
        if travel.shape[1] != len(self.strikes):
            raise ValueError(
                f"travel must be a (particles, {len(self.strikes)}) table, got shape {travel.shape}"
            )
        out = copy.deepcopy(self)
        out.travel = travel
        out.reset_adaptation()
        return out

    def without_adaptation(self) -> StrikePlanner:
        """A copy at the prior whose `act` is `act_prior` (the device's ``--no-adapt`` arm: no belief
        moves, neither across episodes nor, with `in_episode`, within one)."""
        out = copy.deepcopy(self)
        out.reset_adaptation()
        out.in_episode = False
        return out

    def _act(self, obs: np.ndarray, weights: np.ndarray, corrected: bool = True, fold: bool = True) -> int:
        x = self._check(obs, "obs")
        goal, pos = self._vec(x, "goal_position"), self._vec(x, "object_position")
        if self._ep_goal is None or np.abs(goal - self._ep_goal).max() > 1e-4:  # a new episode (new goal)
            self._ep_goal, self._ep_strikes, self._ep_gap = goal.copy(), [], None
            self._ep_creep = False
        gap, need = float(self._vec(x, "object_minus_ee")[0]), float(goal[0] - pos[0])
        creep = self._creep(x, need)
        if creep is not None:
            return creep
        if not self._at_start(x) or (self.match_gap and self._ep_strikes and gap > self._behind()):
            return self._follow_up(x, need)  # (with match_gap: not yet at the gap)
        px = float(pos[0])
        if self._ep_strikes and abs(self._ep_strikes[-1][1] - px) < 1e-3:  # asked again before striking
            self._ep_strikes.pop()
        if fold and self.in_episode and self._ep_strikes:  # fold in this episode's earlier strikes' travel
            cols = np.array([c for c, _ in self._ep_strikes])
            log_l = -self._misfit(cols, px - np.array([x0 for _, x0 in self._ep_strikes]))
            w = weights * np.exp(log_l - log_l.max())
            weights = w / w.sum() if w.sum() > 0 else weights
        share = self.landing_share(need, weights, float(goal[1] - pos[1]), corrected)
        if self.approach is not None and (self.short_credit > 0.0 or self.creep_credit > 0.0):
            travel = self.planned_travel(corrected)
            short = travel < need - self.window
            creepable = short & (need - travel <= (self.creep_follow or 0.0))
            if self.reach_x is not None:  # a follow-up needs the arm behind the resting object
                short &= px + travel - gap <= self.reach_x
            if self.follow_up_reach is not None:  # a two-strike plan: the follow-up fits in time and lands
                rest_need = need - travel  # per (particle, strike): the goal's distance from where it rests
                lands = (np.abs(travel[:, None, :] - rest_need[:, :, None]) < self.window).any(axis=2)
                short &= (px + travel <= self.follow_up_reach) & lands
            credit = np.maximum(self.short_credit * short, self.creep_credit * creepable)
            share = share + weights @ credit
        col = int(np.argmax(share))
        if self._ep_gap is None:
            self._ep_gap = gap
        self._ep_strikes.append((col, px))
        return self.strikes[col]

    def _creep(self, x: np.ndarray, need: float) -> int | None:
        """The creeping push's action, or None when this step is not (or not yet) a creep: an episode
        starts creeping at the strike pose when the goal is within `creep_first`, or after a strike once
        the object rests short within `creep_follow`; it then pushes +x with the fine moves (aligning
        aside first) until the object is `creep_stop` short of the goal, and holds."""
        if not self._ep_creep:
            if self._ep_strikes:
                limit = self.creep_follow
                ready = bool(np.linalg.norm(self._vec(x, "object_velocity")) < _AT_REST)
            else:
                limit, ready = self.creep_first, self._at_start(x)
            if limit is None or not ready or not self.creep_stop < need <= limit:
                return None
            self._ep_creep = True
        assert self.approach is not None
        rel = self._vec(x, "object_minus_ee")
        if need <= self.creep_stop or rel[0] <= 0.0:
            return self.hold_action
        if abs(rel[1]) > _ALIGNED_Y:
            return self.approach["+y fine" if rel[1] > 0 else "-y fine"]
        return self.approach["+x fine"]

    def _misfit(self, cols: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Per particle, minus the log Gaussian likelihood (up to a constant) of the travels `seen` after
        the strike columns `cols`: what `adapt` and the in-episode follow-up both weight by."""
        out: np.ndarray = 0.5 * (((self.travel[:, cols] - seen) / self.sigma) ** 2).sum(axis=1)
        return out

    def _censored_misfit(self, cols: np.ndarray, at_least: np.ndarray) -> np.ndarray:
        """Per particle, minus the log likelihood that the travels after strikes `cols` were `at_least`
        or more (a Gaussian's upper tail, ``Q((at_least - predicted) / sigma)``): near 0 for particles
        that predict further, growing like the squared shortfall for those that predict shorter."""
        z = (at_least - self.travel[:, cols]) / (self.sigma * math.sqrt(2.0))
        tail = np.vectorize(math.erfc, otypes=[np.float64])(np.minimum(z, 25.0))  # erfc(25) ~ 1e-274
        far = z > 25.0  # beyond float range: the tail's asymptote, log Q ~ -z^2 - log(2 z sqrt(pi))
        log_q = np.where(
            far, -(z**2) - np.log(2.0 * np.maximum(z, 1.0) * math.sqrt(math.pi)), np.log(0.5 * tail)
        )
        out: np.ndarray = -log_q.sum(axis=1)
        return out

    def _behind(self) -> float:
        """Where the approach stops (x gap, fingertips to object): with `match_gap` the episode's first
        strike's gap, within half a 1 cm move; else `_BEHIND_X`."""
        if self.match_gap and self._ep_gap is not None:
            return min(self._ep_gap + 0.005, _POSE_X - 0.005)
        return _BEHIND_X

    def _move(self, move: str, remaining: float) -> int:
        """The approach's action for `move` with `remaining` metres to go (fine near the target)."""
        assert self.approach is not None
        fine = move + " fine"
        return self.approach[fine if remaining < _FINE_ZONE and fine in self.approach else move]

    def _follow_up(self, x: np.ndarray, need: float) -> int:
        """Away from the strike pose: hold, or (with `approach`) move behind an object that rests short."""
        moving = bool(np.linalg.norm(self._vec(x, "object_velocity")) >= _AT_REST)
        if self.approach is None or need <= self.window or (moving and not self.chase):
            return self.hold_action
        rel = self._vec(x, "object_minus_ee")
        if rel[0] <= 0.0:  # the fingertips are level with or past the object: do not push it back
            return self.hold_action
        behind = self._behind() + (_CHASE_MARGIN if moving else 0.0)
        if abs(rel[1]) > _ALIGNED_Y:
            move = "+y" if rel[1] > 0 else "-y"
            return self._move(move, abs(rel[1]) - _ALIGNED_Y)
        if rel[0] > behind:
            return self._move("+x", rel[0] - behind)
        return self.hold_action  # behind it: hold until the arm is at rest, then `act` strikes

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        """Feed one transition; a strike's travel, once the object rests, is recorded for `adapt`."""
        try:
            o, n = self._check(obs, "obs"), self._check(next_obs, "next_obs")
        except ObservationError as exc:
            raise TransitionError(f"transition refused: {exc}") from None
        try:
            r = float(reward)
        except (TypeError, ValueError):
            raise TransitionError(f"transition refused: reward {reward!r} is not a number") from None
        if not math.isfinite(r):
            raise TransitionError(f"reward must be finite, got {reward}")
        if (
            isinstance(action, bool)
            or not isinstance(action, int | np.integer)
            or not 0 <= action < self.n_actions
        ):
            raise TransitionError(
                f"transition refused: action {action!r} is not an int in [0, {self.n_actions})"
            )
        ox = float(self._vec(o, "object_position")[0])
        if self._last_x is not None and ox < self._last_x - _RESET_JUMP:  # a reset put the object back
            self.end_episode()  # (for a caller that did not say so: a strike in flight is kept, censored)
        self._last_x = float(self._vec(n, "object_position")[0])
        if int(action) in self.strikes and self._at_start(o) and not self._first_done:
            pos = self._vec(o, "object_position")
            self._pending = (self.strikes.index(int(action)), float(pos[0]), float(pos[2]))
            self._first_done = self.approach is not None and not self.record_follow_ups
        if self._pending is None:
            return
        pos = self._vec(n, "object_position")
        self._seen = (float(pos[0]), float(pos[2]))
        if terminated or np.linalg.norm(self._vec(n, "object_velocity")) < self.rest_speed:
            self._record(censored=False)
        if terminated:
            self._first_done = False

    def end_episode(self) -> None:
        """The episode ended without `observe` seeing ``terminated`` (the time limit, or the caller
        resets): a strike whose object is still moving is recorded as a *censored* travel, at least
        the distance it covered so far (or off the table if it is falling), so `adapt` still learns
        from it: a rolling object that outruns the episode is the shot that says the most about a
        slippery or downhill task. Nothing in flight: nothing happens. The control loop and the K-shot
        protocol call it at every episode's end, before `adapt`."""
        if self._pending is not None:
            self._record(censored=True)
        self._first_done = False

    def _record(self, censored: bool) -> None:
        """Move the strike in flight to the outcomes `adapt` reads, its travel read at the latest
        transition (exact, or with `censored` a lower bound unless the object left the table)."""
        assert self._pending is not None
        col, x0, z0 = self._pending
        x, z = self._seen
        fell = z < z0 - FALL_DROP  # off the table
        travel = OFF_TABLE_TRAVEL if fell else x - x0
        with self._lock:
            self._outcomes.append((col, travel, censored and not fell))
        self._pending = None

    def adapt(self) -> AdaptReport:
        """Reweight the particles by the strikes recorded since the last call; the new weights are
        swapped in atomically (the next `act` plans with them). ``loss_before`` / ``loss_after``: the
        recorded travels' mean squared error (m^2) under the old and the new posterior mean."""
        t0 = time.perf_counter()
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return AdaptReport(
                "posterior", 0, 0, math.nan, math.nan, False, False,
                "no strike has come to rest since the last adaptation", time.perf_counter() - t0,
            )  # fmt: skip
        cols = np.array([c for c, _, _ in outcomes])
        seen = np.array([t for _, t, _ in outcomes])
        censored = np.array([c for _, _, c in outcomes], bool)
        w_before = self.posterior()
        log_w = self.log_weights - self._misfit(cols[~censored], seen[~censored])
        if censored.any():
            log_w = log_w - self._censored_misfit(cols[censored], seen[censored])
        log_w -= log_w.max()
        w_after = np.exp(log_w)
        w_after /= w_after.sum()
        ratios = self._state[1]
        if self.scale_correction is not None:  # log(observed / predicted) where both stayed on the table
            pred = self.travel[:, cols]
            ok = (
                ~censored
                & (pred < OFF_TABLE_TRAVEL)
                & (pred > _MIN_TRAVEL)
                & (seen > _MIN_TRAVEL)
                & (seen < OFF_TABLE_TRAVEL)
            )
            ratios = ratios + np.where(
                ok, np.log(np.maximum(seen, _MIN_TRAVEL) / np.maximum(pred, _MIN_TRAVEL)), 0.0
            ).sum(1)
            self._ratios += int(np.sum((seen > _MIN_TRAVEL) & (seen < OFF_TABLE_TRAVEL)))

        def mse(w: np.ndarray) -> float:
            return float(np.mean((w @ self.travel[:, cols] - seen) ** 2))

        self._state = (log_w, ratios)  # one reference swap: `act` reads either the old or the new state
        self.observed += len(outcomes)
        self.adaptations += 1
        return AdaptReport(
            "posterior", len(outcomes), len(outcomes), mse(w_before), mse(w_after), False, True, "",
            time.perf_counter() - t0,
        )  # fmt: skip

    def reset_adaptation(self) -> None:
        """Back to the prior (uniform over the particles): call it for a new object or surface."""
        with self._lock:
            self._outcomes = []
        self._state = (np.zeros(self.travel.shape[0]), np.zeros(self.travel.shape[0]))
        self._ratios = 0
        self._pending = None
        self._first_done, self._last_x = False, None
        self._ep_goal, self._ep_strikes, self._ep_gap = None, [], None
        self._ep_creep = False
        self.observed = 0
        self.adaptations = 0

    # -- files ---------------------------------------------------------------------------------
    def save(self, directory: str | Path, provenance: Mapping[str, Any] | None = None) -> Path:
        """Write ``directory/strike_planner.npz`` and its metadata (with its sha256), each atomically."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        table = d / STRIKE_FILE
        tmp = d / (STRIKE_FILE + ".tmp.npz")
        np.savez(tmp, travel=self.travel, strikes=np.asarray(self.strikes, np.int64))
        os.replace(tmp, table)
        meta = {
            "format": STRIKE_FORMAT,
            "sha256": sha256_file(table),
            "layout": {f: getattr(self.layout, f) for f in _LAYOUT_FIELDS},
            "sigma": self.sigma,
            "window": self.window,
            "hold_action": self.hold_action,
            "rest_speed": self.rest_speed,
            "lateral": self.lateral,
            "scale_correction": self.scale_correction,
            "approach": self.approach,
            "in_episode": self.in_episode,
            "short_credit": self.short_credit,
            "match_gap": self.match_gap,
            "record_follow_ups": self.record_follow_ups,
            "reach_x": self.reach_x,
            "chase": self.chase,
            "follow_up_reach": self.follow_up_reach,
            "creep_first": self.creep_first,
            "creep_follow": self.creep_follow,
            "creep_stop": self.creep_stop,
            "creep_credit": self.creep_credit,
            "n_actions": self.n_actions,
            "env_id": self.env_id,
            "train_distribution": self.train_distribution,
            "provenance": dict(provenance or {}),
        }
        tmp_meta = d / (_META_FILE + ".tmp")
        tmp_meta.write_text(json.dumps(meta, indent=2))
        os.replace(tmp_meta, d / _META_FILE)
        return table

    @classmethod
    def load(cls, directory: str | Path) -> StrikePlanner:
        """Load a saved planner; a missing file, another format or a changed table is refused."""
        d = Path(directory)
        meta_path, table = d / _META_FILE, d / STRIKE_FILE
        if not meta_path.is_file() or not table.is_file():
            raise FileNotFoundError(
                f"{d} holds no strike planner ({_META_FILE} and {STRIKE_FILE}): save one first"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != STRIKE_FORMAT:
            raise ValueError(
                f"{meta_path}: format {meta.get('format')!r}, this runtime reads {STRIKE_FORMAT}"
            )
        if sha256_file(table) != meta.get("sha256"):
            raise ValueError(
                f"{table} does not match the sha256 in {meta_path}: the file is corrupt or was changed"
            )
        with np.load(table) as z:
            travel, strikes = z["travel"], [int(s) for s in z["strikes"]]
        return cls(
            travel,
            strikes,
            StrikeLayout(**{f: int(meta["layout"][f]) for f in _LAYOUT_FIELDS}),
            sigma=meta["sigma"],
            window=meta["window"],
            hold_action=meta["hold_action"],
            rest_speed=meta["rest_speed"],
            n_actions=meta.get("n_actions"),
            lateral=bool(meta.get("lateral", False)),
            scale_correction=meta.get("scale_correction"),
            approach=meta.get("approach"),
            in_episode=bool(meta.get("in_episode", False)),
            short_credit=float(meta.get("short_credit", 0.0)),
            match_gap=bool(meta.get("match_gap", False)),
            record_follow_ups=bool(meta.get("record_follow_ups", False)),
            reach_x=meta.get("reach_x"),
            chase=bool(meta.get("chase", False)),
            follow_up_reach=meta.get("follow_up_reach"),
            creep_first=meta.get("creep_first"),
            creep_follow=meta.get("creep_follow"),
            creep_stop=float(meta.get("creep_stop", 0.01)),
            creep_credit=float(meta.get("creep_credit", 0.0)),
            env_id=meta.get("env_id", ""),
            train_distribution=meta.get("train_distribution"),
        )
