"""`robot-meta evaluate`: bad input exits 2 with one clear line; a smoke run on Panda Reach evaluates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robot_meta.cli import main
from robot_meta.meta import make_config, train_run


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--shots", ""], "--shots is empty"),
        (["--shots", ","], "--shots is empty"),
        (["--shots", "0,one"], "comma-separated integers"),
        (["--shots=-1,2"], "--shots must be >= 0"),
        (["--seeds", ""], "--seeds is empty"),
        (["--split", "validation"], "invalid choice: 'validation'"),
        (["--episodes", "0"], "must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert main(["evaluate", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and expected in err


def test_missing_or_foreign_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "does not exist" in err
    assert main(["evaluate", str(tmp_path)]) == 2  # exists, but no config.json
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a run directory" in err


@pytest.mark.slow
def test_smoke_run_on_panda_reach_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    config = make_config(
        "meta-dqn",
        budget="smoke",
        env_id="robot_meta/PandaReach-v0",
        preset="reach",
        overrides={"meta_iterations": 1, "num_tasks": 2, "meta_batch_size": 1, "episodes_per_task": 1},
    )
    train_run(config, run, progress=False)
    out = tmp_path / "eval"
    argv = ["evaluate", str(run), "--shots", "0,1", "--episodes", "1", "--seeds", "0", "--tasks", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "meta-dqn" in printed and "paired gain" in printed
    data = json.loads((out / "eval.json").read_text())
    assert (
        data["split"] == "test"
        and data["algo"] == "meta-dqn"
        and data["env_id"] == "robot_meta/PandaReach-v0"
    )
    cells = data["methods"]["meta-dqn"]["K"]
    assert cells["0"]["target_transitions"] == 0 and 0 < cells["1"]["target_transitions"] <= 50
    assert cells["0"]["n_units"] == 2
    assert (out / "eval.png").stat().st_size > 5_000
    # the paired control on the PyBullet env: at K=1 only, the gain is adapted minus control per unit
    units = data["methods"]["meta-dqn"]["units"]
    assert [("control_success" in u) for u in units] == [u["k"] == 1 for u in units]
    k1 = [u for u in units if u["k"] == 1]
    assert cells["1"]["paired_gain"] == pytest.approx(
        sum(u["success"] - u["control_success"] for u in k1) / 2
    )
    assert "paired_gain" not in cells["0"]
    # --no-control: the same adapted numbers, bitwise (the control used neither the env nor the streams)
    assert main([*argv, "--out", str(tmp_path / "off"), "--no-control"]) == 0
    off = json.loads((tmp_path / "off" / "eval.json").read_text())["methods"]["meta-dqn"]
    keys = ("seed", "task_index", "k", "success", "return", "target_transitions", "task")
    assert [{k: u[k] for k in keys} for u in off["units"]] == [{k: u[k] for k in keys} for u in units]
    assert not any("control_success" in u for u in off["units"]) and "paired_gain" not in off["K"]["1"]
