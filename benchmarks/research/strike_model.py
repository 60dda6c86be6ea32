"""Diagnosis (issue 15/16): does a z-conditioned strike model, fitted on first strikes alone, choose
slide's first strike better than the ContextDQN's Q-values?

`travel_fit.py` showed that a plain regressor of the travel of a first strike, given the true task
parameters, picks a landing strike in 71-78 % of the quick loop's test episodes, where the DQN with the
true z picks one in 17-18 %. This script asks the question the device cares about: with the run's own
z (the teacher's z of the true parameters, and the encoder's z after K shots, as on the device), and
the chase left to the run's Q-network.

1. Collects N first strikes on fresh train-split tasks (one random strike each from the env's start
   state, then hold until the puck rests), and fits a 64x64 MLP (teacher z, strike) -> travel along +x.
2. Scores, by the package's K-shot protocol on the same test tasks, the run's policy as it is and the
   same policy whose first action of an episode (the start state: puck at rest just ahead of the
   fingertips) is the strike whose predicted travel is nearest the goal's distance, with z from the
   encoder and from the teacher.

3. The package's strike planner (``robot_meta.meta.strike``; the result, BENCHMARKS.md 2026-12-03, and
   its benchmark ``benchmarks/strike_planner.py``): no Q-network; a posterior over train-task
   particles reweighted by each shot's observed first-strike travel picks the strike, then the arm
   holds. ``--only-particles`` scores it (and the true-parameter planner) alone, with the paired
   no-adaptation control; ``--features params`` fits this script's travel model on the task
   parameters instead of the run's teacher z.

One JSON line per run goes to ``benchmarks/results/strike_model.jsonl``.

    .venv/bin/python benchmarks/research/strike_model.py /tmp/ql/u0/run --seed 0
    .venv/bin/python benchmarks/research/strike_model.py RUN --seed 0 --only-particles --features params \
        --tasks 8 --episodes 5 --shots 0,1,5,10
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from context_quickloop import PrivilegedZ, load_trainer
from rows import append_row, success_columns

from robot_meta.envs import TaskDistribution
from robot_meta.meta import run_methods
from robot_meta.meta.context import ContextDQN
from robot_meta.meta.eval.adapters import ContextAdapter, StrikeAdapter
from robot_meta.meta.eval.protocol import AdapterMethod
from robot_meta.meta.rollout import GymEnvFactory
from robot_meta.meta.strike import StrikePlannerConfig, fit_strike_planner

FAR = np.array([-0.3, 0.25, 0.0])
# OBJECT_LAYOUT offsets (robot_meta/envs/tasks/base.py)
EE_VEL, OBJ_POS, OBJ_VEL, GOAL, OBJ_MINUS_EE = (
    slice(3, 6),
    slice(6, 9),
    slice(13, 16),
    slice(19, 22),
    slice(22, 25),
)


def at_start(obs: np.ndarray) -> bool:
    """Slide's start state: puck and arm at rest, the fingertips just behind (-x) the puck."""
    rel = obs[OBJ_MINUS_EE]
    return bool(
        np.linalg.norm(obs[OBJ_VEL]) < 0.005
        and np.linalg.norm(obs[EE_VEL]) < 0.02
        and 0.0 < rel[0] < 0.08
        and abs(rel[1]) < 0.01
    )


