"""Meta-training at the ``full`` budget: what each algorithm reaches on its own *train* tasks.

For every (family, algorithm) the script trains ``robot-meta train --algo ALGO --env ID --budget
BUDGET --seed SEED`` into ``RUNS/<family>-<algo>-s<seed>`` (resumed if present, skipped if
complete), then probes the trained run on its whole training pool: greedy (epsilon 0) task visits
with the algorithm's own adaptation, ``--probe-seeds`` visits per task. Reported per run:

* ``success_pre``: first episode of a visit, the meta-policy as meta-trained (zero-shot);
* ``success_post``: last episode of the visit, after the algorithm adapted on the earlier ones
  (MetaDQN: head TD steps; Reptile: inner DQN updates; ContextDQN: task embedding);
* wall time of training (as measured when the run was trained) and env steps.

Held-out (test/ood) tasks and the baselines are the K-shot benchmark's job (``kshot.py``).

    .venv/bin/python benchmarks/meta_training.py                       # full budget, push + slide
    .venv/bin/python benchmarks/meta_training.py --families slide --algos context
    .venv/bin/python benchmarks/meta_training.py --quick               # smoke budget, slide, < 2 min

Full runs write ``benchmarks/results/meta_training.json`` and the ``meta_training`` section of
BENCHMARKS.md (rows of runs that are not finished yet are left out, so the table fills in as runs
complete); ``--quick`` writes ``meta_training_quick.json`` only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import BENCH_DIR, command_line, markdown_table, update_markdown_section, write_results

log = logging.getLogger("meta_training")

FAMILY_ENVS = {
    "reach": "robot_meta/PandaReach-v0",
    "push": "robot_meta/PandaPush-v0",
    "slide": "robot_meta/PandaSlide-v0",
    "pick_place": "robot_meta/PandaPickPlace-v0",
}
ALGOS = ("meta-dqn", "reptile", "context")


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``ALGO:KEY=VALUE`` items -> ``{algo: {key: value}}`` (values parsed like ``robot-meta train --set``)."""
    from robot_meta.meta import config_class, parse_override

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        algo, sep, kv = item.partition(":")
        if not sep or algo not in ALGOS:
            raise ValueError(f"--set {item!r} must look like ALGO:KEY=VALUE with ALGO one of {list(ALGOS)}")
        key, value = parse_override(config_class(algo), kv)
        out.setdefault(algo, {})[key] = value
    return out


