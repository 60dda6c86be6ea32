"""Environment factories, a per-process environment cache and the episode loop used by all workers."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robot_meta.meta.replay import Transitions

__all__ = [
    "EnvFactory",
    "EpisodeStats",
    "GymEnvFactory",
    "TaskSampler",
    "cached_env",
    "env_dims",
    "run_episode",
    "summarize_episodes",
]

EnvFactory = Callable[[], gym.Env]
"""A picklable, hashable callable returning a fresh env (a `GymEnvFactory`, an env class, ...)."""


class TaskSampler(Protocol):
    """What the algorithms need from a task distribution (`robot_meta.envs.TaskDistribution` fits)."""

    def sample(self, n: int, rng: np.random.Generator) -> list[Any]: ...


@dataclass(frozen=True)
class GymEnvFactory:
    """``gym.make(env_id, **kwargs)`` as a hashable, picklable value (the key of the env cache)."""

    env_id: str
    kwargs: tuple[tuple[str, Any], ...] = field(default=(("action_mode", "discrete"),))

    def __call__(self) -> gym.Env:
        return gym.make(self.env_id, **dict(self.kwargs))


_ENV_CACHE: dict[Hashable, gym.Env] = {}


def cached_env(factory: EnvFactory, slot: str = "") -> gym.Env:
    """One env per factory (and `slot`) per process, created on first use and reused (tasks switch on reset).

    Every episode starts with ``reset(seed=..., options={"task": ...})``, so an env's behaviour
    does not depend on what it ran before; re-creating PyBullet envs per task would be slow. A
    non-empty `slot` names a second env of the same factory, for work that must leave the first
    one's state alone (the scratch baseline's training env, the evaluation's paired control).
    """
    key: Hashable = (factory, slot) if slot else factory
    env = _ENV_CACHE.get(key)
    if env is None:
        env = factory()
        _ENV_CACHE[key] = env
    return env


def env_dims(env: gym.Env) -> tuple[int, int]:
    """``(obs_dim, n_actions)`` of a flat-Box / Discrete env, or a ValueError saying what is needed."""
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"meta-training needs a flat Box observation space, got {obs_space}")
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError(
            f"meta-training needs a Discrete action space (make the env with action_mode='discrete'), got {act_space}"
        )
    return int(obs_space.shape[0]), int(act_space.n)


@dataclass(frozen=True)
class EpisodeStats:
    """Outcome of one episode."""

    ret: float
    length: int
    success: bool


def run_episode(
    env: gym.Env,
    task: Any,
    seed: int | None,
    act: Callable[[np.ndarray], int],
    on_step: Callable[[np.ndarray, int, float, np.ndarray, bool], None] | None = None,
) -> tuple[Transitions, EpisodeStats]:
    """Run one episode of `task` from ``reset(seed=seed)`` with the policy `act`.

    Workers seed only the first episode of a task visit: a seeded reset starts from a freshly
    built world (bitwise reproducible, ~0.1 s for the Panda envs), the later episodes of the visit
    continue the env's own seeded RNG and are just as deterministic, without the rebuild.

    `on_step(obs, action, reward, next_obs, terminated)` (optional) is called after each step
    (ContextDQN re-infers its embedding from it). Success is ``info["is_success"]`` at the last step.
    """
    obs, info = env.reset(seed=None if seed is None else int(seed), options={"task": task})
    obs_l: list[np.ndarray] = []
    act_l: list[int] = []
    rew_l: list[float] = []
    next_l: list[np.ndarray] = []
    term_l: list[float] = []
    ret, success = 0.0, False
    while True:
        a = act(obs)
        next_obs, reward, terminated, truncated, info = env.step(a)
        r = float(reward)
        obs_l.append(obs)
        act_l.append(a)
        rew_l.append(r)
        next_l.append(next_obs)
        term_l.append(1.0 if terminated else 0.0)
        ret += r
        success = bool(info.get("is_success", False))
        if on_step is not None:
            on_step(obs, a, r, next_obs, bool(terminated))
        obs = next_obs
        if terminated or truncated:
            break
    return _pack(obs_l, act_l, rew_l, next_l, term_l), EpisodeStats(ret, len(act_l), success)


def _pack(
    obs: list[np.ndarray], act: list[int], rew: list[float], nxt: list[np.ndarray], term: list[float]
) -> Transitions:
    return Transitions(
        np.asarray(obs, dtype=np.float32),
        np.asarray(act, dtype=np.int64),
        np.asarray(rew, dtype=np.float32),
        np.asarray(nxt, dtype=np.float32),
        np.asarray(term, dtype=np.float32),
    )


def summarize_episodes(first: list[EpisodeStats], last: list[EpisodeStats]) -> dict[str, float]:
    """``meta/`` scalars: return and success of the first (pre-adaptation) and last (adapted) episodes."""
    out: dict[str, float] = {}
    for tag, eps in (("pre", first), ("post", last)):
        if eps:
            out[f"meta/return_{tag}"] = float(np.mean([e.ret for e in eps]))
            out[f"meta/success_{tag}"] = float(np.mean([e.success for e in eps]))
    lengths = [e.length for e in first + last]
    if lengths:
        out["charts/episode_length"] = float(np.mean(lengths))
    return {k: v for k, v in out.items() if math.isfinite(v)}
