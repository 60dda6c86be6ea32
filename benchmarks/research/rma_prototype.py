"""Research prototype (issue 16 item 2): RMA-style context DQN on slide, quick loop.

Not package code: it measures whether an encoder that regresses a privileged task embedding from
one shot's transitions lets the policy adapt, before `ContextDQN` is rebuilt that way. Uses the
package's `QNetwork` and `ContextEncoder` (the modules the export and runtime already serve) and
the env's `end_when_decided` (until 2026-12-01 a wrapper with a discounted terminal reward). About 16 CPU-minutes with the defaults.

    .venv/bin/python benchmarks/research/rma_prototype.py --tag rma_base


Phase 1: Q(obs, z) with z = mu(p) (p = true task parameters), and with prob pdrop z = z_null (a learned
"unknown task" embedding: the same net is the domain-randomised policy). n-step Double DQN.
Phase 2: encoder phi(transitions of a task) -> z_hat regressing mu(p) (stop-grad), on episodes played by
the z_null policy (shot 1) and the z_hat policy (later shots).
Eval on fresh train-distribution tasks: K=0 (z_null), K=1, K=3 (z_hat from shots), oracle (mu(p)).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import robot_meta  # noqa: F401
from robot_meta.envs import TaskDistribution
from robot_meta.policies import ContextEncoder, QNetwork

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
OBS = 28


class Teacher(nn.Module):
    def __init__(self, pdim, latent):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(pdim, 64), nn.ReLU(), nn.Linear(64, latent))
        self.null = nn.Parameter(torch.zeros(latent))

    def forward(self, p, drop=None):
        z = self.net(p)
        if drop is not None:
            z = torch.where(drop.unsqueeze(-1), self.null.expand_as(z), z)
        return z


def run_episode(env, task, seed, policy, eps, rng):
    """policy(obs25) -> q values. Returns list of transitions (obs, a, r, next_obs, term) and success."""
    obs, _ = env.reset(seed=seed, options={"task": task})
    trs = []
    while True:
        o = obs[:OBS]
        if rng.random() < eps:
            a = int(rng.integers(17))
        else:
            a = int(np.argmax(policy(o)))
        nobs, r, term, trunc, info = env.step(a)
        trs.append((o, a, float(r), nobs[:OBS], bool(term), obs[OBS:]))
        obs = nobs
        if term or trunc:
            return trs, bool(info["is_success"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60000)
    ap.add_argument("--n-step", type=int, default=10)
    ap.add_argument("--gamma", type=float, default=0.98)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--train-every", type=int, default=2)
    ap.add_argument("--target", type=int, default=1000)
    ap.add_argument("--hidden", default="128,128")
    ap.add_argument("--latent", type=int, default=8)
    ap.add_argument("--pdrop", type=float, default=0.3)
    ap.add_argument("--expl-frac", type=float, default=0.3)
    ap.add_argument("--enc-tasks", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    t0 = time.process_time()
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    dist = TaskDistribution.preset("slide").split("train")
    env = gym.make("robot_meta/PandaSlide-v0", privileged=True, end_when_decided=True)
    pdim = 13
    hidden = tuple(int(h) for h in args.hidden.split(","))
    q = QNetwork(OBS, 17, hidden, context_dim=args.latent, feature_activation="relu")
    teacher = Teacher(pdim, args.latent)
    qt, tt = copy.deepcopy(q), copy.deepcopy(teacher)
    opt = torch.optim.Adam([*q.parameters(), *teacher.parameters()], lr=args.lr)
    # normaliser from random rollouts
    cap = args.steps
    B = {k: np.zeros((cap, d), np.float32) for k, d in (("o", OBS), ("p", pdim), ("no", OBS))}
    B["a"] = np.zeros(cap, np.int64)
    B["R"] = np.zeros(cap, np.float32)
    B["g"] = np.zeros(cap, np.float32)  # discount to bootstrap (0 if terminal within n)
    n = 0
    step = 0
    ep_succ = []
    n_step, gamma = args.n_step, args.gamma
    while step < args.steps:
        task = dist.space.sample_one(rng)
        eps = max(0.05, 1.0 - step / (args.expl_frac * args.steps) * 0.95)
        p_t = torch.from_numpy(task.to_vector())
        with torch.no_grad():
            z = teacher(p_t.unsqueeze(0), torch.tensor([rng.random() < args.pdrop]))[0]

        def pol(o, z=z):
            with torch.no_grad():
                return q(torch.from_numpy(o), z).numpy()

        trs, s = run_episode(env, task, int(rng.integers(2**31 - 1)), pol, eps, rng)
        ep_succ.append(s)
        T = len(trs)
        rs = [t[2] for t in trs]
        for i in range(T):
            if n >= cap:
                break
            R, g, j, term = 0.0, 1.0, i, False
            while j < T and j < i + n_step:
                R += g * rs[j]
                g *= gamma
                if trs[j][4]:
                    term = True
                    break
                j += 1
            if term:
                g, last = 0.0, j
            else:
                last = j - 1
            B["o"][n], B["p"][n], B["a"][n] = trs[i][0], trs[i][5], trs[i][1]
            B["R"][n], B["g"][n], B["no"][n] = R, g, trs[last][3]
            n += 1
        prev = step
        step += T
        if step >= 2000 and q.obs_norm.count.item() == 0:
            q.obs_norm.update(B["o"][:n])
            qt.obs_norm.load_state_dict(q.obs_norm.state_dict())
        if step < 2000:
            continue
        for _u in range((step // args.train_every) - (prev // args.train_every)):
            idx = rng.integers(n, size=args.batch)
            o, p, a = (torch.from_numpy(B[k][idx]) for k in ("o", "p", "a"))
            R, g, no = (torch.from_numpy(B[k][idx]) for k in ("R", "g", "no"))
            drop = torch.from_numpy(rng.random(args.batch) < args.pdrop)
            z = teacher(p, drop)
            qs = q(o, z).gather(1, a.unsqueeze(1)).squeeze(1)
            with torch.no_grad():
                zt = tt(p, drop)
                a2 = q(no, z).argmax(1, keepdim=True)
                y = R + g * qt(no, zt).gather(1, a2).squeeze(1)
            loss = F.smooth_l1_loss(qs, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([*q.parameters(), *teacher.parameters()], 10.0)
            opt.step()
        if (step // args.target) != (prev // args.target):
            qt.load_state_dict(q.state_dict())
            tt.load_state_dict(teacher.state_dict())
    t_phase1 = time.process_time() - t0
    print(
        f"phase1 done: {step} steps, last-200-ep train success {np.mean(ep_succ[-200:]):.2f}, cpu {t_phase1:.0f}s",
        flush=True,
    )

    # ---- phase 2: encoder regression
    enc = ContextEncoder(OBS, 17, args.latent, (64, 64))
    eopt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    with torch.no_grad():
        znull = teacher.null.detach().clone()

    def qpol(z):
        def f(o):
            with torch.no_grad():
                return q(torch.from_numpy(o), z).numpy()

        return f

    def pack(trs):
        rows = [np.concatenate([t[0], np.eye(17, dtype=np.float32)[t[1]], [t[2]], t[3]]) for t in trs]
        return torch.from_numpy(np.asarray(rows, np.float32))

    data = []  # (packed transitions of shot 1, shots 1..3, target z)
    for k in range(args.enc_tasks):
        task = dist.space.sample_one(rng)
        with torch.no_grad():
            zt_ = teacher(torch.from_numpy(task.to_vector()).unsqueeze(0))[0]
        tr1, _ = run_episode(env, task, int(rng.integers(2**31 - 1)), qpol(znull), 0.1, rng)
        P1 = pack(tr1)
        if k < 20:
            enc.update_normalizers(P1[:, :OBS], P1[:, -OBS:])
        with torch.no_grad():
            zh = enc(P1)
        tr2, _ = run_episode(env, task, int(rng.integers(2**31 - 1)), qpol(zh), 0.1, rng)
        data.append((P1, torch.cat([P1, pack(tr2)]), zt_))
    tdim = enc.transition_dim
    for _it in range(2000):
        batch = [data[int(i)] for i in rng.integers(len(data), size=64)]
        X = torch.zeros(len(batch), 64, tdim)
        M = torch.zeros(len(batch), 64)
        for b, (P1, P12, _zt) in enumerate(batch):
            src = P1 if rng.random() < 0.5 else P12
            m = int(rng.integers(1, min(len(src), 64) + 1))
            sel = torch.from_numpy(rng.choice(len(src), size=m, replace=False))
            X[b, :m] = src[sel]
            M[b, :m] = 1.0
        loss = F.mse_loss(enc(X, M), torch.stack([b[2] for b in batch]))
        eopt.zero_grad()
        loss.backward()
        eopt.step()
    print(
        f"phase2 done: enc loss {float(loss):.4f}, z var {float(torch.stack([d[2] for d in data]).var(0).mean()):.4f}",
        flush=True,
    )

    # ---- eval
    etasks = (
        TaskDistribution.preset("slide")
        .split("test")
        .sample(args.tasks, np.random.default_rng(9000 + args.seed))
    )
    res = {"k0": [], "k1": [], "k3": [], "oracle": []}
    erng = np.random.default_rng(123)
    for i, task in enumerate(etasks):
        seeds = [(9000 + args.seed) * 1000 + i * 10 + e for e in range(args.episodes)]
        with torch.no_grad():
            zo = teacher(torch.from_numpy(task.to_vector()).unsqueeze(0))[0]

        def score(z, task=task, seeds=seeds):
            return np.mean([run_episode(env, task, s, qpol(z), 0.0, erng)[1] for s in seeds])

        res["k0"].append(score(znull))
        res["oracle"].append(score(zo))
        support = []
        zh = znull
        for shot in range(3):
            trs, _ = run_episode(env, task, 777_000 + i * 10 + shot, qpol(zh), 0.0, erng)
            support += trs
            with torch.no_grad():
                zh = enc(pack(support[-64:]))
            if shot == 0:
                res["k1"].append(score(zh))
        res["k3"].append(score(zh))
    out = {**vars(args)}
    for k, v in res.items():
        out[k] = float(np.mean(v))
        out[k + "_ci"] = float(1.96 * np.std(v, ddof=1) / math.sqrt(len(v)))
    out["cpu_s"] = time.process_time() - t0
    out["phase1_cpu_s"] = t_phase1
    print(json.dumps(out))
    out_path = Path(__file__).resolve().parent.parent / "results" / "rma_prototype.jsonl"
    with open(out_path, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
