"""Diagnosis (issue 15/16): does a ContextDQN's outcome model pick better actions than its Q-values?

Loads a quick-loop run trained with ``outcome_weight > 0`` (``context_quickloop.py --out DIR``
keeps ``DIR/run``) and scores, on the same test tasks and K-shot protocol, acting greedily on

    Q(s, a, z) - w * distance(achieved(s) + predicted_shift(s, a, z), goal(s)) / OUTCOME_SCALE

for each weight ``w`` (0 = the run's own policy), with z from the encoder (as on the device) and
with the teacher's z of the true parameters. One JSON line per run goes to
``benchmarks/results/outcome_bonus.jsonl``.

    .venv/bin/python benchmarks/research/outcome_bonus.py /tmp/ql/s0/run --seed 0 --weights 0,10,1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from context_quickloop import PrivilegedZ, load_trainer
from rows import append_row, success_columns

from robot_meta.envs import TaskDistribution
from robot_meta.envs.goal import goal_distance
from robot_meta.meta import run_methods
from robot_meta.meta.context import OUTCOME_SCALE, ContextDQN
from robot_meta.meta.eval.adapters import ContextAdapter
from robot_meta.meta.eval.protocol import AdapterMethod
from robot_meta.meta.rollout import GymEnvFactory


def _bonus_q(trainer: ContextDQN, weight: float, obs: np.ndarray, z: torch.Tensor) -> np.ndarray:
    assert trainer.outcome is not None
    goals = trainer.outcome[0]
    x = torch.from_numpy(np.asarray(obs, np.float32))
    with torch.inference_mode():
        q = trainer.qnet(x, z).numpy().astype(np.float64)
        shift = trainer.outcome_shift(x, z).numpy()
    landed = np.asarray(obs)[goals.achieved][None, :] + shift
    d = goal_distance(
        landed.astype(np.float64), np.asarray(obs)[goals.goal][None, :].astype(np.float64), goals.planar
    )
    out: np.ndarray = q - weight * d / OUTCOME_SCALE
    return out


class EncoderBonus(ContextAdapter):
    def __init__(self, trainer: ContextDQN, weight: float) -> None:
        super().__init__(
            trainer.qnet, trainer.encoder, trainer.config.context_size, trainer.config.epsilon_end
        )
        self.trainer, self.weight = trainer, weight

    def _q(self, obs: np.ndarray, z: torch.Tensor) -> np.ndarray:
        return _bonus_q(self.trainer, self.weight, obs, z)


class PrivilegedBonus(PrivilegedZ):
    def __init__(self, trainer: ContextDQN, weight: float) -> None:
        super().__init__(trainer)
        self.trainer, self.weight = trainer, weight

    def _q(self, obs: np.ndarray, z: torch.Tensor) -> np.ndarray:
        return _bonus_q(self.trainer, self.weight, obs, z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--shots", default="0,1,3")
    ap.add_argument("--weights", default="0,10,1000")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.process_time()
    trainer = load_trainer(args.run_dir)
    if trainer.outcome is None:
        raise SystemExit(
            f"{args.run_dir} was trained without an outcome model: train with --set outcome_weight=1"
        )
    env_id = trainer.config.env_id
    family = trainer.config.preset or "slide"
    shots = tuple(int(k) for k in args.shots.split(","))
    protocol = dict(episodes=args.episodes, seeds=(args.seed,), num_tasks=args.tasks, progress=False)
    tasks = TaskDistribution.preset(family).split(args.split)
    methods = []
    for w in (float(x) for x in args.weights.split(",")):
        methods.append(
            AdapterMethod(f"encoder-w{w:g}", lambda _s, w=w: EncoderBonus(trainer, w), GymEnvFactory(env_id))
        )
    results = dict(run_methods(methods, tasks, shots=shots, control=False, **protocol))  # type: ignore[arg-type]
    priv = [
        AdapterMethod(
            f"privileged-w{w:g}", lambda _s, w=w: PrivilegedBonus(trainer, w), GymEnvFactory(env_id)
        )
        for w in (float(x) for x in args.weights.split(","))
    ]
    results.update(run_methods(priv, tasks, shots=(0,), control=False, **protocol))  # type: ignore[arg-type]
    row: dict[str, object] = {"run": str(args.run_dir), "seed": args.seed, "family": family}
    row.update(success_columns(results))
    row["cpu_s"] = round(time.process_time() - t0)
    append_row("outcome_bonus", row)


if __name__ == "__main__":
    main()
