"""Run directories: exact resume, atomic checkpoints, clear errors for corrupt/foreign/mismatched runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from toy_env import toy_config, toy_trainer

from robot_meta.meta import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    TENSORBOARD_DIR,
    CheckpointError,
    MetaTrainer,
    RunConfigMismatchError,
    load_checkpoint,
    load_run,
)

# Tiny buffers and banks so that they wrap around before the interruption (their ring layout must
# survive the checkpoint), and learning from the first iterations on.
RESUME = dict(meta_iterations=8, checkpoint_interval=3, buffer_capacity=20, learning_starts=40)
EXTRA = {"meta-dqn": dict(support_bank_size=2), "reptile": dict(inner_pool_size=20), "context": {}}


class Stop(Exception):
    pass


def _stop_at(iteration: int) -> Any:
    def callback(trainer: MetaTrainer[Any], metrics: dict[str, float]) -> None:
        if trainer.iteration == iteration:
            raise Stop

    return callback


def _assert_same_state(a: MetaTrainer[Any], b: MetaTrainer[Any]) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["counters"] == sb["counters"]
    for name, module_state in sa["models"].items():
        for key, value in module_state.items():
            assert torch.equal(value, sb["models"][name][key]), f"{name}.{key} differs after resume"
    assert repr(sa["optimizers"]) == repr(sb["optimizers"])
    assert sa["rng"]["numpy"] == sb["rng"]["numpy"]


@pytest.mark.parametrize(
    ("algo", "stop_at"), [("meta-dqn", 5), ("meta-dqn", 6), ("reptile", 5), ("context", 4)]
)
def test_kill_and_resume_gives_the_same_final_weights(tmp_path: Path, algo: str, stop_at: int) -> None:
    cfg = toy_config(algo, **RESUME, **EXTRA[algo])
    straight = toy_trainer(cfg)
    straight.train(tmp_path / "straight")

    interrupted = toy_trainer(cfg)
    with pytest.raises(Stop):
        interrupted.train(tmp_path / "resumed", callback=_stop_at(stop_at))
    saved = torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=True)
    assert saved["counters"]["iteration"] == stop_at // 3 * 3  # the last checkpoint before the kill
    resumed = toy_trainer(cfg)  # a fresh process would start exactly like this
    result = resumed.train(tmp_path / "resumed")
    assert result.iterations == cfg.meta_iterations
    assert sum(len(b) == cfg.buffer_capacity for b in resumed.replay) >= 4  # most buffers did wrap
    _assert_same_state(straight, resumed)
    final = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_FILE, algo)
    assert final["counters"]["iteration"] == cfg.meta_iterations


def test_run_directory_contents_and_load_run(tmp_path: Path) -> None:
    cfg = toy_config("meta-dqn", meta_iterations=4, checkpoint_interval=2, learning_starts=40)
    trainer = toy_trainer(cfg)
    trainer.train(tmp_path)
    info = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert info["algo"] == "meta-dqn" and info["config"] == cfg.to_dict()
    assert info["env"] == {"env_id": cfg.env_id, "obs_dim": 3, "n_actions": 3}
    assert info["adaptation"] == {
        "rule": "head_td_sgd",
        "steps": 5,
        "lr": 0.05,
        "gamma": 0.9,
        "huber_delta": 1.0,
        "n_step": 1,
        "support_size": 32,  # one rule type carries every hyper-parameter of the device rule
    }
    assert info["policy"] == {
        "obs_dim": 3,
        "n_actions": 3,
        "hidden": [32, 32],
        "context_dim": 0,
        "feature_activation": "tanh",
    }
    assert len(info["task_pool"]) == cfg.num_tasks and info["task_distribution"]["name"] == "toy"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / TENSORBOARD_DIR))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {
        "meta/return_pre",
        "meta/return_post",
        "losses/outer_td",
        "charts/epsilon",
        "charts/env_steps",
    } <= set(tags)
    assert [e.step for e in events.Scalars("charts/epsilon")] == [1, 2, 3, 4]

    run = load_run(tmp_path)
    assert run.algo == "meta-dqn" and run.iteration == 4 and run.encoder is None
    assert run.adaptation == trainer.adaptation  # type: ignore[attr-defined]
    for key, value in trainer.qnet.state_dict().items():  # type: ignore[attr-defined]
        assert torch.equal(run.policy.state_dict()[key], value)
    assert not run.policy.training

    again = toy_trainer(cfg).train(tmp_path)  # a finished run: nothing more to do
    assert again.iterations == 4 and again.metrics == {}


def test_context_run_loads_with_its_encoder(tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config("context", meta_iterations=2, learning_starts=40))
    trainer.train(tmp_path)
    run = load_run(tmp_path)
    assert run.encoder is not None and run.adaptation is None and run.policy.context_dim == 8
    for key, value in trainer.encoder.state_dict().items():  # type: ignore[attr-defined]
        assert torch.equal(run.encoder.state_dict()[key], value)


def test_config_mismatch_is_refused(tmp_path: Path) -> None:
    toy_trainer(toy_config("meta-dqn", meta_iterations=2)).train(tmp_path)
    with pytest.raises(RunConfigMismatchError, match=r"inner_lr: 0\.05 in the run vs 0\.1 now") as err:
        toy_trainer(toy_config("meta-dqn", meta_iterations=2, inner_lr=0.1)).train(tmp_path)
    assert str(tmp_path) in str(err.value) and "new --out" in str(err.value)
    with pytest.raises(RunConfigMismatchError, match="holds a 'meta-dqn' run"):
        toy_trainer(toy_config("reptile", meta_iterations=2)).train(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign-dict", "foreign-object", "empty"])
def test_corrupt_or_foreign_checkpoint_gives_a_clear_error(tmp_path: Path, damage: str) -> None:
    cfg = toy_config("meta-dqn", meta_iterations=2)
    toy_trainer(cfg).train(tmp_path)
    ckpt = tmp_path / CHECKPOINT_FILE
    if damage == "garbage":
        ckpt.write_bytes(b"definitely not a checkpoint")
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "foreign-dict":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, ckpt)
    elif damage == "foreign-object":
        torch.save(
            {"format": "robot_meta.checkpoint/1", "config": Path("/etc")}, ckpt
        )  # not weights-only loadable
    else:
        ckpt.write_bytes(b"")
    with pytest.raises(CheckpointError, match="checkpoint") as err:
        toy_trainer(cfg).train(tmp_path)
    assert isinstance(err.value, ValueError)
    assert str(ckpt) in str(err.value) and "delete" in str(err.value)


def test_checkpoint_of_another_configuration_is_refused(tmp_path: Path) -> None:
    small = toy_config("meta-dqn", meta_iterations=2, hidden=(8,))
    toy_trainer(small).train(tmp_path / "a")
    with pytest.raises(CheckpointError, match="does not match"):
        toy_trainer(toy_config("meta-dqn", meta_iterations=2)).load_state_dict(
            load_checkpoint(tmp_path / "a" / CHECKPOINT_FILE), source="a/checkpoint.pt"
        )
    with pytest.raises(CheckpointError, match="not 'reptile'"):
        load_checkpoint(tmp_path / "a" / CHECKPOINT_FILE, "reptile")


def test_resume_is_exact_on_the_panda_env(tmp_path: Path) -> None:
    """The real PyBullet env: seeded visits rebuild the world, so a resumed run (whose cached env
    has a different history) repeats the uninterrupted one bitwise."""
    from robot_meta.meta import make_algorithm, make_config

    cfg = make_config(
        "meta-dqn",
        budget="smoke",
        env_id="robot_meta/PandaPush-v0",
        preset="push",
        overrides=dict(meta_iterations=3, checkpoint_interval=1, learning_starts=50),
    )
    straight = make_algorithm(cfg)
    straight.train(tmp_path / "a")
    with pytest.raises(Stop):
        make_algorithm(cfg).train(tmp_path / "b", callback=_stop_at(2))
    resumed = make_algorithm(cfg)
    resumed.train(tmp_path / "b")
    assert resumed.updates > 0
    _assert_same_state(straight, resumed)
