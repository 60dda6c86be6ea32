"""One writer per run directory: a second trainer on the same --out is refused, naming the first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from toy_env import toy_config, toy_trainer

from robot_meta.meta import RunLockedError
from robot_meta.meta.checkpoint import lock_run_dir

SMALL = dict(meta_iterations=2, checkpoint_interval=1)


def test_second_trainer_on_a_locked_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with lock_run_dir(out):
        with pytest.raises(
            RunLockedError, match=rf"being trained by another process \(pid {os.getpid()} on "
        ):
            toy_trainer(toy_config("meta-dqn", **SMALL)).train(out)
        assert not (out / "config.json").exists()
    toy_trainer(toy_config("meta-dqn", **SMALL)).train(out)  # released: the run proceeds
    with lock_run_dir(out):  # and the trainer released it on exit
        pass


def test_lock_of_a_killed_process_is_not_stale(tmp_path: Path) -> None:
    out = tmp_path / "run"
    child = (
        "import sys, time; from pathlib import Path; from robot_meta.meta.checkpoint import lock_run_dir\n"
        "with lock_run_dir(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with pytest.raises(RunLockedError, match=f"pid {proc.pid}"), lock_run_dir(out):
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with lock_run_dir(out):  # the kernel dropped the dead process's lock
        pass


def test_cli_train_on_a_locked_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robot_meta.cli import main

    out = tmp_path / "run"
    argv = ["train", "--algo", "meta-dqn", "--env", "robot_meta/PandaSlide-v0", "--budget", "smoke"]
    with lock_run_dir(out):
        assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"pid {os.getpid()}" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
