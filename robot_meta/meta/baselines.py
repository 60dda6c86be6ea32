"""Baselines of the K-shot protocol, all built on SB3's ``DQN`` (vanilla DQN, target network, MLP).

- ``scratch`` / ``scratch-10x`` / ``scratch-100x``: a fresh SB3 ``DQN`` trained on the target task
  only, with ``multiplier x K x max_episode_steps`` target-task transitions (the K-shot budget
  counted as full-length episodes, an upper bound of what the meta methods see). One learning curve
  per unit, evaluated greedily when it reaches each budget (`ScratchMethod`).
All of them train on observations normalised by fixed statistics of random-action rollouts on the
train distribution (`observation_stats`), as the meta policies normalise theirs inside the network.

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

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch

from robot_meta.meta.checkpoint import write_json_atomic
from robot_meta.meta.dqn import InnerDQN
from robot_meta.meta.eval.adapters import ReptileAdapter, ShotRecorder
from robot_meta.meta.eval.protocol import AdapterMethod, Method, evaluate_episodes, unit_seeds
from robot_meta.meta.eval.stats import UnitResult
from robot_meta.meta.rollout import EnvFactory, GymEnvFactory, cached_env
from robot_meta.meta.work import task_to_dict

__all__ = [
    "BASELINE_NAMES",
    "SCRATCH_MULTIPLIERS",
    "BaselineKind",
    "FixedTask",
    "SB3DQNConfig",
    "SB3PolicyAdapter",
    "ScratchMethod",
    "finetune_method",
    "NormalizeObs",
    "baseline_env",
    "ObsStats",
    "load_baseline",
    "load_sb3_dqn",
    "observation_stats",
    "make_sb3_dqn",
    "policy_method",
    "train_policy_baseline",
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
    the training env (tests).
    """
    if kind not in get_args(BaselineKind):
        raise ValueError(f"unknown baseline {kind!r}: choose one of {list(get_args(BaselineKind))}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    cfg = config or SB3DQNConfig()
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


def _q_values(q_net: torch.nn.Module, obs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out: np.ndarray = q_net(torch.from_numpy(np.asarray(obs, np.float32)).unsqueeze(0))[0].numpy()
    return out


class SB3PolicyAdapter(ShotRecorder):
    """A baseline Q-network (`load_baseline`) evaluated as is (no adaptation: ``uses_shots = False``)."""

    uses_shots = False

    def __init__(self, network: torch.nn.Module, epsilon: float = 0.05) -> None:
        super().__init__(epsilon)
        self.q_net = network.eval()

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self._begin(rng)

    def adapt(self) -> None:
        return None

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        return self._choose(_q_values(self.q_net, obs), greedy)


def policy_method(
    name: str, network_for_seed: Callable[[int], torch.nn.Module], env_factory: EnvFactory
) -> AdapterMethod:
    """``domain-rand`` / ``oracle``: the seed's baseline Q-network (`load_baseline`), no adaptation."""
    return AdapterMethod(name, lambda s: SB3PolicyAdapter(network_for_seed(s)), env_factory)


def finetune_method(
    network_for_seed: Callable[[int], torch.nn.Module],
    env_factory: EnvFactory,
    inner: InnerDQN | None = None,
    epsilon: float = 0.05,
    name: str = "finetune",
) -> AdapterMethod:
    """``finetune``: the seed's baseline Q-network, a short DQN on all shots so far after each shot episode."""
    cfg = inner or InnerDQN()
    return AdapterMethod(name, lambda s: ReptileAdapter(network_for_seed(s), cfg, epsilon), env_factory)


@dataclass(frozen=True)
class _TrainEnvKey:
    """A second cached env for training on the target task (the first one evaluates)."""

    factory: EnvFactory

    def __call__(self) -> gym.Env:
        return self.factory()


class ScratchMethod(Method):
    """SB3 ``DQN`` from scratch on the target task with ``m x K x episode_steps`` transitions, m in `multipliers`.

    One training run per unit up to the largest budget, evaluated greedily (on a separate env) each
    time it reaches a budget; K = 0 evaluates the untrained network (0 transitions). `obs_stats`
    (e.g. `observation_stats` of the train distribution, as the other baselines use) normalises
    the observations; None trains on raw observations.
    """

    def __init__(
        self,
        env_factory: EnvFactory,
        *,
        episode_steps: int = 50,
        multipliers: Sequence[int] = SCRATCH_MULTIPLIERS,
        config: SB3DQNConfig | None = None,
        obs_stats: ObsStats | None = None,
    ) -> None:
        self.env_factory = env_factory
        self.obs_stats = obs_stats
        self.episode_steps = int(episode_steps)
        self.multipliers = tuple(int(m) for m in multipliers)
        base = config or SB3DQNConfig()
        self.config = dataclasses.replace(base, learning_starts=min(base.learning_starts, 100))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple("scratch" if m == 1 else f"scratch-{m}x" for m in self.multipliers)

    def run_unit(
        self, task: Any, seed: int, task_index: int, shots: Sequence[int], episodes: int
    ) -> dict[str, list[UnitResult]]:
        from stable_baselines3.common.callbacks import BaseCallback

        env = cached_env(self.env_factory)
        raw_train = cached_env(_TrainEnvKey(self.env_factory))
        stats = self.obs_stats or ObsStats.identity(int(raw_train.observation_space.shape[0]))  # type: ignore[index]
        train_env = NormalizeObs(FixedTask(raw_train, task), stats)
        env_seed, _ = unit_seeds(seed, task_index)
        desc = task_to_dict(task)
        budgets = {(m, k): m * k * self.episode_steps for m in self.multipliers for k in shots}
        milestones = sorted({b for b in budgets.values()})
        top = max(milestones)
        cfg = dataclasses.replace(
            self.config,
            buffer_size=max(top, 1),
            exploration_steps=min(self.config.exploration_steps, max(top // 5, 1)),
        )
        model = make_sb3_dqn(train_env, cfg, seed=int(env_seed % (2**31 - 1)), planned_steps=max(top, 1))
        q_net = torch.nn.Sequential(stats.module(), model.q_net)
        scores: dict[int, tuple[float, float]] = {}
        first = [True]

        def score() -> tuple[float, float]:
            def act(obs: np.ndarray) -> int:
                return int(np.argmax(_q_values(q_net, obs)))

            out = evaluate_episodes(env, task, env_seed if first[0] else None, act, episodes)
            first[0] = False
            return out

        if 0 in milestones:
            scores[0] = score()

        class _AtBudgets(BaseCallback):
            def _on_step(self) -> bool:
                n = int(self.num_timesteps)
                if n in budgets.values() and n not in scores:
                    scores[n] = score()
                return True

        if top > 0:
            model.learn(total_timesteps=top, callback=_AtBudgets(), progress_bar=False)
        out: dict[str, list[UnitResult]] = {}
        for m, name in zip(self.multipliers, self.names, strict=True):
            rows = []
            for k in shots:
                b = budgets[(m, k)]
                succ, ret = scores[b]
                rows.append(UnitResult(seed, task_index, k, succ, ret, b, desc))
            out[name] = rows
        return out
