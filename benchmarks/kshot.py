"""K-shot evaluation on held-out tasks: meta methods against SB3 DQN baselines (issue 4).

For each task family (push, slide, ...) and seed, everything is scored by one protocol
(`robot_meta.meta.eval`, the same (task, seed) units for every method; the budgets, cached cells
and seed-paired targets are `robot_meta.meta.eval.kshot`, this script is the command around them):

* ``meta-dqn``, ``reptile`` (full-network DQN steps on the shots), ``reptile-head`` (the device's
  head-only rule on a Reptile policy), ``context`` - meta-trained with `robot_meta.meta.train_run`;
* ``scratch``, ``scratch-10x``, ``scratch-100x`` - SB3 DQN from scratch on the target task with
  1x / 10x / 100x the K-shot budget (K x 50 transitions);
* ``domain-rand`` - SB3 DQN on the train split (new task per reset), no adaptation;
* ``finetune`` - that policy fine-tuned on the shots (a short DQN after each shot);
* ``oracle`` - SB3 DQN on the train split with the true parameters in the observation.

Resumable: meta runs and baseline policies are trained into ``benchmarks/runs/<budget>/<family>/``
(gitignored; a finished one is skipped, an interrupted one resumes from its checkpoint), and every
evaluated cell (family, method, seed) is cached as JSON under
``benchmarks/results/kshot_cells/<budget>/<family>/``: cells that exist are not recomputed, so the
full table fills in over several sessions (commit the cells as they come).

    .venv/bin/python benchmarks/kshot.py --budget small                  # quick look, about 2 min
    .venv/bin/python benchmarks/kshot.py --budget full                   # the full table (hours)
    .venv/bin/python benchmarks/kshot.py --budget full --dry-run         # what would run, nothing trained
    .venv/bin/python benchmarks/kshot.py --split interp --families slide --cells strike-planner,domain-rand

``--split interp`` (or ``ood``) evaluates the same trained policies on another held-out split: its
cells go to ``kshot_cells/<version>/<budget>-<split>/``, its table to the ``kshot_<split>`` section
and ``kshot_<split>_<family>.json``.

Families run in parallel, one process per family up to ``--jobs`` (default: the number of CPUs);
the parent then writes the report of every cached cell.

``full`` writes ``benchmarks/results/kshot_<family>.json`` and the ``kshot`` section of
BENCHMARKS.md; ``small`` writes ``kshot_small_<family>.json`` and the ``kshot_small`` section
(``kshot.json`` / ``kshot_small.json`` hold every family of the last call).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from common import (
    BENCHMARKS_MD,
    RESULTS_DIR,
    command_line,
    machine_info,
    markdown_table,
    now_utc,
    update_markdown_section,
)

from robot_meta.meta.eval.kshot import (
    BUDGETS,
    FAMILY_ENVS,
    SPLITS,
    STRIKE_ORACLE,
    KShotStore,
    cells,
    compute_cell,
    compute_in_parallel,
    write_json,
)
from robot_meta.meta.eval.kshot import clean_json as _clean
from robot_meta.meta.eval.kshot_table import ORACLES, aggregate_family, oracle_key

log = logging.getLogger("kshot")

BENCH_DIR = Path(__file__).resolve().parent
#: Version of what a cell measures. v1 (2026-11-22, archived under kshot_cells/v1/): `test` was the
#: held-out intervals + shape (now the `interp` split) and slide struck at full torque. v2: `test` is
#: unseen tasks of the training distribution and slide's strike is torque-limited (issue 14). Cells
#: and trained policies of another version are never reused.
PROTOCOL = "v2"
RUNS_DIR = BENCH_DIR / "runs" / PROTOCOL
CELLS_DIR = RESULTS_DIR / "kshot_cells" / PROTOCOL
#: The cells of this benchmark (`robot_meta.meta.eval.kshot` owns the comparison itself).
CELLS = cells()


def result_stem(budget_name: str, split: str) -> str:
    """``kshot`` (the `full` budget on `test`), else with ``_<budget>`` and ``_<split>``: the
    BENCHMARKS.md section and the ``benchmarks/results/`` file names of one budget and split."""
    return (
        "kshot"
        + ("" if budget_name == "full" else f"_{budget_name}")
        + ("" if split == "test" else f"_{split}")
    )


def _fmt(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    lo, hi = cell.get("ci_low"), cell.get("ci_high")
    ci = "" if lo is None or hi is None or not math.isfinite(lo) else f" [{lo:.2f}, {hi:.2f}]"
    return f"{cell['success']:.2f}{ci} ({cell['return']:.1f})"


def _gain(cell: dict[str, Any] | None) -> str:
    if cell is None or cell.get("paired_gain") is None:
        return "-"
    lo, hi = cell.get("paired_gain_ci_low"), cell.get("paired_gain_ci_high")
    ci = "" if lo is None or hi is None or not math.isfinite(lo) else f" [{lo:+.2f}, {hi:+.2f}]"
    return f"{cell['paired_gain']:+.2f}{ci}"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def family_markdown(res: dict[str, Any]) -> str:
    ks = [str(k) for k in res["shots"]]
    # paired-gain columns only for the K that have a control somewhere (cells of older code have none)
    gain_ks = [k for k in ks if any("paired_gain" in m["K"].get(k, {}) for m in res["methods"].values())]
    headers = ["method", "seeds", *[f"K={k}" for k in ks], *[f"paired gain K={k}" for k in gain_ks],
               f"transitions at K={ks[-1]}", "train s", "eval s"]  # fmt: skip
    rows = []
    for name, m in res["methods"].items():
        last = m["K"].get(ks[-1], {})
        rows.append(
            [name, ",".join(str(x) for x in m.get("seeds", res["seeds"])), *[_fmt(m["K"].get(k)) for k in ks],
             *[_gain(m["K"].get(k)) for k in gain_ks],
             last.get("target_transitions", "-"), _secs(m.get("train_seconds")), _secs(m.get("eval_seconds"))]
        )  # fmt: skip
    t = res["targets"]
    lines = [
        f"##### {res['family']} ({res['split']} split, seeds {res['seeds']}, {res['num_tasks']} tasks per seed, "
        f"{res['episodes']} evaluation episodes per task and K)",
        "",
        "Success rate with its 95 % t-interval over (task, seed) units, and (mean return). `train s`: "
        "training before the protocol (meta-training, or the SB3 policy; finetune reuses domain-rand's); "
        "`eval s`: the protocol itself, including scratch's training on each target task (one run "
        "shared by the three scratch rows, its time split among them)."
        + (
            " `paired gain K=k`: adapted minus the unadapted policy on the same evaluation episodes (same "
            "start states and goals), mean over units with its 95 % t-interval; `-` for methods that do not "
            "adapt."
            if gain_ks
            else ""
        ),
        "",
        markdown_table(headers, rows),
        "",
    ]
    lines += [f"Compute time of this family's cells (training + protocol): {res['cell_seconds']:.0f} s.", ""]
    if res["missing_cells"]:
        lines += [f"Missing cells (not yet computed): {', '.join(res['missing_cells'])}.", ""]
    k5 = t.get("k_for_targets")

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.0f}"

    if res["budget"] != "full":
        lines += [
            f"`{res['budget']}` budget: a few minutes of meta-training, {res['num_tasks']} tasks x "
            f"{len(res['seeds'])} seed(s); this checks the machinery end to end, the targets are judged on "
            "the full table only.",
            "",
        ]
    lines.append(f"Targets (K={k5}), each on the seeds where every method it compares has its cells:")
    lines.append(
        f"- oracle - domain-rand = {pct(t.get('oracle_minus_domain_rand'))} points (target >= 20; seeds "
        f"{t.get('seeds_oracle_gap', [])}): {_verdict(t.get('oracle_gap_met'))}"
    )
    if "best_meta" in t:
        lines.append(
            f"- best meta method `{t['best_meta']}` at K={k5}: {pct(t['best_meta_success'])} % success, "
            f"recovers {pct(t.get('recovered_fraction'))} % of the oracle's advantage (target >= 80; seeds "
            f"{t.get('seeds_recovery', [])}): {_verdict(t.get('recovery_met'))}; finetune "
            f"{pct(t.get('finetune_success'))} %: {'beats' if t.get('beats_finetune') else 'does not beat'} "
            "fine-tuning"
        )
    what = {"oracle": "the SB3 oracle", STRIKE_ORACLE: "the strike planner at the true parameters"}
    for oracle_name in ORACLES:
        key = oracle_key(oracle_name)
        if f"share_of_{key}" in t:
            lines.append(
                f"- best meta method `{t[f'share_meta_of_{key}']}` at K={k5} reaches {pct(t[f'share_of_{key}'])} % "
                f"of `{oracle_name}`'s success ({what[oracle_name]}; issue 16 target >= 90; seeds "
                f"{t[f'seeds_share_of_{key}']}): {_verdict(t[f'share_met_of_{key}'])}"
            )
    if not t.get("seeds_sample_efficiency"):
        lines.append("- sample efficiency vs scratch: not measured yet (no seed has the scratch cell)")
    elif t.get("efficiency_meta_success", 0.0) <= 0.0:
        lines.append("- sample efficiency vs scratch: n/a (the best meta method has 0 % success to match)")
    elif "scratch_ratio" in t:
        bound = ">= " if t.get("scratch_ratio_is_lower_bound") else ""
        lines.append(
            f"- SB3 DQN from scratch needs {bound}{t['scratch_ratio']:.1f}x the target transitions of "
            f"`{t['efficiency_meta']}` ({t['efficiency_meta_target_transitions']} at K={k5}, "
            f"{pct(t['efficiency_meta_success'])} % success) to match it (target >= 20x; seeds "
            f"{t['seeds_sample_efficiency']}): {_verdict(t.get('sample_efficiency_met'))}"
        )
    return "\n".join(lines)


def _verdict(x: bool | None) -> str:
    return "n/a" if x is None else ("**met**" if x else "**missed**")


def cell_provenance(store: KShotStore, budget: str, families: list[str], seeds: tuple[int, ...]) -> str:
    """Markdown: every command that computed a cached cell of the table, with the cells it computed.

    Each cell file keeps its own command (since 2026-12-03; older cells say where to look), so a
    call that adds one cell does not erase where the others came from.
    """
    by_cmd: dict[str, list[str]] = {}
    for family in families:
        for cell in CELLS:
            for seed in seeds:
                path = store.cell_path(budget, family, cell, seed)
                if not path.exists():
                    continue
                doc = json.loads(path.read_text())
                key = doc.get("command") or ""
                by_cmd.setdefault(key, []).append(
                    f"{family} {cell} seed {seed} ({str(doc.get('date', '?'))[:10]})"
                )
    parts = [f"`{c}`: {', '.join(cells)}" for c, cells in by_cmd.items() if c]
    if "" in by_cmd:
        parts.append(
            "computed before cell files kept their command (see this section's history in git): "
            + ", ".join(by_cmd[""])
        )
    return "Commands, per cell: " + "; ".join(parts) if parts else "No cell computed yet"


def write_family(budget_name: str, family: str, res: dict[str, Any], command: str) -> Path:
    from robot_meta.meta.eval import plot_success

    stem = f"{result_stem(budget_name, res['split'])}_{family}"
    doc = {**res, "date": now_utc(), "command": command, "machine": machine_info()}
    path = RESULTS_DIR / f"{stem}.json"
    write_json(path, _clean(doc))
    plot_success({n: m["K"] for n, m in res["methods"].items()}, RESULTS_DIR / f"{stem}.png",
                 title=f"{family}: success vs K ({res['split']} split, {budget_name})")  # fmt: skip
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--budget", choices=list(BUDGETS), default="full", help="table size (default: %(default)s)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="same as --budget small (used by run_all.py --quick)"
    )
    ap.add_argument(
        "--families", default="push,slide", help="comma-separated families (default: %(default)s)"
    )
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the budget's)")
    ap.add_argument(
        "--split",
        choices=list(SPLITS),
        default="test",
        help="the held-out split evaluated on (default: %(default)s; `interp`: held-out intervals and "
        "shape, cells under kshot_cells/v2/<budget>-interp/, its own section of BENCHMARKS.md)",
    )
    ap.add_argument(
        "--cells", default=",".join(CELLS), help="comma-separated cells to compute (default: all)"
    )
    ap.add_argument(
        "--runs-dir", default=None, help="where runs are trained (default: benchmarks/runs/<budget>)"
    )
    ap.add_argument(
        "--meta-runs",
        metavar="PATTERN",
        help="evaluate existing complete meta runs, e.g. '/tmp/r3/{algo}-{family}-seed{seed}' (default: train them)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="families computed in parallel, one process each (default: the CPU count, %(default)s)",
    )
    ap.add_argument("--dry-run", action="store_true", help="list the cells that would be computed and exit")
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--compute-only", action="store_true", help=argparse.SUPPRESS)  # a --jobs worker
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    warnings.filterwarnings("ignore", category=UserWarning)
    budget_name = "small" if args.quick else args.budget
    budget = BUDGETS[budget_name]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILY_ENVS))
    if unknown:
        ap.error(f"unknown families {unknown}: choose from {list(FAMILY_ENVS)}")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if set(cells) - set(CELLS):
        ap.error(f"unknown cells {sorted(set(cells) - set(CELLS))}: choose from {list(CELLS)}")
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else budget.seeds
    runs = Path(args.runs_dir) if args.runs_dir else RUNS_DIR / budget_name
    store = KShotStore(CELLS_DIR, runs, args.meta_runs, args.split)
    todo = [
        (f, c, s)
        for f in families
        for c in cells
        for s in seeds
        if not store.cell_path(budget_name, f, c, s).exists()
    ]
    log.info("budget %s: %d cell(s) to compute, %d cached", budget_name, len(todo),
             len(families) * len(cells) * len(seeds) - len(todo))  # fmt: skip
    if args.dry_run:
        for f, c, s in todo:
            print(
                f"{f} {c} seed {s} -> {store.cell_path(budget_name, f, c, s).relative_to(BENCH_DIR.parent)}"
            )
        return 0
    cmd = command_line()
    busy = list(dict.fromkeys(f for f, _, _ in todo))
    if len(busy) > 1 and args.jobs > 1 and not args.compute_only:
        failed = compute_in_parallel(
            Path(__file__), busy, argv if argv is not None else sys.argv[1:], args.jobs
        )
        if failed:
            log.error("failed: %s (see its log above); finished cells are kept, run the same command "
                      "again to resume", ", ".join(failed))  # fmt: skip
            return 1
        todo = []
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)

    torch.set_num_threads(1)
    os.environ.setdefault("SB3_LOGDIR", str(runs / "sb3_logs"))  # never used: our SB3 loggers write nothing
    t_fam: dict[str, float] = {}
    for family in dict.fromkeys(f for f, _, _ in todo):  # the families with cells left, in order
        t0 = time.perf_counter()
        for f, c, s in todo:
            if f != family:
                continue
            t1 = time.perf_counter()
            log.info("%s / %s / seed %d ...", f, c, s)
            data, partial = compute_cell(budget_name, f, c, s, store)
            data["cell_seconds"] = time.perf_counter() - t1  # this call only (a resumed cell: its last part)
            data["command"] = cmd.replace(
                " --compute-only", ""
            )  # what computed it (a --jobs worker: its family's share)
            write_json(store.cell_path(budget_name, f, c, s), _clean(data))
            partial.unlink(missing_ok=True)
            log.info("%s / %s / seed %d done in %.0f s", f, c, s, time.perf_counter() - t1)
        t_fam[family] = time.perf_counter() - t0
        log.info("%s: %.0f s", family, t_fam[family])
    if args.compute_only:
        return 0
    parts = []
    combined: dict[str, Any] = {}
    # Report every family that has cells of this budget, not only this call's: two processes (one
    # per family, one per core) then both leave the complete table behind.
    reported = [
        f for f in FAMILY_ENVS if f in families or store.cell_path(budget_name, f, "-", 0).parent.is_dir()
    ]
    # ... and every seed of the budget: a call for one seed leaves the table of all cached seeds
    report_seeds = tuple(sorted(set(budget.seeds) | set(seeds)))
    for family in reported:
        res = aggregate_family(store, budget_name, family, report_seeds)
        path = write_family(budget_name, family, res, cmd)
        log.info("wrote %s", path)
        parts.append(family_markdown(res))
        combined[family] = res
    section = result_stem(budget_name, args.split)
    # the file the BENCHMARKS.md section footer points to: every family of this call
    write_json(
        RESULTS_DIR / f"{section}.json", _clean({"date": now_utc(), "command": cmd, "families": combined})
    )
    body = "#### K-shot adaptation on held-out tasks\n\n" + "\n\n".join(parts)
    print("\n" + body + "\n")
    if not args.no_markdown:
        provenance = cell_provenance(store, budget_name, reported, report_seeds)
        update_markdown_section(section, body, cmd, now_utc(), path=BENCHMARKS_MD, provenance=provenance)
        log.info("updated the %s section of BENCHMARKS.md", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