class TravelModel:
    """(z, strike) -> travel along +x, a 64x64 MLP fitted by plain regression."""

    def __init__(self, x: np.ndarray, y: np.ndarray, steps: int = 4000, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        self.mu, self.sd = xt.mean(0), xt.std(0) + 1e-6
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(xt.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 1),
        )  # fmt: skip
        opt = torch.optim.Adam(self.net.parameters(), 1e-3)
        for _ in range(steps):
            idx = torch.randint(0, len(xt), (128,), generator=g)
            loss = ((self.net((xt[idx] - self.mu) / self.sd).squeeze(-1) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = self.net((torch.tensor(x) - self.mu) / self.sd).squeeze(-1).numpy()
        return out

    def travel(self, z: torch.Tensor, n_strikes: int) -> np.ndarray:
        k = torch.arange(n_strikes, dtype=torch.float32)[:, None] / max(n_strikes - 1, 1)
        x = torch.cat([z.reshape(1, -1).expand(n_strikes, -1), k], 1)
        with torch.inference_mode():
            out: np.ndarray = self.net((x - self.mu) / self.sd).squeeze(-1).numpy()
        return out


def collect(
    trainer: ContextDQN, n: int, seed: int, featurize: Callable[[Any], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """N random first strikes on fresh train tasks: inputs (task features, strike / 9), travel along +x."""
    env = gym.make(trainer.config.env_id, action_mode="discrete")
    u: Any = env.unwrapped
    strikes = [i for i, a in enumerate(u.task.discrete_actions) if a.label.startswith("strike")]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for task in TaskDistribution.preset("slide").split("train").sample(n, rng):
        k = int(rng.integers(len(strikes)))
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)), options={"task": task})
        u.task.goal = FAR.copy()  # out of reach: no success ends the episode early
        x0 = obs[OBJ_POS][:2].copy()
        obs, _, term, _, _ = env.step(strikes[k])
        for _ in range(30):
            if term or np.linalg.norm(obs[OBJ_VEL]) < 0.02:
                break
            obs, _, term, _, _ = env.step(0)
        xs.append(np.r_[featurize(task), k / max(len(strikes) - 1, 1)])
        ys.append(1.0 if term else float(obs[OBJ_POS][0] - x0[0]))  # off the table: far
    env.close()
    return np.asarray(xs, np.float32), np.asarray(ys, np.float32), strikes


class _Planner:
    model: TravelModel
    strikes: list[int]
    z: torch.Tensor
    planned: int
    hold: bool = False  # after the planned strike, hold (the no-op) instead of the Q-network's chase

    def _plan(self, obs: np.ndarray) -> int | None:
        if not at_start(obs):
            return 0 if self.hold and self.planned else None
        need = float(obs[GOAL][0] - obs[OBJ_POS][0])
        self.planned += 1
        return self.strikes[int(np.argmin(np.abs(self.model.travel(self.z, len(self.strikes)) - need)))]


class EncoderPlanner(_Planner, ContextAdapter):
    def __init__(
        self, trainer: ContextDQN, model: TravelModel, strikes: list[int], hold: bool = False
    ) -> None:
        ContextAdapter.__init__(
            self, trainer.qnet, trainer.encoder, trainer.config.context_size, trainer.config.epsilon_end
        )
        self.model, self.strikes, self.planned, self.hold = model, strikes, 0, hold

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        a = self._plan(obs)
        return ContextAdapter.act(self, obs, greedy) if a is None else a


class PrivilegedPlanner(_Planner, PrivilegedZ):
    featurize: Callable[[Any], np.ndarray] | None = None  # the planner's features of the true task

    def __init__(
        self, trainer: ContextDQN, model: TravelModel, strikes: list[int], hold: bool = False
    ) -> None:
        PrivilegedZ.__init__(self, trainer)
        self.model, self.strikes, self.planned, self.hold = model, strikes, 0, hold

    def begin(self, task: object, rng: np.random.Generator) -> None:
        super().begin(task, rng)
        self.plan_z = torch.from_numpy(self.featurize(task)) if self.featurize else self.z

    def _plan(self, obs: np.ndarray) -> int | None:
        z, self.z = self.z, self.plan_z
        try:
            return _Planner._plan(self, obs)
        finally:
            self.z = z

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        a = self._plan(obs)
        return PrivilegedZ.act(self, obs, greedy) if a is None else a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="evaluation seed (the quick loop's --seed)")
    ap.add_argument("--strikes", type=int, default=1300, help="first strikes to fit the model on")
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--shots", default="0,1,3")
    ap.add_argument("--split", default="test")
    ap.add_argument("--particles", type=int, default=512, help="train-task particles of the posterior")
    ap.add_argument("--sigma", type=float, default=0.04, help="travel likelihood std, m")
    ap.add_argument(
        "--features", choices=("teacher", "params"), default="teacher",
        help="travel model inputs: the run's teacher z of the true parameters, or the parameters",
    )  # fmt: skip
    ap.add_argument("--only-particles", action="store_true", help="score the particle planner alone")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.process_time()
    trainer = load_trainer(args.run_dir)
    if trainer.teacher is None or (trainer.config.preset or "slide") != "slide":
        raise SystemExit(f"{args.run_dir}: needs a slide ContextDQN run with a teacher")
    teacher = trainer.teacher

    def featurize(task: Any) -> np.ndarray:
        v = np.asarray(task.to_vector(), np.float32)
        if args.features == "params":
            return v
        with torch.inference_mode():
            out: np.ndarray = teacher(torch.from_numpy(v)).numpy().reshape(-1)
        return out

    PrivilegedPlanner.featurize = staticmethod(featurize) if args.features == "params" else None  # type: ignore[assignment]
    # the collection is most of the cost
    cache = args.run_dir / f"first_strikes_{args.features}_{args.strikes}_{args.seed}.npz"
    if cache.exists():
        d = np.load(cache)
        x, y, strikes = d["x"], d["y"], [int(i) for i in d["strikes"]]
    else:
        x, y, strikes = collect(trainer, args.strikes, 1000 + args.seed, featurize)
        np.savez(cache, x=x, y=y, strikes=np.asarray(strikes))
    model = TravelModel(x, y, seed=args.seed)
    t_fit = time.process_time() - t0
    env_id = trainer.config.env_id
    shots = tuple(int(k) for k in args.shots.split(","))
    protocol = dict(episodes=args.episodes, seeds=(args.seed,), num_tasks=args.tasks, progress=False)
    tasks = TaskDistribution.preset("slide").split(args.split)
    made: list[_Planner] = []

    def planner(cls: type, hold: bool) -> Any:
        def make(_s: Any) -> Any:
            made.append(cls(trainer, model, strikes, hold))
            return made[-1]

        return make

    f = GymEnvFactory(env_id)
    assert trainer.teacher is not None
    resid = float(np.sqrt(np.mean((model.predict(x) - y) ** 2)))
    # the posterior planner is the package's (`robot_meta.meta.strike`, `robot_meta.runtime.strike`);
    # rows before 2026-12-03 13:00 came from this script's first copy of it (same rule, its own fit)
    strike_planner, _ = fit_strike_planner(
        StrikePlannerConfig(
            first_strikes=args.strikes, particles=args.particles, sigma=args.sigma, seed=1000 + args.seed
        )
    )

    def particle(_s: Any) -> StrikeAdapter:
        return StrikeAdapter(strike_planner)

    methods = [AdapterMethod(f"particle-hold-s{args.sigma:g}", particle, f)]
    privileged = [AdapterMethod("privileged-planner-hold", planner(PrivilegedPlanner, True), f)]
    if not args.only_particles:
        methods += [
            AdapterMethod("encoder-dqn", lambda _s: ContextAdapter(
                trainer.qnet, trainer.encoder, trainer.config.context_size, trainer.config.epsilon_end), f),
            AdapterMethod("encoder-planner", planner(EncoderPlanner, False), f),
            AdapterMethod("encoder-planner-hold", planner(EncoderPlanner, True), f),
        ]  # fmt: skip
        privileged += [
            AdapterMethod("privileged-dqn", lambda _s: PrivilegedZ(trainer), f),
            AdapterMethod("privileged-planner", planner(PrivilegedPlanner, False), f),
        ]
    results = dict(run_methods(methods, tasks, shots=shots, control=True, **protocol))  # type: ignore[arg-type]
    results.update(run_methods(privileged, tasks, shots=(0,), control=False, **protocol))  # type: ignore[arg-type]
    row: dict[str, object] = {
        "run": str(args.run_dir), "seed": args.seed, "first_strikes": args.strikes,
        "features": args.features, "particles": args.particles, "sigma": args.sigma, "travel_model_rmse_m": round(resid, 4),
    }  # fmt: skip
    row.update(success_columns(results))
    row["planned_first_strikes"] = sum(m.planned for m in made)
    row["fit_cpu_s"] = round(t_fit)
    row["cpu_s"] = round(time.process_time() - t0)
    append_row("strike_model", row)


if __name__ == "__main__":
    main()
