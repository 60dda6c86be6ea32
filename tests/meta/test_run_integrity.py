"""Run directories whose files are non-finite or disagree with each other are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from toy_env import toy_config, toy_trainer

from robot_meta.cli import main
from robot_meta.meta import CHECKPOINT_FILE, CONFIG_FILE, CheckpointError, load_run

SMALL = dict(meta_iterations=2, checkpoint_interval=1)


@pytest.fixture
def toy_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    toy_trainer(toy_config("meta-dqn", **SMALL)).train(out)
    return out


def _poison(run: Path, section: str = "models", value: float = float("nan")) -> str:
    path = run / CHECKPOINT_FILE
    data = torch.load(path, weights_only=True)
    tree: Any = data[section]
    name = section
    while isinstance(tree, dict):
        key = next(k for k, v in tree.items() if isinstance(v, (dict, torch.Tensor)) and _has_float(v))
        name += f".{key}"
        if isinstance(tree[key], torch.Tensor):
            tree[key] = tree[key].clone()
            tree[key].view(-1)[0] = value
            break
        tree = tree[key]
    torch.save(data, path)
    return name


def _has_float(tree: Any) -> bool:
    if isinstance(tree, torch.Tensor):
        return tree.is_floating_point()
    return isinstance(tree, dict) and any(_has_float(v) for v in tree.values())


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(toy_run: Path, value: float) -> None:
    name = _poison(toy_run, value=value)
    with pytest.raises(CheckpointError, match=rf"tensor {name} holds 1 non-finite value") as exc:
        load_run(toy_run)
    assert "\n" not in str(exc.value) and "new --out" in str(exc.value)


def test_non_finite_optimizer_state_is_refused_on_resume(toy_run: Path) -> None:
    _poison(toy_run, section="optimizers")
    before = _snapshot(toy_run)
    trainer = toy_trainer(toy_config("meta-dqn", **SMALL))
    with pytest.raises(CheckpointError, match=r"tensor optimizers\..* non-finite"):
        trainer.train(toy_run)
    assert _snapshot(toy_run) == before


def test_export_and_evaluate_cli_refuse_a_nan_checkpoint(
    toy_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _poison(toy_run)
    before = _snapshot(toy_run)
    assert main(["export", str(toy_run), "--out", str(tmp_path / "exp")]) == 2
    assert not (tmp_path / "exp").exists()
    assert main(["evaluate", str(toy_run), "--shots", "0", "--seeds", "0", "--tasks", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") and "non-finite" in line for line in err)
    assert _snapshot(toy_run) == before


def test_config_json_with_other_hyper_parameters_than_the_checkpoint_is_refused(toy_run: Path) -> None:
    path = toy_run / CONFIG_FILE
    info = json.loads(path.read_text())
    info["config"]["inner_lr"] = info["config"]["inner_lr"] * 2
    path.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"another configuration.*inner_lr"):
        load_run(toy_run)


def test_config_json_with_another_hidden_width_is_refused(toy_run: Path) -> None:
    path = toy_run / CONFIG_FILE
    info = json.loads(path.read_text())
    info["config"]["hidden"] = [h * 2 for h in info["config"]["hidden"]]
    path.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"config.hidden=.*policy.hidden="):
        load_run(toy_run)
    info["policy"]["hidden"] = info["config"]["hidden"]  # now consistent with itself, not with the weights
    path.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"does not match|another configuration"):
        load_run(toy_run)


def test_unknown_top_level_key_in_config_json_is_refused(toy_run: Path) -> None:
    path = toy_run / CONFIG_FILE
    info = json.loads(path.read_text())
    info["hidden_size"] = 128
    path.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"unknown top-level key\(s\) \['hidden_size'\]"):
        load_run(toy_run)
