"""The SB3 baselines as methods of the K-shot protocol: ``domain-rand`` / ``oracle``, ``finetune``, ``scratch``.

The policies are trained by `robot_meta.meta.baselines` (its docstring describes each baseline);
this module scores them by the same protocol and units as the meta methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from robot_meta.meta.baselines import (
    SCRATCH_MULTIPLIERS,
    FixedTask,
    NormalizeObs,
    ObsStats,
    SB3DQNConfig,
    make_sb3_dqn,
    sb3_config_for_env,
)
from robot_meta.meta.dqn import InnerDQN
from robot_meta.meta.eval.adapters import ReptileAdapter, ShotRecorder, greedy_action
from robot_meta.meta.eval.protocol import AdapterMethod, Method, evaluate_episodes, unit_seeds
from robot_meta.meta.eval.stats import UnitResult
from robot_meta.meta.rollout import EnvFactory, cached_env
from robot_meta.meta.work import task_to_dict

__all__ = ["SB3PolicyAdapter", "ScratchMethod", "finetune_method", "policy_method"]


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

    def act_unadapted(self, obs: np.ndarray) -> int:
        """The greedy action (the policy never adapts)."""
        return greedy_action(_q_values(self.q_net, obs))


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


class ScratchMethod(Method):
    """SB3 ``DQN`` from scratch on the target task with ``m x K x episode_steps`` transitions, m in `multipliers`.

    One training run per unit up to the largest budget, evaluated greedily (on a separate env) each
    time it reaches a budget; K = 0 evaluates the untrained network (0 transitions). `obs_stats`
    (e.g. `observation_stats` of the train distribution, as the other baselines use) normalises
    the observations; None trains on raw observations. `config` defaults to the tuned row
    (`robot_meta.meta.baselines.SB3_TUNED`) of the family of `env_factory`'s ``env_id`` (a
    `GymEnvFactory`), the plain `SB3DQNConfig()` for a factory without a package env id.
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
        base = config or sb3_config_for_env(getattr(env_factory, "env_id", None))
        self.config = dataclasses.replace(base, learning_starts=min(base.learning_starts, 100))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple("scratch" if m == 1 else f"scratch-{m}x" for m in self.multipliers)

    def run_unit(
        self,
        task: Any,
        seed: int,
        task_index: int,
        shots: Sequence[int],
        episodes: int,
        *,
        control: bool = True,
    ) -> dict[str, list[UnitResult]]:
        """All budgets of one unit (no paired control: `control` is ignored, each K is its own training)."""
        from stable_baselines3.common.callbacks import BaseCallback

        env = cached_env(self.env_factory)
        raw_train = cached_env(self.env_factory, slot="train")  # the first env evaluates
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
