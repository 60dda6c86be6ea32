"""Fault injection: ``kill -9`` a real ``robot-meta train`` at random times, resume, compare weights.

One uninterrupted reference run, then rounds on fresh run directories: start ``robot-meta train``,
wait a random time drawn uniformly over the reference run's wall time (start-up, collection,
learning, checkpoint writes), SIGKILL it, inspect the run directory (``config.json`` and
``checkpoint.pt`` must load - the checkpoint with ``weights_only=True`` -, stale temp files are
counted), and start it again. The restarted process must log that it resumes from exactly the
iteration of the checkpoint found on disk. When a round's process finishes, its final checkpoint
must equal the reference bitwise (models, optimisers, counters). Rounds continue until ``--kills``
kills have happened.

    .venv/bin/python benchmarks/fault_injection.py            # 20 kills (make bench)
    .venv/bin/python benchmarks/fault_injection.py --quick    # 5 kills
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO_ROOT,
    command_line,
    markdown_table,
    update_markdown_section,
    write_results,
)

NAME = "fault_injection"
RESUME_RE = re.compile(r"resuming \S+ from \S+ at iteration (\d+)/")


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("robot-meta")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "robot_meta.cli"]


def _train_cmd(args: argparse.Namespace, out: Path) -> list[str]:
    return [
        *_cli(),
        "train",
        "--algo",
        args.algo,
        "--env",
        args.env,
        "--budget",
        "smoke",
        "--seed",
        "0",
        "--set",
        f"meta_iterations={args.iterations}",
        "--set",
        "checkpoint_interval=1",
        "--out",
        str(out),
    ]


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, env=env, cwd=REPO_ROOT)


def _inspect(run: Path, algo: str) -> tuple[int | None, list[str], list[str]]:
    """(checkpoint iteration or None, corrupt files, stale temp files) of a run directory."""
    from robot_meta.meta.checkpoint import CheckpointError, load_checkpoint, read_run_config

    corrupt: list[str] = []
    iteration: int | None = None
    if (run / "config.json").exists():
        try:
            read_run_config(run)
        except CheckpointError as exc:
            corrupt.append(f"config.json: {exc}")
    ckpt = run / "checkpoint.pt"
    if ckpt.exists():
        try:
            iteration = int(load_checkpoint(ckpt, algo)["counters"]["iteration"])
        except CheckpointError as exc:
            corrupt.append(f"checkpoint.pt: {exc}")
    stale = sorted(p.name for p in run.glob(".*.tmp")) if run.exists() else []
    return iteration, corrupt, stale


def _same_weights(a: Path, b: Path, algo: str) -> tuple[bool, str]:
    import torch

    from robot_meta.meta.checkpoint import load_checkpoint

    sa, sb = load_checkpoint(a, algo), load_checkpoint(b, algo)
    if sa["counters"] != sb["counters"]:
        return False, f"counters {sa['counters']} vs {sb['counters']}"
    for name, module in sa["models"].items():
        for key, value in module.items():
            if not torch.equal(value, sb["models"][name][key]):
                return False, f"{name}.{key} differs"
    if repr(sa["optimizers"]) != repr(sb["optimizers"]):
        return False, "optimizer state differs"
    return True, "bitwise equal"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 kills instead of 20")
    ap.add_argument("--kills", type=int, default=None, help="SIGKILLs to inject (default 20, quick 5)")
    ap.add_argument("--iterations", type=int, default=10, help="meta-iterations of each run (default 10)")
    ap.add_argument("--algo", default="meta-dqn", choices=["meta-dqn", "reptile", "context"])
    ap.add_argument("--env", default="robot_meta/PandaPush-v0")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "runs" / NAME)
    args = ap.parse_args(argv)
    kills_wanted = args.kills if args.kills is not None else (5 if args.quick else 20)

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    t_start = time.perf_counter()

    ref = args.workdir / "reference"
    t0 = time.perf_counter()
    proc = _start(_train_cmd(args, ref), args.workdir / "reference.log")
    if proc.wait() != 0:
        print((args.workdir / "reference.log").read_text()[-3000:], file=sys.stderr)
        return 1
    t_ref = time.perf_counter() - t0
    print(f"reference run: {t_ref:.1f} s", flush=True)

    rng = np.random.default_rng(args.seed)
    events: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    kills = resumes = wrong_resumes = 0
    corrupt_total: list[str] = []
    stale_max = 0
    while kills < kills_wanted:
        r = len(rounds)
        run = args.workdir / f"round{r}"
        attempt = 0
        expected: int | None = None  # iteration of the checkpoint on disk before this attempt
        while True:
            log = args.workdir / f"round{r}_attempt{attempt}.log"
            delay = float(rng.uniform(0.0, t_ref))
            proc = _start(_train_cmd(args, run), log)
            try:
                rc = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            text = log.read_text(errors="replace")
            found = [int(m) for m in RESUME_RE.findall(text)]
            if expected is not None and found:
                resumes += 1
                if found != [expected]:
                    wrong_resumes += 1
            elif expected is not None and rc == 0:
                wrong_resumes += 1  # finished without resuming from an existing checkpoint
            iteration, corrupt, stale = _inspect(run, args.algo)
            corrupt_total += [f"round {r} attempt {attempt}: {c}" for c in corrupt]
            stale_max = max(stale_max, len(stale))
            killed = rc == -signal.SIGKILL
            events.append(
                {
                    "round": r,
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "killed": killed,
                    "exit": rc,
                    "resumed_from": found[0] if found else None,
                    "expected_resume": expected,
                    "checkpoint_iteration": iteration,
                    "corrupt": corrupt,
                    "stale_temp_files": stale,
                }
            )
            print(
                f"round {r} attempt {attempt}: {'SIGKILL' if killed else f'exit {rc}'} after {delay:.1f} s, "
                f"resumed from {found[0] if found else '-'}, checkpoint at iteration {iteration}, "
                f"corrupt {len(corrupt)}, temp files {len(stale)}",
                flush=True,
            )
            if corrupt:
                break
            if killed:
                kills += 1
                expected = iteration
                attempt += 1
                continue
            if rc != 0:
                print(text[-3000:], file=sys.stderr)
                corrupt_total.append(f"round {r} attempt {attempt}: exit {rc}")
                break
            same, why = _same_weights(run / "checkpoint.pt", ref / "checkpoint.pt", args.algo)
            rounds.append({"round": r, "kills": attempt, "equal_to_reference": same, "detail": why})
            print(f"round {r}: {attempt} kills, final weights vs reference: {why}", flush=True)
            break
        if corrupt_total:
            break

    wall = time.perf_counter() - t_start
    equal = sum(r["equal_to_reference"] for r in rounds)
    kill_points = [e["checkpoint_iteration"] for e in events if e["killed"]]
    results = {
        "kills": kills,
        "resumes": resumes,
        "wrong_resumes": wrong_resumes,
        "corrupt_files": len(corrupt_total),
        "corrupt_detail": corrupt_total,
        "rounds": rounds,
        "rounds_equal_to_reference": equal,
        "max_stale_temp_files": stale_max,
        "killed_before_first_checkpoint": sum(1 for k in kill_points if k is None),
        "reference_wall_s": t_ref,
        "wall_s": wall,
        "iterations": args.iterations,
        "algo": args.algo,
        "env": args.env,
        "train_command": " ".join(_train_cmd(args, Path("RUN"))[1:]),
        "events": events,
    }
    cmd = command_line()
    write_results(NAME + ("_quick" if args.quick else ""), results, command=cmd)
    ok = not corrupt_total and wrong_resumes == 0 and equal == len(rounds) and kills >= kills_wanted
    rows = [
        ["SIGKILLs injected (uniform over the reference run's wall time)", kills],
        ["... of which before the first checkpoint", results["killed_before_first_checkpoint"]],
        ["resumes from an existing checkpoint", resumes],
        ["resumes not from the last checkpoint on disk", wrong_resumes],
        ["corrupt config.json / checkpoint.pt found after a kill", len(corrupt_total)],
        ["rounds run to completion", len(rounds)],
        ["... final weights bitwise equal to the uninterrupted run", f"{equal} / {len(rounds)}"],
        ["most stale temp files in a run dir (killed atomic writes)", stale_max],
        ["uninterrupted run, wall time", f"{t_ref:.1f} s"],
        ["whole benchmark, wall time", f"{wall:.0f} s"],
    ]
    body = (
        f"`robot-meta train --algo {args.algo} --env {args.env} --budget smoke --set meta_iterations="
        f"{args.iterations} --set checkpoint_interval=1` killed with SIGKILL at random times, then restarted "
        f"on the same run directory until it finishes. Result: **{'PASS' if ok else 'FAIL'}**.\n\n"
        + markdown_table(["measure", "value"], rows)
    )
    if not args.quick:  # quick runs write NAME_quick.json and leave BENCHMARKS.md alone
        update_markdown_section(NAME, body, command=cmd)
    print(body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
