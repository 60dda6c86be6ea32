"""Baselines of the K-shot protocol, all built on SB3's ``DQN`` (vanilla DQN, target network, MLP).

- ``scratch`` / ``scratch-10x`` / ``scratch-100x``: a fresh SB3 ``DQN`` trained on the target task
  only, with ``multiplier x K x max_episode_steps`` target-task transitions (the K-shot budget
  counted as full-length episodes, an upper bound of what the meta methods see). One learning curve
  per unit, evaluated greedily when it reaches each budget (`ScratchMethod`).
All of them train on observations normalised by fixed statistics of random-action rollouts on the
train distribution (`observation_stats`), as the meta policies normalise theirs inside the network,
and take their default SB3 DQN hyper-parameters from one table per task family, `SB3_TUNED`
(`tuned_sb3_config`); an explicit config replaces the row.

- ``domain-rand``: SB3 ``DQN`` trained on the train split with a new task at every reset
  (`train_policy_baseline`), evaluated without adaptation.
- ``finetune``: the domain-randomised policy fine-tuned on the shots: after each shot episode,
  ``updates_per_episode`` Double-DQN steps of the whole network on all shots so far (the same short
  DQN as Reptile's inner loop, `robot_meta.meta.dqn.InnerDQN`).
- ``oracle``: SB3 ``DQN`` on the train split with ``privileged=True`` (the observation ends with the
  true task parameters), evaluated on the privileged env, no adaptation.

Trained policies live in directories (``model.zip`` + ``baseline.json``); training checkpoints
every ``checkpoint_every`` steps (model + replay buffer) and resumes from there, and a finished
directory is skipped. SB3 zips and replay-buffer pickles are only ever written to and read from
these directories. SB3 is given a logger without outputs, so nothing is written elsewhere.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch

from robot_meta.meta.checkpoint import write_json_atomic
from robot_meta.meta.rollout import EnvFactory, GymEnvFactory

__all__ = [
    "BASELINE_NAMES",
    "SCRATCH_MULTIPLIERS",
    "BaselineKind",
    "FixedTask",
    "SB3DQNConfig",
    "SB3_TUNED",
    "NormalizeObs",
    "baseline_env",
    "ObsStats",
    "load_baseline",
    "load_sb3_dqn",
    "observation_stats",
    "make_sb3_dqn",
    "sb3_config_for_env",
    "train_policy_baseline",
    "tuned_sb3_config",
]

log = logging.getLogger(__name__)

BaselineKind = Literal["domain-rand", "oracle"]
BASELINE_NAMES: tuple[str, ...] = (
    "scratch",
    "scratch-10x",
    "scratch-100x",
    "domain-rand",
    "finetune",
    "oracle",
)
SCRATCH_MULTIPLIERS: tuple[int, ...] = (1, 10, 100)
MODEL_FILE = "model.zip"
INFO_FILE = "baseline.json"
_CKPT_FILE = "checkpoint.zip"
_REPLAY_FILE = "replay_buffer.pkl"


@dataclass(frozen=True)
class SB3DQNConfig:
    """Hyper-parameters of every SB3 ``DQN`` baseline (one-line docs as in the meta configs)."""

    hidden: tuple[int, ...] = (64, 64)
    """MLP widths of the Q-network (the meta policies' trunk size)."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    buffer_size: int = 50_000
    """Replay capacity."""
    learning_starts: int = 1_000
    """Transitions collected before the first gradient step."""
    batch_size: int = 64
    """Minibatch size."""
    train_freq: int = 4
    """Env steps between gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    target_update_interval: int = 500
    """Env steps between target-network copies."""
    exploration_steps: int = 10_000
    """Env steps over which epsilon decays from 1 to exploration_final_eps (absolute, not a fraction)."""
    exploration_final_eps: float = 0.05
    """Final exploration rate."""
    gamma: float = 0.98
    """Discount factor (as the meta configs)."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip."""
    obs_stats_steps: int = 2_000
    """Random-action steps on the train distribution whose observation mean/std become a fixed
    normaliser inside the Q-network (as the meta policies normalise theirs); 0 = raw observations."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return out


#: The SB3 DQN hyper-parameters of every baseline, per task family (as RL Zoo's ``hyperparams/dqn.yml``
#: keeps one tuned entry per env): the default config of domain-rand, oracle, finetune and scratch,
#: the one place to change them. A row changes only for a setting that beat the default by more than
#: noise in the issue-15 sweep (``benchmarks/research/learner_quickloop.py``, privileged oracle, 60k
#: steps, 24 unseen tasks x 4 episodes; BENCHMARKS.md "SB3 DQN tuning table (issue 15)"). On
#: 2026-12-02 none did, so every row is still the default:
SB3_TUNED: dict[str, SB3DQNConfig] = {
    # not swept (no time in the issue-15 box; not a headline family): the default
    "reach": SB3DQNConfig(),
    # swept: lr 6.3e-4 + batch 128 + target 250 gave 29 % +- 10 vs the default's 30 % +- 10 (one seed)
    "push": SB3DQNConfig(),
    # swept: lr 6.3e-4 + batch 128 + target 250 gave 64 % vs the default's 60 % over seeds 0-2
    # (difference +4 +- 10 points: noise); a [256, 256] net (40 %) and RL Zoo's LunarLander-style
    # set (22 %) were worse (seed 0)
    "slide": SB3DQNConfig(),
    # not swept (no time in the issue-15 box; not a headline family): the default
    "pick_place": SB3DQNConfig(),
}


def tuned_sb3_config(family: str) -> SB3DQNConfig:
    """The tuned SB3 DQN config of task `family` (`SB3_TUNED`); a clear error for an unknown family."""
    try:
        return SB3_TUNED[family]
    except KeyError:
        raise ValueError(f"unknown task family {family!r}: choose one of {list(SB3_TUNED)}") from None


def sb3_config_for_env(env_id: str | None) -> SB3DQNConfig:
    """The default SB3 DQN config of a baseline on `env_id`: its family's `SB3_TUNED` row for the
    package's env ids, the plain `SB3DQNConfig()` for any other env (nothing was tuned for it)."""
    from robot_meta._registration import ENV_FAMILIES

    family = ENV_FAMILIES.get(env_id) if env_id is not None else None
    return tuned_sb3_config(family) if family is not None else SB3DQNConfig()


def _dqn_class() -> type[Any]:
    from stable_baselines3 import DQN

    class PlannedDQN(DQN):
        """SB3 DQN whose exploration schedule is fixed in absolute steps across chunked ``learn`` calls."""

        planned_steps: int = 1

        def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
            super()._update_current_progress_remaining(num_timesteps, max(self.planned_steps, 1))

    return PlannedDQN


@dataclass(frozen=True)
class ObsStats:
    """A fixed observation normaliser: ``clip((obs - mean) / std, -10, 10)``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def identity(cls, dim: int) -> ObsStats:
        return cls((0.0,) * dim, (1.0,) * dim)

    def apply(self, obs: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.clip(
            (np.asarray(obs, np.float32) - np.asarray(self.mean, np.float32))
            / np.asarray(self.std, np.float32),
            -10.0,
            10.0,
        )
        return out.astype(np.float32)

    def module(self) -> torch.nn.Module:
        """The same normaliser as a torch module (put in front of an SB3 Q-network)."""
        return _Normalize(self)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObsStats:
        return cls(tuple(float(x) for x in data["mean"]), tuple(float(x) for x in data["std"]))


class _Normalize(torch.nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, stats: ObsStats) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(stats.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(stats.std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).clamp(-10.0, 10.0)


def observation_stats(env: gym.Env, steps: int, seed: int) -> ObsStats:
    """Mean and std of `steps` random-action observations (dimensions with std < 0.01: identity)."""
    rng = np.random.default_rng(seed)
    n = env.action_space.n  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    rows = [obs]
    for _ in range(max(steps - 1, 1)):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(n)))
        rows.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            rows.append(obs)
    x = np.asarray(rows, np.float64)
    mean, std = x.mean(0), x.std(0)
    # Dimensions (nearly) constant on the train distribution pass through unchanged: dividing by
    # a tiny std would blow up held-out values (e.g. the oracle's one-hot of the held-out shape).
    flat = std < 1e-2
    mean, std = np.where(flat, 0.0, mean), np.where(flat, 1.0, std)
    return ObsStats(tuple(mean.tolist()), tuple(std.tolist()))


class NormalizeObs(gym.ObservationWrapper[Any, Any, Any]):
    """Applies an `ObsStats` to every observation (the SB3 baselines train on normalised observations)."""

    def __init__(self, env: gym.Env, stats: ObsStats) -> None:
        super().__init__(env)
        self.stats = stats

    def observation(self, observation: Any) -> Any:
        return self.stats.apply(observation)


def _silent_logger() -> Any:
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def make_sb3_dqn(env: gym.Env, config: SB3DQNConfig, seed: int, planned_steps: int) -> Any:
    """A fresh SB3 ``DQN`` on `env` whose epsilon reaches its final value after ``exploration_steps``."""
    cls = _dqn_class()
    frac = min(1.0, config.exploration_steps / max(planned_steps, 1))
    model = cls(
        "MlpPolicy",
        env,
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        target_update_interval=config.target_update_interval,
        exploration_fraction=frac,
        exploration_final_eps=config.exploration_final_eps,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs={"net_arch": list(config.hidden)},
        verbose=0,
        seed=seed,
        device="cpu",
    )
    model.planned_steps = planned_steps
    model.set_logger(_silent_logger())
    return model


def load_sb3_dqn(path: str | Path) -> Any:
    """Load a baseline ``model.zip`` written by `train_policy_baseline` (only from our own directories)."""
    cls = _dqn_class()
    return cls.load(str(path), device="cpu")


class FixedTask(gym.Wrapper[Any, Any, Any, Any]):
    """Every reset uses `task` (for SB3, which resets without options)."""

    def __init__(self, env: gym.Env, task: Any) -> None:
        super().__init__(env)
        self.task = task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return self.env.reset(seed=seed, options={**(options or {}), "task": self.task})


def baseline_env(kind: BaselineKind, env_id: str, preset: str) -> gym.Env:
    """The training env of a policy baseline: a new train-split task per reset (privileged for the oracle)."""
    from robot_meta.envs.params import TaskDistribution

    dist = TaskDistribution.preset(preset).split("train")
    return gym.make(env_id, action_mode="discrete", distribution=dist, privileged=(kind == "oracle"))


def eval_env_factory(kind: str, env_id: str) -> EnvFactory:
    """The env the baseline is evaluated on (privileged observations for the oracle)."""
    kwargs: tuple[tuple[str, Any], ...] = (("action_mode", "discrete"),)
    if kind == "oracle":
        kwargs = (*kwargs, ("privileged", True))
    return GymEnvFactory(env_id, kwargs)


def train_policy_baseline(
    kind: BaselineKind,
    out: str | Path,
    *,
    env_id: str,
    preset: str,
    steps: int,
    seed: int,
    config: SB3DQNConfig | None = None,
    checkpoint_every: int = 10_000,
    env: gym.Env | None = None,
) -> Path:
    """Train (or resume, or skip if done) the ``domain-rand`` or ``oracle`` SB3 ``DQN`` into `out`.

    The DQN trains on observations normalised by fixed statistics of ``config.obs_stats_steps``
    random-action steps of the training env (kept in ``baseline.json``; `load_baseline` puts the
    same normaliser in front of the Q-network). Returns the path of ``model.zip``. `env` overrides
    the training env (tests). `config` defaults to the tuned row of `env_id`'s family
    (`sb3_config_for_env`).
    """
    if kind not in get_args(BaselineKind):
        raise ValueError(f"unknown baseline {kind!r}: choose one of {list(get_args(BaselineKind))}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    cfg = config or sb3_config_for_env(env_id)
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    spec = {
        "kind": kind,
        "env_id": env_id,
        "preset": preset,
        "steps": steps,
        "seed": seed,
        "config": cfg.to_dict(),
    }
    info_path, model_path = run / INFO_FILE, run / MODEL_FILE
    if info_path.exists():
        old = json.loads(info_path.read_text())
        if old.get("spec") != spec:
            raise ValueError(
                f"{run} holds a baseline trained with {old.get('spec')}, not {spec}: use another directory"
            )
        if old.get("done") and model_path.exists():
            log.info("%s baseline in %s is complete: skipped", kind, run)
            return model_path
        stats_dict = old.get("obs_stats")
    else:
        stats_dict = None
    raw_env = env if env is not None else baseline_env(kind, env_id, preset)
    if stats_dict is None:
        dim = int(raw_env.observation_space.shape[0])  # type: ignore[index]
        stats = (
            observation_stats(raw_env, cfg.obs_stats_steps, seed)
            if cfg.obs_stats_steps > 0
            else ObsStats.identity(dim)
        )
        write_json_atomic(
            info_path, {"spec": spec, "done": False, "wall_time": 0.0, "obs_stats": stats.to_dict()}
        )
    else:
        stats = ObsStats.from_dict(stats_dict)
    train_env = NormalizeObs(raw_env, stats)
    ckpt, replay = run / _CKPT_FILE, run / _REPLAY_FILE
    if ckpt.exists() and replay.exists():
        model = _dqn_class().load(str(ckpt), env=train_env, device="cpu")
        model.load_replay_buffer(str(replay))
        model.planned_steps = steps
        model.set_logger(_silent_logger())
        log.info("resuming %s baseline at %d/%d steps", kind, model.num_timesteps, steps)
    else:
        model = make_sb3_dqn(train_env, cfg, seed, steps)
    wall = float(json.loads(info_path.read_text()).get("wall_time", 0.0))
    while model.num_timesteps < steps:
        t0 = time.perf_counter()
        chunk = min(checkpoint_every, steps - model.num_timesteps)
        model.learn(total_timesteps=chunk, reset_num_timesteps=False, progress_bar=False)
        wall += time.perf_counter() - t0
        if model.num_timesteps < steps:
            model.save(str(ckpt))
            model.save_replay_buffer(str(replay))
            write_json_atomic(
                info_path, {"spec": spec, "done": False, "wall_time": wall, "obs_stats": stats.to_dict()}
            )
    model.save(str(model_path))
    write_json_atomic(
        info_path,
        {
            "spec": spec,
            "done": True,
            "wall_time": wall,
            "env_steps": int(model.num_timesteps),
            "obs_stats": stats.to_dict(),
        },
    )
    ckpt.unlink(missing_ok=True)
    replay.unlink(missing_ok=True)
    if env is None:
        raw_env.close()
    return model_path


def load_baseline(out: str | Path) -> torch.nn.Module:
    """The trained Q-network of a `train_policy_baseline` directory with its normaliser in front:
    raw observations ``(N, obs_dim)`` -> Q-values ``(N, A)`` (in ``eval()`` mode)."""
    run = Path(out)
    info_path = run / INFO_FILE
    if not info_path.exists() or not (run / MODEL_FILE).exists():
        raise FileNotFoundError(
            f"{run} holds no finished baseline: train it with train_policy_baseline first"
        )
    info = json.loads(info_path.read_text())
    stats = ObsStats.from_dict(info["obs_stats"])
    model = load_sb3_dqn(run / MODEL_FILE)
    return torch.nn.Sequential(stats.module(), model.q_net).eval()
