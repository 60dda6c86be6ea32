"""Research (issue 15): can a plain regressor, given as many first strikes as a `full` run sees, pick
slide's landing strike?

Collects N first strikes on fresh train-split tasks (one random strike each from the env's start
state, then hold until the puck rests; the goal is moved out of reach so no success ends the
episode early), fits two 64x64 MLPs on the true task parameters by regression (4,000 Adam steps of
128 samples), and scores their strike choice on the quick loop's 24 `test` tasks x 3 starts by
playing every strike in the env:

- travel model: (parameters, strike) -> distance travelled along +x; pick the strike whose travel
  is nearest the goal's distance;
- value model: (parameters, goal offset, strike) -> final distance to the goal; pick the smallest.

Prints and appends one JSON line to ``benchmarks/results/travel_fit.jsonl``. About 3 CPU-minutes.

    .venv/bin/python benchmarks/research/travel_fit.py 1300
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import robot_meta  # noqa: F401  (registers the env ids)
from robot_meta.envs import TaskDistribution
from robot_meta.meta.eval.units import evaluation_tasks

FAR = np.array([-0.3, 0.25, 0.0])


def _fit(x: list[np.ndarray], y: list[float]) -> Callable[[list[np.ndarray]], np.ndarray]:
    xt = torch.tensor(np.array(x), dtype=torch.float32)
    yt = torch.tensor(np.array(y), dtype=torch.float32)
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    net = torch.nn.Sequential(
        torch.nn.Linear(xt.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(4000):
        idx = torch.randint(0, len(xt), (128,))
        loss = ((net((xt[idx] - mu) / sd).squeeze(-1) - yt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def predict(q: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = (
                net((torch.tensor(np.array(q), dtype=torch.float32) - mu) / sd).squeeze(-1).numpy()
            )
        return out

    return predict


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n_samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1300
    env = gym.make("robot_meta/PandaSlide-v0", action_mode="discrete")
    u = env.unwrapped
    strikes = [i for i, a in enumerate(u.task.discrete_actions) if a.label.startswith("strike")]  # type: ignore[attr-defined]
    dist = TaskDistribution.preset("slide")
    rng = np.random.default_rng(0)
    t0 = time.process_time()
    xt, yt, xv, yv = [], [], [], []
    for task in dist.split("train").sample(n_samples, rng):
        k = int(rng.integers(len(strikes)))
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)), options={"task": task})
        need = u.task.goal[:2] - obs[6:8]  # type: ignore[attr-defined]
        u.task.goal = FAR.copy()  # type: ignore[attr-defined]
        x0 = obs[6:8].copy()
        obs, _, term, _, _ = env.step(strikes[k])
        for _ in range(30):
            if term or np.linalg.norm(obs[12:15]) < 0.02:
                break
            obs, _, term, _, _ = env.step(0)
        d = obs[6:8] - x0
        xt.append(np.r_[task.to_vector(), k / 9.0])
        yt.append(1.0 if term else float(d[0]))
        xv.append(np.r_[task.to_vector(), need, k / 9.0])
        yv.append(-1.0 if term else -float(np.hypot(*(need - d))))
    travel, value = _fit(xt, yt), _fit(xv, yv)
    hits = vhits = some = n = 0
    for ti, task in enumerate(evaluation_tasks(dist.split("test"), 0, 24)):
        for e in range(3):
            seed = 10 * ti + e
            obs, _ = env.reset(seed=seed, options={"task": task})
            need = u.task.goal[:2] - obs[6:8]  # type: ignore[attr-defined]
            k = int(
                np.argmin(np.abs(travel([np.r_[task.to_vector(), j / 9.0] for j in range(10)]) - need[0]))
            )
            kv = int(np.argmax(value([np.r_[task.to_vector(), need, j / 9.0] for j in range(10)])))
            lands = []
            for s in strikes:
                env.reset(seed=seed, options={"task": task})
                _, _, term, trunc, info = env.step(s)
                while not (term or trunc):
                    _, _, term, trunc, info = env.step(0)
                lands.append(bool(info["is_success"]))
            hits += lands[k]
            vhits += lands[kv]
            some += any(lands)
            n += 1
    row = {
        "first_strikes": n_samples,
        "travel_model_strike_lands": round(100 * hits / n, 1),
        "value_model_strike_lands": round(100 * vhits / n, 1),
        "some_strike_lands": round(100 * some / n, 1),
        "cpu_s": round(time.process_time() - t0),
    }
    print(json.dumps(row))
    with (Path(__file__).resolve().parents[1] / "results" / "travel_fit.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
