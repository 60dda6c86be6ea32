"""Research (issues 15/16): where does a slide policy that knows the task lose its episodes?

For a trained ContextDQN run (a run directory with ``checkpoint.pt``), on `--tasks` test-split tasks
x `--episodes` seeded start states: the policy acts greedily with a given z (``teacher``: the
teacher's z of the true parameters, ``prior``: the zero-shot prior) and we record when it strikes
and at which speed; then every one of the family's strikes is played from the same start state at
step 0 (then hold) and we record which of them land. Reports, over episodes:

- how often some strike lands (the episode's ceiling for a strike-at-once controller),
- how often the policy strikes at step 0, later, or never,
- how often its strike is one that lands, and the distance in speed notches between its strike and
  the nearest landing one (0 = a landing strike; +1 = one notch too hard),
- the policy's success.

    .venv/bin/python benchmarks/research/strike_choice.py /tmp/ql/her05_s0/run --z teacher
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from context_quickloop import load_trainer

from robot_meta.envs import TaskDistribution
from robot_meta.meta.eval.protocol import evaluation_tasks
from robot_meta.meta.rollout import cached_env


def _play(env, task, seed: int, act) -> tuple[bool, list[int]]:  # type: ignore[no-untyped-def]
    obs, _ = env.reset(seed=seed, options={"task": task})
    actions: list[int] = []
    while True:
        a = act(obs, len(actions))
        actions.append(a)
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            return bool(info["is_success"]), actions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="evaluation seed (which test tasks)")
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--z", choices=("teacher", "prior"), default="teacher")
    args = ap.parse_args()
    torch.set_num_threads(1)
    trainer = load_trainer(args.run)
    cfg = trainer.config
    env = cached_env(trainer.env_factory)
    labels = [a.label for a in env.unwrapped.task.discrete_actions]
    strikes = [i for i, lab in enumerate(labels) if lab.startswith("strike")]
    tasks = evaluation_tasks(TaskDistribution.preset(cfg.preset).split("test"), args.seed, args.tasks)
    rows = []
    for ti, task in enumerate(tasks):
        with torch.inference_mode():
            z = (
                trainer.teacher(torch.from_numpy(task.to_vector()))  # type: ignore[attr-defined]
                if args.z == "teacher"
                else trainer.encoder.prior  # type: ignore[attr-defined]
            )
        for e in range(args.episodes):
            seed = 1000 * args.seed + 10 * ti + e

            def greedy(obs: np.ndarray, _t: int, z: torch.Tensor = z) -> int:
                with torch.inference_mode():
                    o = torch.from_numpy(np.asarray(obs, np.float32))
                    return int(trainer.qnet(o, z).argmax())  # type: ignore[attr-defined]

            success, actions = _play(env, task, seed, greedy)
            lands = [_play(env, task, seed, lambda _o, t, s=s: s if t == 0 else 0)[0] for s in strikes]
            first = next(((t, a) for t, a in enumerate(actions) if a in strikes), None)
            notch = None
            if first is not None and any(lands):
                k = strikes.index(first[1])
                notch = min((k - j for j, ok in enumerate(lands) if ok), key=abs)
            rows.append(
                {
                    "success": success,
                    "some_strike_lands": any(lands),
                    "strike_step": None if first is None else first[0],
                    "strike_lands": first is not None and lands[strikes.index(first[1])],
                    "notch": notch,
                }
            )
    n = len(rows)
    steps = Counter(
        "never" if r["strike_step"] is None else ("0" if r["strike_step"] == 0 else ">0") for r in rows
    )
    notches = Counter(r["notch"] for r in rows if r["notch"] is not None)
    out = {
        "run": str(args.run), "z": args.z, "seed": args.seed, "episodes": n,
        "success": round(100 * np.mean([r["success"] for r in rows]), 1),
        "some_strike_lands": round(100 * np.mean([r["some_strike_lands"] for r in rows]), 1),
        "strikes_at_step_0": round(100 * steps["0"] / n, 1),
        "strikes_later": round(100 * steps[">0"] / n, 1),
        "never_strikes": round(100 * steps["never"] / n, 1),
        "strike_lands": round(100 * np.mean([r["strike_lands"] for r in rows]), 1),
        "notch_histogram": {str(k): v for k, v in sorted(notches.items())},
    }  # fmt: skip
    print(json.dumps(out))
    res = Path(__file__).resolve().parents[1] / "results" / "strike_choice.jsonl"
    with res.open("a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
