"""Fit the few-shot strike planner (`robot_meta.runtime.strike.StrikePlanner`) for a one-strike family.

1. `collect_first_strikes`: random first strikes on fresh train-split tasks, one per task from the
   env's start state, then the hold action until the object rests (the goal moved out of reach, so
   no success ends the episode early); the input is (task parameters, strike column / (S - 1)), the
   target the object's travel along +x (`OFF_TABLE_TRAVEL` if it leaves the table).
2. A small MLP regresses travel on those inputs (plain MSE, Adam).
3. The planner's table: the MLP's prediction for `particles` train-split tasks x every strike.

`fit_strike_run` also saves the MLP in numpy (`TravelModel`, ``travel_model.npz``): with a task's true
parameters it gives `privileged_planner`, the same planner over that one task (the privileged oracle
of the planner, the yardstick the few shots are measured against).

    planner, info = fit_strike_planner(StrikePlannerConfig(seed=0))
    planner.save("exports/slide-strike", provenance=info)

    planner, info = fit_strike_run(strike_config("full", seed=0), "runs/slide-strike")  # resumable

``robot-meta train --algo strike-planner --env robot_meta/PandaSlide-v0 --budget full --out DIR``
runs `fit_strike_run`; ``robot-meta adapt DIR`` and ``robot-meta evaluate DIR`` take its directory.

BENCHMARKS.md ("Issue 16: the strike planner as a method, on the device", 2026-12-04) has its figures.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from robot_meta.runtime.strike import (
    FALL_DROP,
    FINE_MOVES,
    OFF_TABLE_TRAVEL,
    REST_SPEED,
    StrikeLayout,
    StrikePlanner,
    check_creep_settings,
)

__all__ = [
    "FIT_FILE",
    "TRAVEL_MODEL_FILE",
    "STRIKE_ALGO",
    "STRIKE_BUDGETS",
    "STRIKE_ORACLE",
    "StrikeData",
    "StrikeFitMismatchError",
    "StrikePlannerConfig",
    "TravelModel",
    "approach_actions",
    "collect_first_strikes",
    "fit_strike_planner",
    "fit_strike_run",
    "privileged_planner",
    "strike_columns",
    "strike_config",
]

log = logging.getLogger(__name__)

#: Where the goal is moved while collecting: behind the start, out of any strike's reach.
_FAR_GOAL = (-0.3, 0.25, 0.0)
#: The method's name (``robot-meta train --algo``, the K-shot cell).
STRIKE_ALGO = "strike-planner"
#: The name of its privileged oracle (`privileged_planner`) in evaluations and the K-shot table.
STRIKE_ORACLE = "strike-oracle"
#: `StrikePlannerConfig` overrides per budget: smoke = seconds (checks the machinery), small = about
#: a CPU-minute, full = the defaults (about 3 CPU-minutes, the figures in BENCHMARKS.md).
STRIKE_BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": {"first_strikes": 40, "particles": 16, "fit_steps": 200},
    "small": {"first_strikes": 400, "particles": 256, "fit_steps": 2000},
    "full": {},
}
#: Written last into a fit's directory: the config, the fit's figures and CPU time (a complete fit).
FIT_FILE = "strike_fit.json"
#: The travel model of a fit, in numpy (`TravelModel`), beside the planner's table.
TRAVEL_MODEL_FILE = "travel_model.npz"


#: Values of the fields added after the first fits, for a saved fit that predates them (what it did).
_LEGACY_FIELDS: dict[str, Any] = {
    "lateral": False, "scale_correction": None, "follow_up": False, "in_episode": False, "match_gap": False,
    "short_credit": 0.0, "record_follow_ups": False, "chase": False,
    "follow_up_reach": None, "creep_first": None, "creep_follow": None, "creep_stop": 0.01,
    "creep_credit": 0.0,
}  # fmt: skip


class StrikeFitMismatchError(ValueError):
    """The directory holds a fit of another configuration."""


@dataclass(frozen=True)
class StrikePlannerConfig:
    """Sizes of one strike-planner fit."""

    env_id: str = "robot_meta/PandaSlide-v0"
    """A family whose discrete actions include strikes (velocity actions along +x)."""
    preset: str = "slide"
    """`TaskDistribution.preset` whose ``train`` split supplies the strikes and the particles."""
    first_strikes: int = 1300
    """Collected first strikes (one per fresh task): about what a `full` ContextDQN run sees."""
    particles: int = 512
    """Train-split tasks in the posterior's table."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the travel model."""
    fit_steps: int = 4000
    """Adam steps of the travel model."""
    batch_size: int = 128
    """Samples per Adam step."""
    lr: float = 1e-3
    """Adam learning rate."""
    sigma: float = 0.04
    """Likelihood std (m) of an observed travel around a particle's prediction."""
    window: float | None = None
    """A strike lands on a particle when its predicted travel is this close (m) to the goal's distance.
    None: the env's success radius less 1 cm (slide 0.06 m, the value it had before 2026-12-07; push
    0.04 m, where 0.06 m planned for misses: push, evaluation seeds 3-6, +6 points at K = 1, BENCHMARKS.md)."""
    lateral: bool = False
    """`StrikePlanner.lateral`: land within `window` of the goal in the plane, not along x only."""
    scale_correction: float | None = None
    """`StrikePlanner.scale_correction`: None, or the pseudo-count of the per-task travel correction."""
    follow_up: bool = True
    """`StrikePlanner.approach`: move behind an object that rests short of the goal and strike again
    (on by default since 2026-12-04: K = 0 / 1 +6 / +5 points on evaluation seeds 3-4, BENCHMARKS.md)."""
    in_episode: bool = True
    """`StrikePlanner.in_episode`: plan the follow-up with this episode's first travel folded in."""
    match_gap: bool = True
    """`StrikePlanner.match_gap`: the approach stops at the episode's start gap (the fitted pose)."""
    short_credit: float = 0.3
    """`StrikePlanner.short_credit`: the first strike also scores 0.3 per posterior share that stops short
    where the arm can still follow up (the env's end-effector limit, `StrikePlanner.reach_x`)."""
    record_follow_ups: bool = True
    """`StrikePlanner.record_follow_ups`: follow-up strikes (from the fitted pose) inform the posterior too.
    These four, with `follow_up`: K = 0 / 1 / 5 / 10 +27 / +10 / +5 / +3 points on evaluation seeds
    3-8 (BENCHMARKS.md, 2026-12-04, "the follow-up strike, refined")."""
    chase: bool = True
    """`StrikePlanner.chase`: the approach starts while the struck object still slides (3 cm further
    back until it rests) instead of after it rests: the arm's 1 cm moves cover about 0.5 cm a step,
    so waiting left most follow-ups out of time (slide, evaluation seeds 0-6: +3.6 points after the
    first shot, BENCHMARKS.md "Issues 16 and 17: the follow-up in time", 2026-12-07)."""
    follow_up_reach: float | None = 0.15
    """`StrikePlanner.follow_up_reach`: short credit only for particles on which the strike leaves the
    object at x <= 0.15 m (where a chasing arm gets behind it in time: about x = 0.09 m by step 30 of
    50) and some strike from there lands; None: credit every short stop within `reach_x` (the rule
    before 2026-12-07; slide, evaluation seeds 0-6: +4.5 points after the first shot on top of `chase`,
    BENCHMARKS.md "Issues 16 and 17: the follow-up in time")."""
    creep_first: float | None = 0.22
    """`StrikePlanner.creep_first`, where the env has fine moves (push; slide has none, so it is off
    there): an episode whose goal is within 0.22 m starts by creeping (pushing with the 0.5 cm moves,
    which cover about 0.22 m in the 50 steps) instead of striking. None: off. See `creep_follow`."""
    creep_follow: float | None = 0.1
    """`StrikePlanner.creep_follow` (where the env has fine moves): an object that rests short within
    0.1 m of the goal after a strike is crept the rest of the way. With `creep_first` and
    `creep_credit`: push, evaluation seeds 3-6, +6.5 points after the first shot (BENCHMARKS.md
    "Issue 16: push creeps, and a shot still moving at the time limit counts", 2026-12-07)."""
    creep_stop: float = 0.01
    """`StrikePlanner.creep_stop`: a creeping push stops this far (m) short of the goal."""
    creep_credit: float = 0.5
    """`StrikePlanner.creep_credit` (where the env has fine moves): a strike scores 0.5 per posterior
    share it leaves short within `creep_follow` of the goal, where the creep takes over."""
    settle_steps: int = 30
    """Hold steps after a collected strike, at most, for the object to come to rest."""
    seed: int = 0
    """Seeds the collection, the particles and the fit."""

    def __post_init__(self) -> None:
        for name in ("first_strikes", "particles", "fit_steps", "batch_size", "settle_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("lr", "sigma", "window"):
            if name == "window" and self.window is None:
                continue
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive layer widths, got {self.hidden}")
        if not (np.isfinite(self.short_credit) and 0.0 <= self.short_credit <= 1.0):
            raise ValueError(f"short_credit must be in [0, 1], got {self.short_credit}")
        if self.follow_up_reach is not None and not np.isfinite(self.follow_up_reach):
            raise ValueError(f"follow_up_reach must be None or a finite x (m), got {self.follow_up_reach}")
        check_creep_settings(self.creep_first, self.creep_follow, self.creep_stop, self.creep_credit)


@dataclass(frozen=True, eq=False)
class TravelModel:
    """The fitted travel model in numpy: how far (m, along +x) each strike sends the object on a task
    with given parameters (`OFF_TABLE_TRAVEL` stands for off the table), a ReLU MLP on
    ``((task.to_vector(), strike column / (S - 1)) - mean) / std``."""

    weights: tuple[np.ndarray, ...]
    """Layer weights, (in, out) each."""
    biases: tuple[np.ndarray, ...]
    mean: np.ndarray
    """Input normaliser: subtracted ..."""
    std: np.ndarray
    """... then divided by."""
    strikes: int
    """Strike columns (S)."""

    @classmethod
    def from_torch(cls, net: Any, mean: Any, std: Any, strikes: int) -> TravelModel:
        """From the fit's ``torch.nn.Sequential`` of Linear / ReLU layers and its normaliser."""
        import torch

        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        return cls(
            tuple(m.weight.detach().numpy().T.astype(np.float32) for m in linears),
            tuple(m.bias.detach().numpy().astype(np.float32) for m in linears),
            np.asarray(mean, np.float32),
            np.asarray(std, np.float32),
            int(strikes),
        )

    def table(self, tasks: Sequence[Any]) -> np.ndarray:
        """(len(tasks), S) travel table for `TaskParams` `tasks` (a planner's particles), float64."""
        n = self.strikes
        x = _table_inputs(tasks, n)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"tasks encode to {x.shape[1] - 1} parameters, the travel model was fitted on "
                f"{self.mean.shape[0] - 1}: refit it for this version of the task parameters"
            )
        h = (x - self.mean) / self.std
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h.reshape(len(tasks), n).astype(np.float64)

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/travel_model.npz`` atomically."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"mean": self.mean, "std": self.std, "strikes": np.int64(self.strikes)}
        arrays.update({f"w{i}": w for i, w in enumerate(self.weights)})
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        tmp = d / (TRAVEL_MODEL_FILE + ".tmp.npz")
        np.savez(tmp, **arrays)
        out = d / TRAVEL_MODEL_FILE
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> TravelModel:
        """Load a fit's travel model; a fit without one (saved before 2026-12-08) is refused with what to do."""
        path = Path(directory) / TRAVEL_MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: this strike-planner fit predates the saved travel model; refit it "
                "(train into a new directory, or move this one away)"
            )
        try:
            with np.load(path) as z:
                layers = sum(1 for k in z.files if k.startswith("w"))
                return cls(
                    tuple(z[f"w{i}"] for i in range(layers)),
                    tuple(z[f"b{i}"] for i in range(layers)),
                    z["mean"],
                    z["std"],
                    int(z["strikes"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(
                f"{path} is not a readable travel model ({exc}): refit the strike planner"
            ) from None


def _table_inputs(tasks: Sequence[Any], strikes: int) -> np.ndarray:
    """The travel model's inputs for every (task, strike column), task-major: ``(task.to_vector(),
    column / (S - 1))`` rows, float32 (the planner's table and `TravelModel.table` alike)."""
    cols = np.arange(strikes, dtype=np.float32) / max(strikes - 1, 1)
    vecs = np.asarray([t.to_vector() for t in tasks], np.float32).reshape(len(tasks), -1)
    return np.concatenate([np.repeat(vecs, strikes, axis=0), np.tile(cols, len(tasks))[:, None]], axis=1)


def privileged_planner(planner: StrikePlanner, model: TravelModel, task: Any) -> StrikePlanner:
    """`planner` over one particle, the travel `model` predicts for `task`'s true parameters: the
    privileged oracle of the planner (it knows the task instead of inferring it from shots; its
    follow-ups, creep and the rest of the rule are the planner's own)."""
    if model.strikes != len(planner.strikes):
        raise ValueError(
            f"the travel model predicts {model.strikes} strikes, the planner has {len(planner.strikes)}: "
            "use the model saved with this planner's fit"
        )
    return planner.with_table(model.table([task]))


def strike_columns(env: Any) -> list[int]:
    """The discrete action indices of an env's strikes (velocity actions), in order."""
    actions = getattr(env.unwrapped.task, "discrete_actions", ())
    strikes = [i for i, a in enumerate(actions) if getattr(a, "velocity", None) is not None]
    if not strikes:
        raise ValueError(f"{env.unwrapped.spec.id if env.unwrapped.spec else env}: no strike actions; "
                         "the strike planner is for families that strike (slide, push)")  # fmt: skip
    return strikes


def approach_actions(env: Any) -> dict[str, int]:
    """The discrete action indices of the env's 1-step moves along +x, -x, +y, -y (a follow-up
    strike's approach: the largest move of each direction), and ``"+x fine"`` ... ``"-y fine"`` (the
    smallest, where every direction has a smaller one too: push's 0.5 cm moves, which creep); ValueError
    if the env lacks a direction."""
    actions = getattr(env.unwrapped.task, "discrete_actions", ())
    want = {"+x": (1, 0), "-x": (-1, 0), "+y": (0, 1), "-y": (0, -1)}
    found: dict[str, list[tuple[float, int]]] = {name: [] for name in want}  # (step length, action)
    for i, a in enumerate(actions):
        move = getattr(a, "move", None)
        if getattr(a, "velocity", None) is not None or move is None or move[2] != 0:
            continue
        for name, (sx, sy) in want.items():
            if np.sign(move[0]) == sx and np.sign(move[1]) == sy and (move[0] or move[1]):
                found[name].append((float(np.hypot(move[0], move[1])), i))
    missing = sorted(name for name, moves in found.items() if not moves)
    if missing:
        raise ValueError(f"the env has no 1-step move along {missing}: follow_up needs all of +x, -x, +y, -y")
    out = {name: max(moves, key=lambda m: (m[0], -m[1]))[1] for name, moves in found.items()}
    if all(len({m[0] for m in moves}) > 1 for moves in found.values()):
        out.update({f"{name} fine": min(moves)[1] for name, moves in found.items()})
    return out


class StrikeData(NamedTuple):
    """What `collect_first_strikes` returns: the fit's samples and what the planner needs of the env."""

    inputs: np.ndarray
    """(task parameters, strike column / (S - 1)) per collected strike."""
    travel: np.ndarray
    """The object's travel along +x (m; `OFF_TABLE_TRAVEL` if it left the table)."""
    strikes: list[int]
    layout: StrikeLayout
    n_actions: int
    approach: dict[str, int] | None
    """The move actions of a follow-up strike (None without `cfg.follow_up`)."""
    reach_x: float | None
    """The end effector's furthest x (the env's limit; None without `cfg.follow_up`)."""
    success_radius: float
    """The env's success distance (m) between the object and the goal."""


def collect_first_strikes(cfg: StrikePlannerConfig) -> StrikeData:
    """`cfg.first_strikes` random first strikes and the env's layout, actions and reach."""
    import gymnasium as gym

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.envs import TaskDistribution

    env = gym.make(cfg.env_id, action_mode="discrete")
    try:
        u: Any = env.unwrapped
        strikes = strike_columns(env)
        n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
        approach = approach_actions(env) if cfg.follow_up else None
        reach_x = float(u.task.ee_high[0]) if cfg.follow_up else None
        radius = float(u.task.distance_threshold)
        layout = StrikeLayout.from_observation_layout(u.observation_layout)
        pos, vel = layout.object_position, layout.object_velocity
        rng = np.random.default_rng(cfg.seed)
        xs, ys = [], []
        for task in TaskDistribution.preset(cfg.preset).split("train").sample(cfg.first_strikes, rng):
            k = int(rng.integers(len(strikes)))
            obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)), options={"task": task})
            u.task.goal = np.array(_FAR_GOAL)
            x0, z0 = float(obs[pos]), float(obs[pos + 2])
            obs, _, term, trunc, _ = env.step(strikes[k])
            for _ in range(cfg.settle_steps):
                if term or trunc or np.linalg.norm(obs[vel : vel + 3]) < REST_SPEED:
                    break
                obs, _, term, trunc, _ = env.step(0)
            fell = float(obs[pos + 2]) < z0 - FALL_DROP
            xs.append(np.r_[task.to_vector(), k / max(len(strikes) - 1, 1)])
            ys.append(OFF_TABLE_TRAVEL if fell else float(obs[pos] - x0))
    finally:
        env.close()
    return StrikeData(
        np.asarray(xs, np.float32), np.asarray(ys, np.float32), strikes, layout, n_actions, approach, reach_x,
        radius,
    )  # fmt: skip


