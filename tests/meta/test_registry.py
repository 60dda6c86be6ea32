"""Algorithms are plug-ins: evaluation, export and the CLI ask the registry, never an algorithm name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from toy_env import TOY_ALGO, TOY_COMMON, ToyEnv, ToyTasks

from robot_meta.cli import ALGO_CHOICES, build_parser
from robot_meta.export import ExportConfig, export_run
from robot_meta.meta import (
    ALGO_NAMES,
    ALGORITHMS,
    MetaDQN,
    MetaDQNConfig,
    algorithm,
    config_class,
    evaluate,
    load_run,
    make_algorithm,
)
from robot_meta.meta import registry as registry_module
from robot_meta.runtime import load_manifest


def test_every_registered_algorithm_supplies_the_plugin_interface() -> None:
    assert ALGO_NAMES == ("meta-dqn", "reptile", "context")
    for name, cls in ALGORITHMS.items():
        assert cls.algo == name and cls.config_cls.algo == name and config_class(name) is cls.config_cls
        assert algorithm(name) is cls
        for hook in ("eval_adapters", "device_rule", "head_rule"):
            assert callable(getattr(cls, hook))
    # the command line offers every registered algorithm, and the strike planner (not a registry
    # algorithm: no Q-network or checkpoint; `robot_meta.meta.strike`)
    from robot_meta.meta.strike import STRIKE_ALGO

    assert list(ALGO_CHOICES) == [*ALGO_NAMES, STRIKE_ALGO]
    with pytest.raises(
        ValueError, match=r"unknown algorithm 'ppo': choose one of \['meta-dqn', 'reptile', 'context'\]"
    ):
        algorithm("ppo")


@dataclass(frozen=True)
class _EchoConfig(MetaDQNConfig):
    """A config of an algorithm the rest of the package has never heard of."""

    algo: ClassVar[str] = "echo-dqn"


class _EchoDQN(MetaDQN):
    """MetaDQN under another name: registering it must be enough for train, evaluate, export, CLI."""

    algo = "echo-dqn"
    config_cls = _EchoConfig
    trained_with = "echo"


def test_a_new_algorithm_needs_only_its_module_and_one_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ALGORITHMS, "echo-dqn", _EchoDQN)
    monkeypatch.setattr(registry_module, "ALGO_NAMES", (*ALGO_NAMES, "echo-dqn"))
    cfg = _EchoConfig(**{**TOY_COMMON, **TOY_ALGO["meta-dqn"], "meta_iterations": 2})
    trainer = make_algorithm(cfg, env_factory=ToyEnv, tasks=ToyTasks())
    assert isinstance(trainer, _EchoDQN)
    trainer.train(tmp_path / "run", progress=False)
    run: Any = load_run(tmp_path / "run")
    assert run.algorithm is _EchoDQN and isinstance(run.config, _EchoConfig)
    res = evaluate(
        run, shots=(0, 1), episodes=1, seeds=(0,), num_tasks=1, tasks=ToyTasks(), env_factory=ToyEnv,
        plot=False, progress=False,
    )  # fmt: skip
    assert list(res.methods) == ["echo-dqn"] and res.info["algo"] == "echo-dqn"
    out = export_run(tmp_path / "run", tmp_path / "exp", config=ExportConfig(parity_samples=64))
    assert out.manifest["algo"] == "echo-dqn" and out.manifest["adaptation"]["trained_with"] == "echo"
    assert load_manifest(tmp_path / "exp").head_rule == run.adaptation
    args = build_parser().parse_args(["train", "--algo", "echo-dqn", "--env", "x", "--out", "y"])
    assert args.algo == "echo-dqn"
