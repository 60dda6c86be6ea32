"""Fault injection: a training process killed with SIGKILL at random points resumes without loss.

A real subprocess trains the toy family into a run directory (checkpoint every iteration) and is
killed with ``kill -9`` at a random moment after it has written at least one checkpoint - during an
iteration or in the middle of an atomic checkpoint write. After every kill the run directory must hold
a readable ``config.json`` and ``checkpoint.pt`` (never a torn file); the next process must resume
from exactly that checkpoint; and the final weights must equal those of an uninterrupted run.
The long version (>= 20 kills of ``robot-meta train`` on the Panda Push env) is
``benchmarks/fault_injection.py``.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet
import pytest
import torch
from toy_env import toy_config, toy_trainer

from robot_meta.meta import CHECKPOINT_FILE, load_checkpoint
from robot_meta.meta.checkpoint import read_run_config

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PUSH = "robot_meta/PandaPush-v0"
ITERATIONS = 16
#: Small sizes so that one iteration takes tens of milliseconds and checkpoints are frequent.
FAULT_CFG = dict(meta_iterations=ITERATIONS, checkpoint_interval=1, learning_starts=40, buffer_capacity=400)
KILLS = 3

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    sys.path.insert(0, {here!r})
    import torch
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from toy_env import toy_config, toy_trainer
    cfg = toy_config("meta-dqn", **{cfg!r})
    toy_trainer(cfg).train(sys.argv[1], progress=False)
    """
)


def _ckpt_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _start(script: Path, run: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, str(script), str(run)], stdout=fh, stderr=fh, env=env)


def test_sigkill_at_random_points_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    cfg = toy_config("meta-dqn", **FAULT_CFG)
    reference = toy_trainer(cfg)
    # One iteration's time (with its checkpoint) sets the kill window, so that a kill lands inside
    # the next 1-3 iterations on a fast idle machine as on a loaded one.
    per_iteration = reference.train(tmp_path / "reference", progress=False).wall_time / ITERATIONS

    script = tmp_path / "train_toy.py"
    script.write_text(SCRIPT.format(here=str(HERE), cfg=FAULT_CFG))
    run, ckpt = tmp_path / "run", tmp_path / "run" / CHECKPOINT_FILE
    rng = np.random.default_rng(7)
    saved_at: list[int] = []
    for kill in range(KILLS):
        log = tmp_path / f"attempt{kill}.log"
        before = _ckpt_id(ckpt)
        proc = _start(script, run, log)
        deadline = time.monotonic() + 120
        while _ckpt_id(ckpt) == before:  # wait for this process's first checkpoint (real progress)
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.005)
        time.sleep(
            float(rng.uniform(0.0, 2.5 * per_iteration))
        )  # then a random point: mid-iteration or mid-write
        assert proc.poll() is None, "the run finished before it could be killed: raise ITERATIONS"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL

        # Never a torn file: both run files load, the checkpoint with weights_only=True.
        read_run_config(run)
        state = load_checkpoint(ckpt, "meta-dqn")
        it = int(state["counters"]["iteration"])
        assert 1 <= it < ITERATIONS
        if saved_at:
            resumed = re.findall(r"resuming meta-dqn from \S+ at iteration (\d+)/", log.read_text())
            assert resumed == [str(saved_at[-1])], "did not resume from the last checkpoint"
            assert it >= saved_at[-1]
        saved_at.append(it)

    final_log = tmp_path / "final.log"
    proc = _start(script, run, final_log)
    assert proc.wait(timeout=300) == 0, final_log.read_text()[-2000:]
    assert re.findall(r"at iteration (\d+)/", final_log.read_text()) == [str(saved_at[-1])]

    final = load_checkpoint(ckpt, "meta-dqn")
    ref = reference.state_dict()
    assert final["counters"] == ref["counters"] and final["counters"]["iteration"] == ITERATIONS
    for name, module in ref["models"].items():
        for key, value in module.items():
            assert torch.equal(final["models"][name][key], value), (
                f"{name}.{key} differs from the straight run"
            )
    assert repr(final["optimizers"]) == repr(ref["optimizers"])
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # resumes remove torn writes


