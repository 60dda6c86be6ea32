"""Quick loop (issue 16 item 1): `MetaDQN` with its head TD rule or the context head rule, K-shot on the test split.

Trains through `make_algorithm` (the code ``robot-meta train --algo meta-dqn`` runs) at the given
budget with ``--set`` overrides (e.g. ``inner_rule=context_td``), then runs the package's K-shot
protocol (`evaluate`) on fresh test-split tasks and appends one JSON line (config, success per K
with its 95 % interval, CPU-seconds) to ``benchmarks/results/metadqn_quickloop.jsonl``. The `full`
budget costs about 13-15 CPU-minutes of training on slide.

    .venv/bin/python benchmarks/research/metadqn_quickloop.py --set inner_rule=context_td --set inner_n_step=50 --tag ctx
    .venv/bin/python benchmarks/research/metadqn_quickloop.py --set inner_n_step=50 --tag head
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rows import append_row, success_columns

from robot_meta.export import export_run
from robot_meta.meta import evaluate, make_algorithm, make_config, parse_override
from robot_meta.meta.config import config_class


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="slide")
    ap.add_argument("--budget", default="full", choices=("smoke", "small", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=24, help="test tasks (one evaluation seed)")
    ap.add_argument("--episodes", type=int, default=3, help="greedy evaluation episodes per task and K")
    ap.add_argument("--shots", default="0,1,3")
    ap.add_argument("--split", default="test")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--device", action="store_true", help="also export and evaluate through the runtime")
    args = ap.parse_args()
    torch.set_num_threads(1)
    family = args.family
    env_id = f"robot_meta/Panda{''.join(w.capitalize() for w in family.split('_'))}-v0"
    overrides = dict(parse_override(config_class("meta-dqn"), item) for item in args.set)
    cfg = make_config(
        "meta-dqn", budget=args.budget, env_id=env_id, preset=family, seed=args.seed, overrides=overrides
    )
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.out or tmp) / "run"
        trainer = make_algorithm(cfg)
        res = trainer.train(run_dir, progress=False)
        t_train = time.process_time() - t0
        shots = tuple(int(k) for k in args.shots.split(","))
        protocol = dict(episodes=args.episodes, seeds=(args.seed,), num_tasks=args.tasks, progress=False)
        ev = evaluate(run_dir, args.split, shots=shots, plot=False, **protocol)  # type: ignore[arg-type]
        methods = dict(ev.methods)
        if args.device:
            export_run(run_dir, Path(args.out or tmp) / "export")
            dev = evaluate(Path(args.out or tmp) / "export", args.split, shots=shots, plot=False, **protocol)  # type: ignore[arg-type]
            methods.update({f"device-{k}": v for k, v in dev.methods.items()})
    row: dict[str, object] = {
        "tag": args.tag, "family": family, "split": args.split, "budget": args.budget, "seed": args.seed,
        "inner_rule": cfg.inner_rule, "overrides": overrides,
    }  # fmt: skip
    row.update(success_columns(methods))
    row.update(
        env_steps=res.env_steps,
        updates=res.updates,
        train_cpu_s=round(t_train),
        cpu_s=round(time.process_time() - t0),
    )
    row["train_success_pre_last"] = res.metrics.get("meta/success_pre")
    row["train_success_post_last"] = res.metrics.get("meta/success_post")
    append_row("metadqn_quickloop", row)


if __name__ == "__main__":
    main()
