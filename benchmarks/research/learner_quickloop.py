"""Quick learner ablation (issue 15): SB3 DQN oracle / domain-randomisation variants on one family.

Trains one SB3 DQN (privileged = the oracle, or not = domain randomisation) on the family's train
split with a new task at every reset, then scores it greedily on `--tasks` unseen tasks drawn from
the training distribution (the `test` split's meaning since issue 14) x `--episodes` episodes.
Variants: `--n-steps N` (SB3's n-step returns), `--decided 1` (the env's `end_when_decided`: the
episode ends once a struck puck rests, and that step's reward pays what the idle steps would have
paid), and the usual DQN knobs (`--batch`, `--learning-starts` and `--final-eps` came with the
tuning sweep of `robot_meta.meta.baselines.SB3_TUNED`; `--grad-steps -1` is SB3's "as many as env
steps"). One JSON line per run, with the per-task success rates, is appended to
`benchmarks/results/learner_quickloop.jsonl`. About 2-6 CPU-minutes per 60k-step run on slide.

    .venv/bin/python benchmarks/research/learner_quickloop.py --tag base
    .venv/bin/python benchmarks/research/learner_quickloop.py --decided 1 --n-steps 10 --tag dec_n10

This is the quick loop the diagnosis benchmark of issue 15 grows from. (Before the env option existed the
decided end was a wrapper here whose terminal reward was the *discounted* idle return; the first
rows of the JSON lines and of BENCHMARKS.md's table were measured with it.)
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import robot_meta  # noqa: F401
from robot_meta.envs import TaskDistribution
from robot_meta.meta.baselines import NormalizeObs, SB3DQNConfig, make_sb3_dqn, observation_stats

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

STRIKE0 = 7  # first strike action index in slide


def make_env(family, split, privileged, decided):
    dist = TaskDistribution.preset(family).split(split)
    return gym.make(
        f"robot_meta/Panda{family.capitalize()}-v0",
        distribution=dist,
        privileged=privileged,
        end_when_decided=decided,
    )


def evaluate(model, stats, family, privileged, tasks, episodes, seed):
    # unseen tasks of the training distribution (the `test` split; until issue 14 these runs drew
    # them from the train split with seed 9000 + seed, the same distribution)
    dist = TaskDistribution.preset(family).split("test")
    rng = np.random.default_rng(seed)
    task_list = dist.sample(tasks, rng)
    env = gym.make(f"robot_meta/Panda{family.capitalize()}-v0", privileged=privileged)
    succ = []
    for i, t in enumerate(task_list):
        s = 0
        for e in range(episodes):
            obs, _ = env.reset(seed=seed * 1000 + i * 10 + e, options={"task": t})
            done = False
            info = {}
            while not done:
                a, _ = model.predict(stats.apply(obs), deterministic=True)
                obs, _r, term, trunc, info = env.step(int(a))
                done = term or trunc
            s += bool(info.get("is_success"))
        succ.append(s / episodes)
    env.close()
    return float(np.mean(succ)), succ


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="slide")
    ap.add_argument("--steps", type=int, default=60000)
    ap.add_argument("--privileged", type=int, default=1)
    ap.add_argument("--decided", type=int, default=0)
    ap.add_argument("--n-steps", type=int, default=1)
    ap.add_argument("--gamma", type=float, default=0.98)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-freq", type=int, default=4)
    ap.add_argument("--grad-steps", type=int, default=1)
    ap.add_argument("--hidden", default="64,64")
    ap.add_argument("--target", type=int, default=500)
    ap.add_argument("--expl", type=int, default=10000)
    ap.add_argument("--buffer", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--learning-starts", type=int, default=1000)
    ap.add_argument("--final-eps", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    t0 = time.process_time()
    w0 = time.time()
    env = make_env(args.family, "train", bool(args.privileged), bool(args.decided))
    env.reset(seed=args.seed)
    stats = observation_stats(env, 2000, args.seed)
    env = NormalizeObs(env, stats)
    cfg = SB3DQNConfig(
        hidden=tuple(int(h) for h in args.hidden.split(",")),
        learning_rate=args.lr,
        buffer_size=args.buffer,
        batch_size=args.batch,
        learning_starts=args.learning_starts,
        exploration_final_eps=args.final_eps,
        train_freq=args.train_freq,
        gradient_steps=args.grad_steps,
        target_update_interval=args.target,
        exploration_steps=args.expl,
        gamma=args.gamma,
    )
    model = make_sb3_dqn(env, cfg, args.seed, args.steps)
    if args.n_steps > 1:
        from stable_baselines3.common.buffers import NStepReplayBuffer

        model.replay_buffer = NStepReplayBuffer(
            args.buffer,
            model.observation_space,
            model.action_space,
            device="cpu",
            n_steps=args.n_steps,
            gamma=args.gamma,
        )
    model.learn(args.steps)
    train_cpu = time.process_time() - t0
    sr, per = evaluate(
        model, stats, args.family, bool(args.privileged), args.tasks, args.episodes, 9000 + args.seed
    )
    n = len(per)
    se = float(np.std(per, ddof=1) / math.sqrt(n))
    out = {
        **vars(args),
        "success": sr,
        "ci95": 1.96 * se,
        "per_task": per,
        "train_cpu_s": train_cpu,
        "total_cpu_s": time.process_time() - t0,
        "wall_s": time.time() - w0,
    }
    print(json.dumps(out))
    out_path = Path(__file__).resolve().parent.parent / "results" / "learner_quickloop.jsonl"
    with open(out_path, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
