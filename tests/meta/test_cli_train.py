"""`robot-meta train`: bad input exits 2 with one clear line; a real smoke run trains and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robot_meta.cli import main

ENV = "robot_meta/PandaReach-v0"


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", "--algo", "meta-dqn", "--env", ENV, "--budget", "smoke", "--out", str(out), *extra]


@pytest.mark.parametrize(
    ("argv_extra", "expected"),
    [
        (["--set", "num_tasks=0"], "num_tasks"),
        (["--set", "lr=-0.001"], "lr"),
        (["--set", "inner_lr=-1"], "inner_lr"),
        (["--set", "inner_steps=0"], "inner_steps"),
        (["--set", "meta_batch_size=0"], "meta_batch_size"),
        (["--set", "bogus=1"], "no field 'bogus'"),
        (["--set", "lr"], "KEY=VALUE"),
        (["--preset", "nope"], "preset 'nope'"),
        (["--budget", "huge"], "invalid choice: 'huge'"),
        (["--backend", "carrier-pigeon"], "backend 'carrier-pigeon'"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_extra: list[str], expected: str
) -> None:
    out = tmp_path / "run"
    assert main(_train(out, *argv_extra)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and expected in err
    assert not out.exists()  # nothing was created


def test_unknown_algorithm_and_env_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--algo", "ppo", "--env", ENV, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid choice: 'ppo'" in err
    assert (
        main(
            ["train", "--algo", "reptile", "--env", "robot_meta/PandaJuggle-v0", "--out", str(tmp_path / "r")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--preset" in err
    argv = [
        "train",
        "--algo",
        "reptile",
        "--env",
        "nope/Nope-v0",
        "--preset",
        "push",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown environment id 'nope/Nope-v0'" in err


def test_smoke_train_on_panda_then_resume_and_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(_train(out, "--set", "meta_iterations=2")) == 0
    info = json.loads((out / "config.json").read_text())
    assert (
        info["config"]["env_id"] == ENV
        and info["config"]["preset"] == "reach"
        and info["config"]["budget"] == "smoke"
    )
    assert (out / "checkpoint.pt").is_file()
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(_train(out, "--set", "meta_iterations=2")) == 0  # complete: resuming does nothing
    assert (out / "checkpoint.pt").read_bytes() == before
    assert main(_train(out, "--set", "meta_iterations=2", "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "seed: 0 in the run vs 1 now" in err