def fit_strike_planner(cfg: StrikePlannerConfig) -> tuple[StrikePlanner, dict[str, Any]]:
    """Collect, fit the travel model, and tabulate it on `cfg.particles` train-split tasks.

    Returns the planner and what a caller records beside it (the config, the strikes fitted, the
    travel model's RMSE on them in metres, and its learning curve: ``[Adam step, batch MSE]``)."""
    planner, info, _ = _fit(cfg)
    return planner, info


def _fit(cfg: StrikePlannerConfig) -> tuple[StrikePlanner, dict[str, Any], TravelModel]:
    """`fit_strike_planner`, and the travel model in numpy."""
    import torch

    from robot_meta.envs import TaskDistribution

    x, y, strikes, layout, n_actions, approach, reach_x, radius = collect_first_strikes(cfg)
    window = round(radius - 0.01, 6) if cfg.window is None else cfg.window
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    widths = [x.shape[1], *cfg.hidden]
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], 1))
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    curve: list[list[float]] = []  # [Adam step, batch MSE] every ~1 % of the fit: the report's learning curve
    every = max(1, cfg.fit_steps // 100)
    for step in range(cfg.fit_steps):
        idx = torch.randint(0, len(xt), (cfg.batch_size,), generator=g)
        loss = ((net((xt[idx] - mu) / sd).squeeze(-1) - yt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == cfg.fit_steps - 1:
            curve.append([step + 1, float(loss.detach())])
    rng = np.random.default_rng(cfg.seed + 1)
    tasks = TaskDistribution.preset(cfg.preset).split("train").sample(cfg.particles, rng)
    n = len(strikes)
    q = _table_inputs(tasks, n)
    with torch.inference_mode():
        table = net((torch.from_numpy(q) - mu) / sd).squeeze(-1).numpy().reshape(len(tasks), n)
        rmse = float(torch.sqrt((((net((xt - mu) / sd).squeeze(-1)) - yt) ** 2).mean()))
    log.info("strike planner: %d strikes fitted, train RMSE %.3f m, %d particles", len(x), rmse, len(tasks))
    fine = approach is not None and set(FINE_MOVES) <= set(approach)
    planner = StrikePlanner(
        table, strikes, layout, sigma=cfg.sigma, window=window, n_actions=n_actions, env_id=cfg.env_id,
        train_distribution=TaskDistribution.preset(cfg.preset).to_dict(), lateral=cfg.lateral,
        scale_correction=cfg.scale_correction, approach=approach, in_episode=cfg.follow_up and cfg.in_episode,
        match_gap=cfg.follow_up and cfg.match_gap, short_credit=cfg.short_credit if cfg.follow_up else 0.0,
        record_follow_ups=cfg.follow_up and cfg.record_follow_ups, reach_x=reach_x,
        chase=cfg.follow_up and cfg.chase, follow_up_reach=cfg.follow_up_reach if cfg.follow_up else None,
        creep_first=cfg.creep_first if fine else None, creep_follow=cfg.creep_follow if fine else None,
        creep_stop=cfg.creep_stop, creep_credit=cfg.creep_credit if fine else 0.0,
    )  # fmt: skip
    info = {"config": asdict(cfg), "first_strikes": len(x), "train_rmse_m": rmse, "fit_curve": curve}
    return planner, info, TravelModel.from_torch(net, mu, sd, n)


def strike_config(
    budget: str = "full",
    *,
    env_id: str | None = None,
    preset: str | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> StrikePlannerConfig:
    """The `StrikePlannerConfig` of a budget (`STRIKE_BUDGETS`) for an env, with `overrides` on top.

    `preset` defaults to the env's family; ValueError naming the problem for an unknown budget, env
    or field."""
    from robot_meta._registration import ENV_FAMILIES

    if budget not in STRIKE_BUDGETS:
        raise ValueError(f"unknown budget {budget!r}: choose one of {list(STRIKE_BUDGETS)}")
    kw: dict[str, Any] = dict(STRIKE_BUDGETS[budget])
    if env_id is not None:
        kw["env_id"] = env_id
        if preset is None:
            if env_id not in ENV_FAMILIES:
                raise ValueError(
                    f"unknown env {env_id!r}: choose one of {sorted(ENV_FAMILIES)} (or pass --preset)"
                )
            preset = ENV_FAMILIES[env_id]
    if preset is not None:
        kw["preset"] = preset
    names = {f.name for f in fields(StrikePlannerConfig)}
    unknown = sorted(set(overrides or {}) - names)
    if unknown:
        raise ValueError(f"unknown strike-planner field(s) {unknown}: choose from {sorted(names)}")
    kw.update(overrides or {})
    return StrikePlannerConfig(seed=seed, **kw)


def fit_strike_run(cfg: StrikePlannerConfig, out: str | Path) -> tuple[StrikePlanner, dict[str, Any]]:
    """Fit the planner into `out` and load it back from its files, as a controller does; a directory
    that holds a complete fit of the same config is loaded, not refitted (`StrikeFitMismatchError`
    for another config). ``info`` adds ``fit_cpu_seconds`` to `fit_strike_planner`'s."""
    d = Path(out)
    info_path = d / FIT_FILE
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        saved = info.get("config") if isinstance(info.get("config"), dict) else {}
        names = {f.name for f in fields(StrikePlannerConfig)}
        try:  # a fit saved before a field existed did what that field's legacy value does
            old = {**_LEGACY_FIELDS, **{k: v for k, v in saved.items() if k in names}}
            same = (
                asdict(StrikePlannerConfig(**old)) == json.loads(json.dumps(asdict(cfg)))
                and set(saved) <= names
            )
        except (TypeError, ValueError):
            same = False
        if not same:
            raise StrikeFitMismatchError(
                f"{d} holds a strike-planner fit of another configuration ({info_path}): pass a new --out, "
                "or the same budget, seed and overrides to load it"
            )
        log.info("strike planner: %s holds a complete fit; loading it", d)
        return StrikePlanner.load(d), info
    t0 = time.process_time()
    planner, info, model = _fit(cfg)
    info["fit_cpu_seconds"] = time.process_time() - t0
    planner.save(d, provenance=info)
    model.save(d)
    tmp = info_path.with_name(info_path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, info_path)  # written last: its presence marks a complete fit
    return StrikePlanner.load(d), info
