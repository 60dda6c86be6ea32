"""Research (issue 16): after one shot, how close is the encoder's z to the teacher's z of the true parameters?

For a trained ContextDQN run (``context_quickloop.py --out DIR`` keeps ``DIR/run``), on the same
test-split units as the K-shot protocol: one shot episode acted as the protocol's shots are (z
re-inferred after every step, epsilon-greedy), then z from the latest ``context_size`` transitions.
Reports the encoder's R^2 against the teacher's z over tasks, the distance to the teacher's z in
units of the teachers' spread, and how often the greedy first action under the inferred z equals the
one under the teacher's z. Then the K-shot protocol at K = 0 and 1 for the encoder's z (``context``)
and for the teacher's z (``privileged-z``, which ignores the shot) on the same units: at K = 1 both
are scored on the same evaluation episodes, so their difference is what the inferred z costs; and
``prior-z``, the prior on every episode: at K = 1 the no-adaptation control on the same episodes
(the protocol's K = 0 is scored on other episodes of the task, the first ones of the unit).

    .venv/bin/python benchmarks/research/context_encoder_check.py /tmp/guard/s2/run --seed 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from context_quickloop import PrivilegedZ, load_trainer

from robot_meta.envs import TaskDistribution
from robot_meta.meta import run_methods
from robot_meta.meta.eval.adapters import ContextAdapter
from robot_meta.meta.eval.protocol import AdapterMethod, evaluation_tasks, unit_seeds
from robot_meta.meta.rollout import cached_env, run_episode


class PriorZ(ContextAdapter):
    """The control: the prior z on every episode (the shots are played, nothing is inferred)."""

    def adapt(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(1)
    trainer = load_trainer(args.run)
    cfg = trainer.config
    teacher = trainer.teacher  # type: ignore[attr-defined]
    env = cached_env(trainer.env_factory)
    tasks = evaluation_tasks(TaskDistribution.preset(cfg.preset).split("test"), args.seed, args.tasks)
    z_inf, z_true, same_first, same_prior = [], [], [], []
    for i, task in enumerate(tasks):
        env_seed, rng = unit_seeds(args.seed, i)
        ad = ContextAdapter(trainer.qnet, trainer.encoder, cfg.context_size, cfg.epsilon_end)  # type: ignore[attr-defined]
        ad.begin(task, rng)
        run_episode(env, task, env_seed, lambda o, ad=ad: ad.act(o, False), on_step=ad.observe)
        with torch.inference_mode():
            zt = teacher(torch.from_numpy(task.to_vector()))
            obs0, _ = env.reset(seed=env_seed, options={"task": task})
            o = torch.from_numpy(np.asarray(obs0, np.float32))
            a_inf = int(trainer.qnet(o, ad.z).argmax())  # type: ignore[attr-defined]
            a_true = int(trainer.qnet(o, zt).argmax())  # type: ignore[attr-defined]
            a_prior = int(trainer.qnet(o, ad.prior).argmax())  # type: ignore[attr-defined]
        z_inf.append(ad.z.numpy().ravel())
        z_true.append(zt.numpy().ravel())
        same_first.append(a_inf == a_true)
        same_prior.append(a_prior == a_true)
    methods = [
        AdapterMethod(
            "context",
            lambda _s: ContextAdapter(trainer.qnet, trainer.encoder, cfg.context_size, cfg.epsilon_end),
            trainer.env_factory,
        ),  # type: ignore[attr-defined]
        AdapterMethod("privileged-z", lambda _s: PrivilegedZ(trainer), trainer.env_factory),  # type: ignore[arg-type]
        AdapterMethod(
            "prior-z",
            lambda _s: PriorZ(trainer.qnet, trainer.encoder, cfg.context_size, cfg.epsilon_end),
            trainer.env_factory,
        ),  # type: ignore[attr-defined]
    ]
    res = run_methods(methods, TaskDistribution.preset(cfg.preset).split("test"), shots=(0, 1), episodes=3,
                      seeds=(args.seed,), num_tasks=args.tasks, progress=False)  # fmt: skip
    kshot = {
        f"{n}_k{k}": round(100 * st.success, 1) for n, m in res.items() for k, st in sorted(m.per_k.items())
    }
    zi, zt_ = np.array(z_inf), np.array(z_true)
    spread = float(((zt_ - zt_.mean(0)) ** 2).sum(1).mean())
    r2 = 1.0 - float(((zi - zt_) ** 2).sum(1).mean()) / spread
    print(json.dumps({
        "run": str(args.run), "seed": cfg.seed, "tasks": args.tasks, "encoder_r2_after_one_shot": round(r2, 3),
        "first_action_as_teacher_inferred": round(float(np.mean(same_first)), 3),
        "first_action_as_teacher_prior": round(float(np.mean(same_prior)), 3), **kshot,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
