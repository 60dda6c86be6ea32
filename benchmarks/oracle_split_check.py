"""Is the privileged oracle of the K-shot benchmark limited by its inputs being out of range?

The K-shot benchmark's oracle (SB3 DQN with the true task parameters in its observation) is trained
on the preset's *train* split. Until issue 14 it was evaluated on what is now the *interp* split,
whose parameters lie between the train intervals (slide friction 0.08-0.14 vs 0.05-0.08 and 0.14-0.25; mass 0.3-0.8 kg vs 0.1-0.3 and
0.8-2.0). This script evaluates the already trained oracle and domain-randomisation policies of
`benchmarks/kshot.py` (``benchmarks/runs/full/<family>/{oracle,domain-rand}-seed<N>``) greedily on
tasks of the train, test (unseen tasks of the train distribution) and interp splits, with the same unit seeds as the benchmark: if the oracle beats domain
randomisation on train tasks but not on test tasks, its privileged inputs do not transfer across
the gap (an interpolation failure of the learned oracle, not a property of the tasks).

    .venv/bin/python benchmarks/oracle_split_check.py     # families push, slide; seeds with both policies

Writes ``benchmarks/results/oracle_split_check.json`` and its BENCHMARKS.md section; needs the
policies the K-shot benchmark trained (skips a family/seed without them).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from typing import Any

import numpy as np
from common import command_line, markdown_table, now_utc, update_markdown_section, write_results
from kshot import FAMILY_ENVS, RUNS_DIR

log = logging.getLogger("oracle_split_check")
NAME = "oracle_split_check"
RUNS = RUNS_DIR / "full"  # the K-shot benchmark's `full` budget policies
KINDS = ("domain-rand", "oracle")


def evaluate_split(family: str, seed: int, split: str, tasks: int, episodes: int) -> dict[str, float]:
    """Mean greedy success of each kind on `tasks` tasks of `split` (the benchmark's unit seeds)."""
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.baselines import eval_env_factory, load_baseline
    from robot_meta.meta.eval import evaluation_tasks
    from robot_meta.meta.eval.baseline_methods import policy_method

    out: dict[str, float] = {}
    for kind in KINDS:
        model = load_baseline(RUNS / family / f"{kind}-seed{seed}")
        method = policy_method(kind, lambda _s, m=model: m, eval_env_factory(kind, FAMILY_ENVS[family]))
        units = [
            method.run_unit(task, seed, i, (0,), episodes)[kind][0].success
            for i, task in enumerate(
                evaluation_tasks(TaskDistribution.preset(family).split(split), seed, tasks)
            )
        ]
        out[kind] = float(np.mean(units))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="2 tasks x 2 episodes (smoke test)")
    ap.add_argument("--families", default="push,slide", help="comma-separated (default: %(default)s)")
    ap.add_argument(
        "--seeds", default="0,1,2", help="K-shot seeds to check when trained (default: %(default)s)"
    )
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore")
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)

    torch.set_num_threads(1)
    tasks, episodes = (2, 2) if args.quick else (8, 5)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        if family not in FAMILY_ENVS:
            ap.error(f"unknown family {family!r}: choose from {list(FAMILY_ENVS)}")
        for seed in (int(s) for s in args.seeds.split(",")):
            if not all((RUNS / family / f"{k}-seed{seed}" / "model.zip").exists() for k in KINDS):
                log.info("%s seed %d: policies not trained yet, skipped", family, seed)
                continue
            for split in ("train", "test", "interp"):
                res = evaluate_split(family, seed, split, tasks, episodes)
                rows.append({"family": family, "seed": seed, "split": split, **res})
                log.info("%s seed %d %s: %s", family, seed, split, res)
    if not rows:  # nothing trained yet (a fresh machine): keep the last measured table
        log.warning("no K-shot oracle/domain-rand policies under %s yet: run benchmarks/kshot.py first", RUNS)
        return {"rows": []}
    results = {"tasks": tasks, "episodes": episodes, "rows": rows, "seconds": time.perf_counter() - t0}
    cmd = command_line()
    path = write_results(NAME + ("_quick" if args.quick else ""), results, command=cmd)
    log.info("wrote %s", path)
    table_rows = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for split in ("train", "test", "interp"):
            sel = [r for r in rows if r["family"] == family and r["split"] == split]
            o, d = np.mean([r["oracle"] for r in sel]), np.mean([r["domain-rand"] for r in sel])
            table_rows.append(
                [family, split, ",".join(str(r["seed"]) for r in sel), f"{100 * o:.0f} %", f"{100 * d:.0f} %",
                 f"{100 * (o - d):+.0f}"]
            )  # fmt: skip
    body = (
        "#### Privileged oracle vs domain randomisation on train and test tasks\n\n"
        f"The K-shot benchmark's SB3 policies (trained on the train split), greedy, {tasks} tasks x "
        f"{episodes} episodes per split and seed (the benchmark's unit seeds):\n\n"
        + markdown_table(
            ["family", "split", "seeds", "oracle", "domain-rand", "oracle - DR, points"], table_rows
        )
    )
    print("\n" + body + "\n")
    if not args.quick and not args.no_markdown:
        update_markdown_section(NAME, body, cmd, now_utc())
    return results


if __name__ == "__main__":
    main()
