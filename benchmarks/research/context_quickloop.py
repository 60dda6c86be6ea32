"""Quick loop (issue 15/16): the package's `ContextDQN` on one family, K-shot on the test split.

Trains the `full` budget through `make_algorithm` (the code `robot-meta train --algo context
--budget full` runs) with the given ``--set`` overrides, then runs the package's K-shot protocol
(`evaluate`) on fresh test-split tasks, and appends one JSON line (config, success per K with its 95 % interval, CPU-seconds) to
``benchmarks/results/context_quickloop.jsonl``. About 10-15 CPU-minutes with the defaults on slide.

    .venv/bin/python benchmarks/research/context_quickloop.py --tag rma_n10_dev --device
    .venv/bin/python benchmarks/research/context_quickloop.py --family push --tag rma_n10_push --device
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rows import append_row, success_columns

from robot_meta.envs import TaskDistribution
from robot_meta.export import export_run
from robot_meta.meta import evaluate, make_algorithm, make_config, parse_override, run_methods
from robot_meta.meta.checkpoint import load_checkpoint
from robot_meta.meta.config import config_class, config_from_dict
from robot_meta.meta.context import ContextDQN
from robot_meta.meta.eval.adapters import ContextAdapter
from robot_meta.meta.eval.protocol import AdapterMethod
from robot_meta.meta.rollout import GymEnvFactory


class PrivilegedZ(ContextAdapter):
    """Diagnosis only: act with the teacher's z of the task's true parameters (what the encoder regresses)."""

    def __init__(self, trainer: ContextDQN) -> None:
        super().__init__(
            trainer.qnet, trainer.encoder, trainer.config.context_size, trainer.config.epsilon_end
        )
        self.teacher = trainer.teacher

    def begin(self, task: object, rng: np.random.Generator) -> None:
        super().begin(task, rng)
        assert self.teacher is not None
        with torch.inference_mode():
            self.z = self.teacher(torch.from_numpy(task.to_vector()))  # type: ignore[attr-defined]

    def adapt(self) -> None:
        pass


def load_trainer(run_dir: Path) -> ContextDQN:
    """The trainer of a kept run directory (``--out DIR`` keeps ``DIR/run``), teacher included."""
    doc = json.loads((run_dir / "config.json").read_text())
    cfg = config_from_dict(doc["algo"], doc["config"])
    trainer = make_algorithm(cfg)
    trainer.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt", cfg.algo))
    assert isinstance(trainer, ContextDQN)
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="slide")
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
    overrides = dict(parse_override(config_class("context"), item) for item in args.set)
    # The `full` budget of ContextDQN is the setting this loop found (before 2026-12-02 the same
    # sizes were passed here as overrides of `small`; the rows of the .jsonl record them).
    cfg = make_config(
        "context", budget="full", env_id=env_id, preset=family, seed=args.seed, overrides=overrides
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
        if isinstance(trainer, ContextDQN) and trainer.teacher is not None:
            priv = AdapterMethod("privileged-z", lambda _s: PrivilegedZ(trainer), GymEnvFactory(env_id))
            tasks = TaskDistribution.preset(family).split(args.split)
            methods.update(run_methods([priv], tasks, shots=(0,), **protocol))  # type: ignore[arg-type]
    row: dict[str, object] = {
        "tag": args.tag, "family": family, "split": args.split, "budget": "full", "overrides": overrides
    }  # fmt: skip
    row.update(success_columns(methods))
    row.update(
        env_steps=res.env_steps,
        updates=res.updates,
        train_cpu_s=round(t_train),
        cpu_s=round(time.process_time() - t0),
    )
    row["train_success_post_last"] = res.metrics.get("meta/success_post")
    append_row("context_quickloop", row)


if __name__ == "__main__":
    main()