def run_one(
    family: str,
    algo: str,
    budget: str,
    seed: int,
    runs: Path,
    probe_seeds: int,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import torch

    from robot_meta.meta import make_algorithm, make_config

    torch.set_num_threads(1)
    config = make_config(
        algo,
        budget=budget,
        env_id=FAMILY_ENVS[family],
        preset=family,
        seed=seed,
        overrides=overrides,  # type: ignore[arg-type]
    )
    run_dir = runs / f"{family}-{algo}-s{seed}"
    trainer = make_algorithm(config)
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.train(run_dir)
    times_file = run_dir / "train_time.json"
    if result.metrics:  # this call trained (a complete run returns no metrics): add its time
        prev = json.loads(times_file.read_text()) if times_file.exists() else {}
        times_file.write_text(
            json.dumps(
                {
                    "seconds": prev.get("seconds", 0.0) + time.perf_counter() - t0,
                    "cpu_seconds": prev.get("cpu_seconds", 0.0) + time.process_time() - c0,
                }
            )
        )
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    train_seconds = times.get("seconds")
    train_cpu_seconds = times.get("cpu_seconds")
    pre: list[float] = []
    post: list[float] = []
    ret_pre: list[float] = []
    ret_post: list[float] = []
    n_tasks = len(trainer.task_pool)
    t1 = time.perf_counter()
    for k in range(probe_seeds):
        m = trainer.probe(seed=1000 + k)
        pre.append(m["meta/success_pre"] * n_tasks)
        post.append(m["meta/success_post"] * n_tasks)
        ret_pre.append(m["meta/return_pre"])
        ret_post.append(m["meta/return_post"])
    n = n_tasks * probe_seeds
    s_pre, s_post = round(sum(pre)), round(sum(post))
    return {
        "family": family,
        "algo": algo,
        "env_id": config.env_id,
        "budget": budget,
        "seed": seed,
        "run_dir": str(run_dir),
        "overrides": dict(overrides or {}),
        "train_command": (
            f"robot-meta train --algo {algo} --env {config.env_id} --budget {budget} --seed {seed}"
            + "".join(f" --set {k}={json.dumps(v)}" for k, v in (overrides or {}).items())
            + f" --out {run_dir}"
        ),
        "iterations": trainer.iteration,
        "env_steps": trainer.env_steps,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "visits": n,
        "episodes_per_visit": config.episodes_per_task,
        "success_pre": s_pre / n,
        "success_pre_ci": wilson(s_pre, n),
        "success_post": s_post / n,
        "success_post_ci": wilson(s_post, n),
        "return_pre": float(np.mean(ret_pre)),
        "return_post": float(np.mean(ret_post)),
        "probe_seconds": time.perf_counter() - t1,
    }


def _pct(x: float, ci: tuple[float, float]) -> str:
    return f"{100 * x:.0f} % [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def _time(row: dict[str, Any]) -> str:
    wall, cpu = row.get("train_seconds"), row.get("train_cpu_seconds")
    if wall is None:
        return "-"
    return f"{wall / 60:.1f} min" + ("" if cpu is None else f" ({cpu / 60:.1f} min CPU)")


def render(rows: list[dict[str, Any]]) -> str:
    table = markdown_table(
        ["family", "algorithm", "success pre (zero-shot)", "success post (adapted)", "return pre / post",
         "env steps", "train time"],
        [
            [
                r["family"],
                r["algo"],
                _pct(r["success_pre"], r["success_pre_ci"]),
                _pct(r["success_post"], r["success_post_ci"]),
                f"{r['return_pre']:.2f} / {r['return_post']:.2f}",
                f"{r['env_steps']:,}",
                _time(r),
            ]
            for r in rows
        ],
    )  # fmt: skip
    visits = rows[0]["visits"] if rows else 0
    sets = sorted(
        {(r["algo"], f"--set {k}={json.dumps(v)}") for r in rows for k, v in r.get("overrides", {}).items()}
    )
    overrides = "; ".join(f"{algo}: `{flag}`" for algo, flag in sets)
    return (
        "Success on the **train** tasks of each run (its pool of 32 tasks from the preset's train split), "
        f"{visits} greedy visits per run; pre = first episode of a visit (meta-policy), post = last "
        "episode after the algorithm's own adaptation on the earlier episodes of the visit "
        "(meta-dqn 1 shot, reptile 2 shots, context 1 shot). Brackets: 95 % Wilson intervals. "
        "Train time: wall clock as measured while training, and the CPU time of the process; the "
        "machine was shared with other jobs (load average 4-9 on 2 cores), so the wall clock is an upper "
        "bound and the CPU time is what one free core needs. Each run: `robot-meta train --algo ALGO --env ID --budget full --seed 0`"
        + (f" with {overrides}" if overrides else "")
        + ".\n\n"
        + table
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--families", default="push,slide", help="comma-separated task families (default: %(default)s)"
    )
    ap.add_argument(
        "--algos", default=",".join(ALGOS), help="comma-separated algorithms (default: all three)"
    )
    ap.add_argument(
        "--budget",
        default="full",
        choices=["smoke", "small", "full"],
        help="training budget (default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    ap.add_argument(
        "--probe-seeds", type=int, default=2, help="greedy visits per training task (default: %(default)s)"
    )
    ap.add_argument(
        "--runs",
        type=Path,
        default=BENCH_DIR / "runs" / "meta_training",
        help="run directories (default: benchmarks/runs/meta_training)",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="ALGO:KEY=VALUE",
        help="config override of one algorithm, e.g. meta-dqn:inner_n_step=50 (repeatable)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke budget on slide only, results to meta_training_quick.json"
    )
    args = ap.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    families = ["slide"] if args.quick else [f.strip() for f in args.families.split(",") if f.strip()]
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    budget = "smoke" if args.quick else args.budget
    unknown = [f for f in families if f not in FAMILY_ENVS] + [a for a in algos if a not in ALGOS]
    if unknown:
        ap.error(f"unknown families/algorithms {unknown}")
    try:
        sets = parse_sets(args.sets)
    except ValueError as exc:
        ap.error(str(exc))
    runs = args.runs / "quick" if args.quick else args.runs
    name = "meta_training_quick" if args.quick else "meta_training"
    results_path = BENCH_DIR / "results" / f"{name}.json"
    rows: dict[str, dict[str, Any]] = {}
    if results_path.exists():  # keep the rows of runs this invocation does not touch
        rows = {
            f"{r['family']}-{r['algo']}": r for r in json.loads(results_path.read_text())["results"]["runs"]
        }
    for family in families:
        for algo in algos:
            log.info("%s / %s: training (or resuming) at budget %s", family, algo, budget)
            row = run_one(
                family, algo, budget, args.seed, runs, 1 if args.quick else args.probe_seeds, sets.get(algo)
            )
            rows[f"{family}-{algo}"] = row
            log.info(
                "%s / %s: success pre %.2f post %.2f (%d visits)",
                family, algo, row["success_pre"], row["success_post"], row["visits"],
            )  # fmt: skip
            ordered = sorted(rows.values(), key=lambda r: (r["family"], ALGOS.index(r["algo"])))
            write_results(name, {"runs": ordered})
            if not args.quick:
                update_markdown_section("meta_training", render(ordered), command=command_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
