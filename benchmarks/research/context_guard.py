"""Research (issue 16): a guard on the context policy's inferred z - keep the prior unless z explains the shots.

On some training seeds the encoder's z after one shot acts worse than the prior z (slide, seed 2:
K=0 40 %, K=1 31 %). The guard compares, on the shot transitions seen so far, how well each
candidate predicts what happened: the mean squared error of ``Q(s_t, a_t; z)`` against the
observed n-step return (rewards summed along the episode, bootstrapped with the candidate's own
``max_a Q(s, a; z)`` where the piece ends without termination), for z = the prior and z = the
encoder's output on the latest transitions; it acts with the one whose error is lower. Both
candidates are scored on the same transitions, so the guard needs nothing the device lacks.

Evaluates ``context`` (the package's adapter) and ``context-guard`` on the same units of a trained
run (``context_quickloop.py --out DIR`` keeps ``DIR/run``):

    .venv/bin/python benchmarks/research/context_guard.py /tmp/guard/s2/run --seed 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rows import append_row, success_columns

from robot_meta.envs import TaskDistribution
from robot_meta.meta import load_run, run_methods
from robot_meta.meta.eval.adapters import ContextAdapter
from robot_meta.meta.eval.protocol import AdapterMethod
from robot_meta.meta.rollout import GymEnvFactory
from robot_meta.runtime.adaptation import successor_flags


class GuardedContextAdapter(ContextAdapter):
    """`ContextAdapter` that keeps the prior z unless the inferred z predicts the shots' returns better."""

    def __init__(self, *args: object, gamma: float, n_step: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gamma, self.n_step = float(gamma), int(n_step)
        self.chosen: list[bool] = []

    def _error(self, z: torch.Tensor, obs: torch.Tensor, act: torch.Tensor, ret: np.ndarray,
               tail_obs: torch.Tensor, tail_disc: np.ndarray) -> float:  # fmt: skip
        with torch.inference_mode():
            q = self.policy(obs, z).gather(1, act[:, None]).squeeze(1).numpy()
            boot = self.policy(tail_obs, z).max(1).values.numpy()
        return float(np.mean((q - (ret + tail_disc * boot)) ** 2))

    def adapt(self) -> None:
        super().adapt()  # self.z = encoder(latest transitions)
        inferred = self.z
        t = self.shots()
        n = len(t.actions)
        if n == 0:
            return
        cont = np.zeros(n, bool)  # cont[k]: transition k + 1 continues transition k
        cont[:-1] = (successor_flags(t.obs, t.next_obs)[:-1] > 0) & (t.terminated[:-1] == 0)
        ret = np.zeros(n)
        disc = np.zeros(n)  # gamma^m of the bootstrap (0 where the piece ended by termination)
        tail = np.zeros(n, np.int64)
        for i in range(n):
            g, k, m = 0.0, i, 0
            while True:
                g += self.gamma**m * float(t.rewards[k])
                m += 1
                if m >= self.n_step or not cont[k]:
                    break
                k += 1
            ret[i], tail[i] = g, k
            disc[i] = 0.0 if t.terminated[k] else self.gamma**m
        obs = torch.from_numpy(t.obs)
        act = torch.from_numpy(t.actions)
        tail_obs = torch.from_numpy(t.next_obs[tail])
        e_prior = self._error(self.prior, obs, act, ret, tail_obs, disc)
        e_inf = self._error(inferred, obs, act, ret, tail_obs, disc)
        use = e_inf < e_prior
        self.z = inferred if use else self.prior
        self.chosen.append(bool(use))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument(
        "--seed", type=int, default=0, help="evaluation seed (the quick loop uses the training seed)"
    )
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--shots", default="0,1,3")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.process_time()
    run = load_run(args.run)
    cfg = run.config
    assert run.encoder is not None, "a ContextDQN run is needed"
    family = cfg.preset
    made: list[GuardedContextAdapter] = []

    def guarded(_s: int) -> GuardedContextAdapter:
        a = GuardedContextAdapter(
            run.policy, run.encoder, cfg.context_size, cfg.epsilon_end, gamma=cfg.gamma, n_step=cfg.n_step
        )
        made.append(a)
        return a

    factory = GymEnvFactory(cfg.env_id)
    methods = [
        AdapterMethod(
            "context",
            lambda _s: ContextAdapter(run.policy, run.encoder, cfg.context_size, cfg.epsilon_end),
            factory,
        ),  # type: ignore[arg-type]
        AdapterMethod("context-guard", guarded, factory),
    ]
    shots = tuple(int(k) for k in args.shots.split(","))
    res = run_methods(
        methods, TaskDistribution.preset(family).split(args.split), shots=shots,
        episodes=args.episodes, seeds=(args.seed,), num_tasks=args.tasks, progress=False,
    )  # fmt: skip
    row: dict[str, object] = {
        "run": str(args.run),
        "family": family,
        "seed": cfg.seed,
        "eval_seed": args.seed,
    }
    row.update(success_columns(res))
    chosen = [c for a in made for c in a.chosen]
    row["guard_inferred_fraction"] = round(float(np.mean(chosen)), 3) if chosen else None
    row["cpu_s"] = round(time.process_time() - t0)
    append_row("context_guard", row)


if __name__ == "__main__":
    main()
