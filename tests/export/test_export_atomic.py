"""Re-exporting replaces an export directory atomically: a kill at any point leaves a loadable policy."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from export_helpers import export_fake

from robot_meta.runtime import AdaptivePolicy, load_manifest
from robot_meta.runtime.manifest import MANIFEST_FILE, previous_export_dir, recover_export_dir

HERE = Path(__file__).resolve().parent

CHILD = """
import sys
sys.path.insert(0, {here!r})
from pathlib import Path
from export_helpers import make_run
from robot_meta.export import ExportConfig, export_trained
out = Path(sys.argv[1])
run = make_run(out.parent / "run", seed=int(sys.argv[2]))
print("ready", flush=True)
export_trained(run, out, config=ExportConfig(parity_samples=4096))
print("done", flush=True)
"""


def _kill_export_after(out: Path, seed: int, delay: float) -> float | None:
    """Start an export of a new run into `out` and SIGKILL it `delay` s after it starts exporting.

    Returns the seconds the export took (from "ready" to a clean exit) if it finished first, else None.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=str(HERE)), str(out), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return None
    return time.perf_counter() - t0 if proc.returncode == 0 else None


def test_killed_reexport_always_leaves_a_loadable_policy(tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_fake(out)
    duration = _kill_export_after(tmp_path / "timing", 99, 120.0)  # how long one export takes here
    assert duration is not None
    rng = random.Random(0)
    interrupted = 0
    for i in range(10):
        # kill points spread over the export itself (writing, checking, swapping)
        interrupted += _kill_export_after(out, i, rng.uniform(0.0, duration)) is None
        policy = AdaptivePolicy.load(out)  # the previous export, the new one, or the parked previous one
        assert policy.n_actions == 4
        assert (out / MANIFEST_FILE).is_file() or (previous_export_dir(out) / MANIFEST_FILE).is_file()
    assert interrupted >= 3  # most kills land inside an export (not after it ended)
    export_fake(out)  # a later export recovers any interrupted swap and succeeds
    assert not previous_export_dir(out).exists()
    load_manifest(out)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".export.")]
    assert all(".stage-" in name for name in leftovers)  # only the killed processes' staging dirs


def test_interrupted_swap_is_recovered_and_loadable(tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_fake(out)
    os.rename(out, previous_export_dir(out))  # killed between the two renames
    assert load_manifest(out).directory == previous_export_dir(out)
    AdaptivePolicy.load(out)
    recover_export_dir(out)
    assert (out / MANIFEST_FILE).is_file() and not previous_export_dir(out).exists()


def test_failed_export_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    export_fake(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import robot_meta.export.onnx_export as onnx_export

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash during parity")

    monkeypatch.setattr(onnx_export, "check_parity", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        export_fake(out, seed=5)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export")] == []
