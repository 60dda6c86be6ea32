"""CLI arguments and output paths are checked before any work: exit 2, one `error:` line, nothing on disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robot_meta import checks as cli_checks
from robot_meta.cli import main

ENV = "robot_meta/PandaSlide-v0"


def _one_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", "--algo", "meta-dqn", "--env", ENV, "--budget", "smoke", "--out", str(out), *extra]


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format": "robot_meta.run/1"}))
    return run


# -- class 5: sizes no machine has ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [str(2**70), str(2**32), "-1"])
def test_train_seed_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: str) -> None:
    out = tmp_path / "r"
    assert main(_train(out, "--seed", seed)) == 2
    _one_error(capsys, "--seed", "[0, 4294967295]")
    assert not out.exists()


def test_seed_rule_is_the_same_for_every_command(
    fake_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = str(2**70)
    assert main(["evaluate", str(fake_run), "--seeds", f"0,{big}"]) == 2
    _one_error(capsys, "--seeds", "[0, 4294967295]")
    assert main(["adapt", str(tmp_path / "noexport"), "--seed", big]) == 2
    _one_error(capsys, "--seed", "[0, 4294967295]")
    assert main(_train(tmp_path / "r", "--set", f"seed={big}")) == 2
    _one_error(capsys, "seed")
    from robot_meta.meta import config_from_options

    config = config_from_options("meta-dqn", env_id=ENV, budget="smoke", seed=cli_checks.MAX_SEED)
    assert config.seed == 2**32 - 1  # the largest seed itself is accepted


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--shots", "100000000000"], "--shots"),
        (["--shots", "0,1001"], "--shots"),
        (["--episodes", "100000000"], "--episodes"),
        (["--tasks", "100000000"], "--tasks"),
    ],
)
def test_evaluate_sizes_are_bounded(
    fake_run: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    before = sorted(p.name for p in fake_run.iterdir())
    assert main(["evaluate", str(fake_run), *argv]) == 2
    _one_error(capsys, needle, "out of range")
    assert sorted(p.name for p in fake_run.iterdir()) == before


def test_replay_memory_estimate_is_checked() -> None:
    from robot_meta.meta import ResourceError
    from robot_meta.meta.trainer import available_memory, check_replay_memory

    check_replay_memory(1_000, 10, 4)
    assert available_memory() is not None
    with pytest.raises(ResourceError, match="lower --set buffer_capacity"):
        check_replay_memory(10**11, 40, 16)


def test_huge_buffer_capacity_is_refused_before_the_run_directory_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main(_train(out, "--set", "buffer_capacity=1e11")) == 2
    _one_error(capsys, "buffer_capacity=100000000000", "GiB")
    assert not out.exists()  # the rerun with a sane value starts from scratch


# -- class 6: contradicting options --------------------------------------------------------------------
def test_env_and_set_env_id_must_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(_train(out, "--set", "env_id=robot_meta/PandaPush-v0")) == 2
    _one_error(capsys, "contradicts --env")
    assert main(_train(out, "--seed", "3", "--set", "seed=4")) == 2
    _one_error(capsys, "contradicts --seed")
    assert not out.exists()


def test_gymnasium_env_that_is_not_a_robot_meta_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    argv = ["train", "--algo", "meta-dqn", "--env", "CartPole-v1", "--preset", "push", "--out", str(out)]
    assert main(argv) == 2
    _one_error(capsys, "'CartPole-v1'", "not a robot_meta one")
    assert not out.exists()


# -- class 7: output paths checked before the work ---------------------------------------------------
def test_out_that_is_an_existing_file(
    tmp_path: Path, fake_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "file"
    f.write_text("keep me")
    assert main(_train(f)) == 2
    _one_error(capsys, "not a directory")
    assert main(["evaluate", str(fake_run), "--out", str(f)]) == 2
    _one_error(capsys, "not a directory")
    assert main(["export", str(fake_run), "--out", str(f)]) == 2
    _one_error(capsys, "not a directory")
    assert main(_train(f / "sub")) == 2
    _one_error(capsys, "is a file")
    assert f.read_text() == "keep me"


def test_adapt_json_naming_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adapt", str(tmp_path / "noexport"), "--json", str(tmp_path)]) == 2
    _one_error(capsys, "--json", "is a directory")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop CAP_DAC_OVERRIDE")
def test_unwritable_out_is_refused_before_the_work(tmp_path: Path, fake_run: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    drop = ["setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override"]
    cli = [sys.executable, "-m", "robot_meta.cli"]
    try:
        for argv in (
            _train(locked / "r"),
            ["evaluate", str(fake_run), "--out", str(locked / "e")],
            ["export", str(fake_run), "--out", str(locked / "x")],
            ["adapt", str(tmp_path / "noexport"), "--json", str(locked / "a.json")],
        ):
            proc = subprocess.run([*drop, *cli, *argv], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2, proc.stderr[-1000:]
            lines = [
                ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("pybullet build time")
            ]
            assert len(lines) == 1 and "cannot write into" in lines[0], proc.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_check_output_dir_accepts_new_nested_paths(tmp_path: Path) -> None:
    assert cli_checks.check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing
