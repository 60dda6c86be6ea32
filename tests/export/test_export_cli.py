"""The three-command tour on the Panda slide env (smoke budget): train -> export -> adapt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robot_meta  # noqa: F401  (registers the env ids)
from robot_meta.cli import main
from robot_meta.runtime import AdaptiveController, AdaptivePolicy, ControllerConfig, load_manifest

ENV_ID = "robot_meta/PandaSlide-v0"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "slide"
    cmd = [sys.executable, "-m", "robot_meta.cli", "train", "--algo", "meta-dqn", "--env", ENV_ID]
    proc = subprocess.run(
        [*cmd, "--budget", "smoke", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def smoke_export(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "slide"
    assert main(["export", str(smoke_run), "--out", str(out), "--parity-samples", "2048"]) == 0
    return out


def test_export_manifest_describes_the_panda_env(smoke_export: Path, smoke_run: Path) -> None:
    m = load_manifest(smoke_export)
    doc = m.to_dict()
    env = gym.make(ENV_ID, action_mode="discrete")
    try:
        layout = [[n, s] for n, s in env.unwrapped.observation_layout]  # type: ignore[attr-defined]
        actions = env.unwrapped.describe_actions()  # type: ignore[attr-defined]
        obs_dim = env.observation_space.shape[0]  # type: ignore[index]
    finally:
        env.close()
    assert doc["env_id"] == ENV_ID and doc["observation"]["layout"] == layout
    assert doc["observation"]["dim"] == obs_dim and len(doc["actions"]["map"]) == len(actions)
    assert doc["train_distribution"]["name"] == "slide"
    assert doc["producer"]["command"].endswith("--parity-samples 2048")
    assert doc["train"]["command"].startswith(
        f"robot-meta train --algo meta-dqn --env {ENV_ID} --preset slide --budget smoke"
    )
    assert doc["parity"]["policy_default_head"]["samples"] == 2048
    assert m.head_rule is not None and m.head_rule.support_size == 32


def test_adapt_command_prints_success_before_and_after(
    smoke_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "adapt.json"
    args = ["adapt", str(smoke_export), "--env", ENV_ID, "--split", "test", "--episodes", "2", "--tasks", "2"]
    assert main([*args, "--rate", "0", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "success before adaptation:" in text and "after adaptation:" in text
    doc = json.loads(out_json.read_text())
    assert doc["tasks"] == 2 and doc["adaptations"] == 2 and doc["rolled_back"] == 0
    assert doc["adaptation"] is True
    # The control run: same tasks and starts, adaptation off, so the first episodes are identical.
    assert main([*args, "--rate", "0", "--no-adapt", "--json", str(out_json)]) == 0
    assert "adaptation switched off" in capsys.readouterr().out
    off = json.loads(out_json.read_text())
    assert off["adaptation"] is False and off["adaptations"] == 0
    assert off["success_before"] == doc["success_before"] and off["return_before"] == doc["return_before"]


def test_adapt_command_meets_the_protocols_held_out_tasks_and_starts(
    smoke_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``robot-meta adapt --seed S`` plays the units of ``robot-meta evaluate --seeds S``: the same
    tasks (`evaluation_tasks`) and first resets (`unit_seeds`), so its first, not-yet-adapted
    episodes return exactly what the protocol's K = 0 episodes return for the same export."""
    from robot_meta.meta.eval import evaluate

    out_json = tmp_path / "adapt.json"
    args = ["adapt", str(smoke_export), "--split", "test", "--episodes", "2", "--tasks", "3", "--seed", "4"]
    assert main([*args, "--rate", "0", "--no-adapt", "--json", str(out_json)]) == 0
    capsys.readouterr()
    device = json.loads(out_json.read_text())
    res = evaluate(smoke_export, "test", shots=(0,), episodes=1, seeds=(4,), num_tasks=3, plot=False)
    (method,) = res.methods.values()  # the export itself
    k0 = method.per_k[0]
    assert device["return_before"] == pytest.approx(k0.ret, abs=1e-4)
    assert device["success_before"] == pytest.approx(k0.success)


def test_controller_runs_ticks_against_the_panda_env(smoke_export: Path) -> None:
    policy = AdaptivePolicy.load(smoke_export)
    env = gym.make(ENV_ID, action_mode="discrete")
    try:
        ctrl = AdaptiveController(policy, env, ControllerConfig(rate_hz=100, adapt_every=10))
        report = ctrl.run(ticks=120, seed=3)
    finally:
        env.close()
    assert report.ticks == 120 and len(report.episodes) >= 2
    assert report.adaptations >= 5 and report.refused_observations == 0
    # Zero on an idle machine (benchmarks/runtime_latency.py); a shared, loaded CI box slows the env's steps.
    assert report.missed_ticks <= 30
    assert np.isfinite(policy.head[0]).all()


def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["adapt", str(tmp_path / "missing"), "--episodes", "2"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["adapt", str(tmp_path), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "at least 2" in err and len(err.strip().splitlines()) == 1
