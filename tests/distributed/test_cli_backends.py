"""`robot-meta train --backend ray / --workers N`: a Panda smoke run gives the same checkpoint as the
default in-process backend; bad backend options exit 2 with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from robot_meta.cli import main
from robot_meta.meta import CHECKPOINT_FILE

ENV = "robot_meta/PandaReach-v0"


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", "--algo", "reptile", "--env", ENV, "--budget", "smoke", "--out", str(out), *extra]


def _models(run: Path) -> dict[str, Any]:
    ckpt = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert ckpt["counters"]["updates"] > 0
    return {"counters": ckpt["counters"], **ckpt["models"]["qnet"]}


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), f"{key} differs"
        else:
            assert value == b[key]


@pytest.mark.parametrize(
    ("argv_extra", "expected"),
    [
        (["--backend", "dask"], "backend 'dask'"),
        (["--workers", "0"], "--workers 0"),
        (["--backend", "local", "--ray-address", "127.0.0.1:6379"], "--ray-address needs --backend ray"),
        (["--workers", "two"], "invalid int value: 'two'"),
    ],
)
def test_bad_backend_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_extra: list[str], expected: str
) -> None:
    out = tmp_path / "run"
    assert main(_train(out, *argv_extra)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and expected in err
    assert not out.exists()


def test_help_documents_the_backend_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("--backend {local,ray}", "--workers N", "--ray-address ADDR", "default: local"):
        assert needle in text


def test_panda_smoke_run_is_the_same_on_ray_and_a_local_pool(tmp_path: Path, ray_backend: Any) -> None:
    assert main(_train(tmp_path / "local")) == 0
    reference = _models(tmp_path / "local")
    # The Ray instance of the fixture is already up: the command uses it (and leaves it running).
    assert main(_train(tmp_path / "ray", "--backend", "ray", "--workers", "2")) == 0
    _assert_same(reference, _models(tmp_path / "ray"))
    assert main(_train(tmp_path / "pool", "--workers", "2")) == 0
    _assert_same(reference, _models(tmp_path / "pool"))
