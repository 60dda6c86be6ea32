"""One-call training of a run directory and loading a trained run (`TrainedRun`); algorithms come from the registry."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from torch import nn

from robot_meta.distributed import Backend
from robot_meta.meta.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointError,
    check_checkpoint_config,
    load_checkpoint,
    read_run_config,
)
from robot_meta.meta.config import Budget, MetaConfig, make_config, parse_override
from robot_meta.meta.registry import algorithm
from robot_meta.meta.rollout import EnvFactory, TaskSampler
from robot_meta.meta.trainer import MetaTrainer, TrainCallback, TrainResult
from robot_meta.policies import ContextEncoder, QNetwork
from robot_meta.runtime.manifest import GradientRule

__all__ = ["TrainedRun", "config_from_options", "load_run", "make_algorithm", "train_run"]

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=MetaConfig)


def make_algorithm(
    config: MetaConfig,
    *,
    env_factory: EnvFactory | None = None,
    tasks: TaskSampler | None = None,
    backend: Backend | None = None,
) -> MetaTrainer[Any]:
    """The trainer for `config` (its class decides the algorithm)."""
    return algorithm(config.algo)(config, env_factory=env_factory, tasks=tasks, backend=backend)


def config_from_options(
    algo: str,
    *,
    env_id: str,
    preset: str | None = None,
    budget: Budget = "small",
    seed: int = 0,
    overrides: Sequence[str] = (),
) -> MetaConfig:
    """The config of ``robot-meta train``: `algo`'s `budget` sizes, ``KEY=VALUE`` `overrides`, checked.

    `preset` defaults to the env's task family. ValueError (a message that says what to do) for an
    unknown algorithm, preset, field or env id, or an invalid value.
    """
    import gymnasium as gym

    from robot_meta._registration import ENV_FAMILIES
    from robot_meta.checks import check_seed
    from robot_meta.envs import TaskDistribution

    check_seed(seed)
    cls = algorithm(algo).config_cls
    values = dict(parse_override(cls, item) for item in overrides)
    for key, given, option in (
        ("env_id", env_id, "--env"),
        ("preset", preset, "--preset"),
        ("seed", seed, "--seed"),
    ):
        if key in values and given is not None and values[key] != given:
            raise ValueError(
                f"--set {key}={values[key]!r} contradicts {option} {given!r}: give it once, with {option}"
            )
    if "seed" in values:
        check_seed(values["seed"], "--set seed")
    preset = preset or ENV_FAMILIES.get(env_id)
    if preset is None:
        raise ValueError(f"cannot guess the task preset of env {env_id!r}: pass --preset NAME")
    config = make_config(algo, budget=budget, env_id=env_id, preset=preset, seed=seed, overrides=values)
    TaskDistribution.preset(config.preset)
    try:
        gym.spec(config.env_id)
    except gym.error.Error as exc:
        raise ValueError(
            f"unknown environment id {config.env_id!r} ({exc}); e.g. robot_meta/PandaPush-v0"
        ) from None
    if config.env_id not in ENV_FAMILIES:
        known = ", ".join(sorted(ENV_FAMILIES))
        raise ValueError(
            f"{config.env_id!r} is a Gymnasium env but not a robot_meta one (no hidden task parameters to "
            f"adapt to): robot-meta trains one of {known}"
        )
    return config


def train_run(
    config: MetaConfig,
    out: str | Path,
    *,
    backend: Backend | None = None,
    env_factory: EnvFactory | None = None,
    tasks: TaskSampler | None = None,
    callback: TrainCallback | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train `config` into run directory `out`, resuming it if it already holds this configuration."""
    algo = make_algorithm(config, env_factory=env_factory, tasks=tasks, backend=backend)
    return algo.train(out, callback=callback, progress=progress)


@dataclass(frozen=True)
class TrainedRun(Generic[ConfigT]):
    """A trained run loaded for evaluation or export (modules in ``eval()`` mode, on CPU)."""

    run_dir: Path
    algo: str
    config: ConfigT
    policy: QNetwork
    encoder: ContextEncoder | None
    adaptation: GradientRule | None
    """The device's head adaptation rule (None for ContextDQN, whose adaptation is inference)."""
    iteration: int
    info: dict[str, Any]
    """The whole ``config.json`` (env dims, task distribution, task pool, versions)."""

    @property
    def algorithm(self) -> type[MetaTrainer[ConfigT]]:
        """The registered trainer class of the run (what evaluation and export ask)."""
        return algorithm(self.algo)


def load_run(run_dir: str | Path) -> TrainedRun[Any]:
    """Load the latest checkpoint of a run directory written by `train_run` / ``robot-meta train``."""
    path = Path(run_dir)
    info = read_run_config(path)
    algo = str(info["algo"])
    try:
        cls = algorithm(algo)
        config = cls.config_cls.from_dict(info["config"])
        policy = QNetwork(**info["policy"])
        encoder = ContextEncoder(**info["encoder"]) if info.get("encoder") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path / 'config.json'} is inconsistent ({exc}); train into a new --out directory"
        ) from exc
    ckpt_path = path / CHECKPOINT_FILE
    ckpt = load_checkpoint(ckpt_path, algo)
    check_checkpoint_config(ckpt, info["config"], ckpt_path)
    modules: dict[str, nn.Module] = {"qnet": policy}
    if encoder is not None:
        modules["encoder"] = encoder
    try:
        for name, module in modules.items():
            module.load_state_dict(ckpt["models"][name])
        iteration = int(ckpt["counters"]["iteration"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"{ckpt_path} does not match {path / 'config.json'} ({exc}); train into a new --out directory"
        ) from exc
    adaptation = cls.head_rule(config)  # config.json's "adaptation" records it; the config defines it
    policy.eval()
    if encoder is not None:
        encoder.eval()
    return TrainedRun(path, algo, config, policy, encoder, adaptation, iteration, info)
