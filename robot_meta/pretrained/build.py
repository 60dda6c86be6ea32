"""Build a pretrained folder by running the documented commands (``benchmarks/pretrained.py``, ``make bench``).

`build` runs each command through the package's own CLI (``RUN`` = a scratch run directory),
copies the shipped files (`SHIPPED`; not the checkpoint, whose replay buffers are tens of MB)
into a staging folder, writes ``provenance.json`` (the commands, versions, date, CPU time and the
sha256 of every file), verifies it and swaps the folder in. Needs the ``train`` extra.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from robot_meta.demo import ENV_ID
from robot_meta.pretrained import PROVENANCE_FILE, file_hashes, verify

__all__ = ["COMMANDS", "QUICK", "SHIPPED", "build"]

log = logging.getLogger(__name__)

COMMANDS = (
    f"robot-meta train --algo context --env {ENV_ID} --budget full --seed 0 --out RUN",
    "robot-meta export RUN --out RUN/export",
    "robot-meta evaluate RUN --split test --shots 0,1,3,5 --episodes 3 --seeds 0,1,2 --tasks 8",
)
SHIPPED = ("config.json", "eval.json", "tensorboard", "export")


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("robot_meta", "torch", "numpy", "onnx", "onnxruntime", "pybullet", "gymnasium")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


def build(out: Path, commands: tuple[str, ...] = COMMANDS) -> dict[str, object]:
    """Run `commands` (``RUN`` = a scratch run directory) and write the pretrained folder `out` atomically."""
    from robot_meta.cli import main

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        for command in commands:
            argv = shlex.split(command.replace("RUN", str(run)))[1:]
            log.info("$ %s", command)
            rc = main(argv)
            if rc != 0:
                raise SystemExit(f"`{command}` exited with {rc}")
        stage = out.with_name(f".{out.name}.stage")
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        for name in SHIPPED:
            src = run / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, stage / name)
    record: dict[str, object] = {
        "name": out.name,
        "what": "ContextDQN (RMA-style teacher training) on the slide family; adapt with `robot-meta demo` or `robot-meta adapt export/`",
        "commands": list(commands),
        "made_by": "benchmarks/pretrained.py",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "cpu_seconds": round(time.process_time() - c0),
        "wall_seconds": round(time.perf_counter() - t0),
        "versions": _versions(),
        "files": file_hashes(stage),
    }
    (stage / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    verify(stage)
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("wrote %s (%.2f MB, %s CPU-s)", out, size / 1e6, record["cpu_seconds"])
    return record


#: ``--quick``: the same steps on the smoke budget, into a scratch folder (the shipped run is kept).
QUICK = (
    COMMANDS[0].replace("--budget full", "--budget smoke"),
    COMMANDS[1],
    "robot-meta evaluate RUN --split test --shots 0,1 --episodes 1 --seeds 0 --tasks 1",
)