TORN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {here!r})
    import torch
    torch.set_num_threads(1)
    real_save = torch.save
    calls = [0]

    def torn_save(obj, fh, *args, **kwargs):  # the 3rd checkpoint dies half-written
        calls[0] += 1
        if calls[0] < 3:
            return real_save(obj, fh, *args, **kwargs)
        import io
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = torn_save
    from toy_env import toy_config, toy_trainer
    toy_trainer(toy_config("meta-dqn", **{cfg!r})).train(sys.argv[1], progress=False)
    """
)


def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """The kill lands in the middle of ``torch.save`` (forced): the half-written temp file is never
    read, ``checkpoint.pt`` is still the previous one, and the resumed run ends like a straight one."""
    cfg = dict(FAULT_CFG, meta_iterations=6)
    reference = toy_trainer(toy_config("meta-dqn", **cfg))
    reference.train(tmp_path / "reference", progress=False)

    torn = tmp_path / "torn.py"
    torn.write_text(TORN_SCRIPT.format(here=str(HERE), cfg=cfg))
    run = tmp_path / "run"
    proc = _start(torn, run, tmp_path / "torn.log")
    assert proc.wait(timeout=300) == -signal.SIGKILL, (tmp_path / "torn.log").read_text()[-2000:]
    stale = [p for p in run.iterdir() if p.name.startswith(".checkpoint.pt.") and p.name.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].stat().st_size > 0  # the torn write
    assert load_checkpoint(run / CHECKPOINT_FILE, "meta-dqn")["counters"]["iteration"] == 2

    script = tmp_path / "train_toy.py"
    script.write_text(SCRIPT.format(here=str(HERE), cfg=cfg))
    log = tmp_path / "resume.log"
    proc = _start(script, run, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    assert re.findall(r"at iteration (\d+)/", log.read_text()) == ["2"]
    assert (
        f"removed 1 half-written temp file(s) of an interrupted run: ['{stale[0].name}']" in log.read_text()
    )
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # cleaned up on resume
    final = load_checkpoint(run / CHECKPOINT_FILE, "meta-dqn")
    for name, module in reference.state_dict()["models"].items():
        for key, value in module.items():
            assert torch.equal(final["models"][name][key], value), f"{name}.{key} differs"


# -- a physics client that dies during training ------------------------------------------------------------
_STEPS: dict[Hashable, int] = {}


class _LosesPhysics(gym.Wrapper[Any, Any, Any, Any]):
    """Disconnects the PyBullet client right before env step number `at` (and every `every` after)."""

    def __init__(self, env: gym.Env[Any, Any], key: Hashable, at: int, every: int | None) -> None:
        super().__init__(env)
        self.key, self.at, self.every = key, at, every

    def step(self, action: Any) -> Any:
        n = _STEPS[self.key] = _STEPS.get(self.key, 0) + 1
        if n == self.at or (self.every is not None and n > self.at and (n - self.at) % self.every == 0):
            pybullet.disconnect(physicsClientId=self.env.unwrapped.sim.client)  # type: ignore[attr-defined]
        return self.env.step(action)


@dataclass(frozen=True)
class LosesPhysics:
    """An env factory (hashable, picklable) whose Push env loses its physics client mid-episode."""

    at: int
    every: int | None = None

    def __call__(self) -> gym.Env[Any, Any]:
        return _LosesPhysics(gym.make(PUSH, action_mode="discrete"), self, self.at, self.every)


def _panda_config() -> Any:
    from robot_meta.meta import make_config

    return make_config(
        "meta-dqn", budget="smoke", env_id=PUSH, preset="push",
        overrides=dict(meta_iterations=2, checkpoint_interval=1, learning_starts=50),
    )  # fmt: skip


def test_physics_client_lost_mid_episode_repeats_the_iteration_bitwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from robot_meta.meta import make_algorithm
    from robot_meta.meta.rollout import cached_env

    cfg = _panda_config()
    straight = make_algorithm(cfg)
    straight.train(tmp_path / "straight", progress=False)
    factory = LosesPhysics(at=130)  # mid-episode, in the first iteration's collection
    faulty = make_algorithm(cfg, env_factory=factory)
    with caplog.at_level(logging.WARNING):
        faulty.train(tmp_path / "faulty", progress=False)
    assert "the physics client disconnected" in caplog.text and "repeating the iteration" in caplog.text
    assert cached_env(factory).unwrapped.sim.connects == 2  # type: ignore[attr-defined]
    sa, sb = straight.state_dict(), faulty.state_dict()
    assert sa["counters"] == sb["counters"]
    for name, module in sa["models"].items():
        for key, value in module.items():
            assert torch.equal(value, sb["models"][name][key]), f"{name}.{key} differs after the recovery"


def test_physics_client_lost_again_fails_with_a_clear_error(tmp_path: Path) -> None:
    from robot_meta.envs.sim import PhysicsDisconnectedError
    from robot_meta.meta import make_algorithm

    trainer = make_algorithm(_panda_config(), env_factory=LosesPhysics(at=20, every=20))
    with pytest.raises(
        PhysicsDisconnectedError, match=r"disconnected twice in iteration 1 .*run the same command"
    ):
        trainer.train(tmp_path / "run", progress=False)
