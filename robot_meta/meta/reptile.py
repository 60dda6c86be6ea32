"""`Reptile`: first-order meta-learning over full-network DQN inner loops.

A task visit (the worker) starts from the meta-parameters theta and runs a short DQN on that task:
after each collected episode, ``inner_updates_per_episode`` Double-DQN steps (Adam with beta1 = 0,
fresh per visit; Huber loss; an inner target network copied every ``inner_target_interval`` steps)
on minibatches drawn from the visit's fresh transitions plus up to ``inner_pool_size`` older
transitions of the task handed over from its replay buffer. The visit returns the adapted
parameters phi. The outer update is ``theta += epsilon_t * mean_tasks(phi - theta)`` with
epsilon_t annealed linearly from ``meta_lr_start`` to ``meta_lr_end`` over the run.

On the device a Reptile policy is adapted with the head rule (`robot_meta.meta.adaptation`) with
``adapt_steps`` / ``adapt_lr``; the inner loop here adapts the whole network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from robot_meta.meta.adaptation import HeadRule
from robot_meta.meta.config import ReptileConfig
from robot_meta.meta.dqn import InnerDQN, epsilon_greedy, inner_dqn_updates
from robot_meta.meta.eval.adapters import Adapter, HeadAdapter, ReptileAdapter
from robot_meta.meta.replay import Transitions
from robot_meta.meta.rollout import EnvFactory, EpisodeStats, cached_env, run_episode
from robot_meta.meta.trainer import MetaTrainer
from robot_meta.meta.work import WorkResult, freeze_spec, worker_module
from robot_meta.policies import QNetwork

if TYPE_CHECKING:
    from robot_meta.meta.run import TrainedRun

__all__ = ["Reptile"]


@dataclass(frozen=True)
class _Work:
    env_factory: EnvFactory
    net_spec: tuple[tuple[str, Any], ...]
    state: dict[str, Tensor]
    task: Any
    seed: int
    epsilon: float
    episodes: int
    pool: Transitions
    inner: InnerDQN


def _work(item: _Work) -> WorkResult:
    """One task visit: a short DQN on the task from theta; returns phi and the collected transitions."""
    spec = dict(item.net_spec)
    phi = worker_module(("reptile", item.net_spec), lambda: QNetwork(**spec))
    target = worker_module(("reptile-target", item.net_spec), lambda: QNetwork(**spec).requires_grad_(False))
    phi.load_state_dict(item.state)
    target.load_state_dict(item.state)
    opt = torch.optim.Adam(phi.parameters(), lr=item.inner.lr, betas=(0.0, 0.999), foreach=True)
    env = cached_env(item.env_factory)
    rng = np.random.default_rng(item.seed)
    env_seed = int(rng.integers(2**31 - 1))  # seeds the visit's first reset only
    fresh: list[Transitions] = []
    episodes: list[EpisodeStats] = []
    losses: list[float] = []
    steps = 0
    for e in range(item.episodes):

        def act(obs: np.ndarray) -> int:
            with torch.inference_mode():
                q = phi(torch.from_numpy(np.asarray(obs, dtype=np.float32))).numpy()
            return epsilon_greedy(q, item.epsilon, rng)

        tr, st = run_episode(env, item.task, env_seed if e == 0 else None, act)
        fresh.append(tr)
        episodes.append(st)
        data = Transitions.concat([item.pool, *fresh])
        new_losses, steps = inner_dqn_updates(phi, target, opt, data, rng, item.inner, steps)
        losses.extend(new_losses)
    params = {name: p.detach().clone() for name, p in phi.named_parameters()}
    metrics = {"losses/inner_td": float(np.mean(losses))} if losses else {}
    return WorkResult(Transitions.concat(fresh), episodes, metrics, params)


def inner_dqn(cfg: ReptileConfig) -> InnerDQN:
    """The inner loop of `cfg` (task visits in training; the ``reptile`` evaluation adapter)."""
    return InnerDQN(
        updates_per_episode=cfg.inner_updates_per_episode,
        lr=cfg.inner_lr,
        batch_size=cfg.inner_batch_size,
        target_interval=cfg.inner_target_interval,
        gamma=cfg.gamma,
        huber_delta=cfg.huber_delta,
        max_grad_norm=cfg.max_grad_norm,
    )


class Reptile(MetaTrainer[ReptileConfig]):
    """Reptile over per-task DQN inner loops, with a linearly annealed outer step size."""

    algo = "reptile"
    trained_with = "reptile (device adapts the head only)"
    config_cls = ReptileConfig

    def _build(self) -> None:
        self.qnet = QNetwork(
            self.obs_dim,
            self.n_actions,
            self.config.hidden,
            feature_activation=self.config.feature_activation,
        )

    @classmethod
    def head_rule(cls, config: ReptileConfig) -> HeadRule:
        """The head rule a Reptile policy is adapted with on the device (``adapt_steps`` / ``adapt_lr``)."""
        return HeadRule(
            steps=config.adapt_steps, lr=config.adapt_lr, gamma=config.gamma, huber_delta=config.huber_delta
        )

    @property
    def adaptation(self) -> HeadRule:
        """`head_rule` of this trainer's config."""
        return self.head_rule(self.config)

    @classmethod
    def eval_adapters(cls, run: TrainedRun[ReptileConfig]) -> dict[str, Callable[[int], Adapter]]:
        """``reptile``: the inner DQN loop on the shots (fresh Adam per unit); ``reptile-head``: the
        device's head-only rule instead, so the cost of that simplification shows."""
        rule = run.adaptation
        assert rule is not None
        eps, inner = run.config.epsilon_end, inner_dqn(run.config)
        return {
            cls.algo: lambda _s: ReptileAdapter(run.policy, inner, eps),
            f"{cls.algo}-head": lambda _s: HeadAdapter(run.policy, rule, rule.support_size, eps),
        }

    def meta_lr(self) -> float:
        """Outer step size of the current iteration (linear from meta_lr_start to meta_lr_end)."""
        cfg = self.config
        frac = self.iteration / max(cfg.meta_iterations - 1, 1)
        return cfg.meta_lr_start + min(frac, 1.0) * (cfg.meta_lr_end - cfg.meta_lr_start)

    def _worker(self) -> Callable[[Any], WorkResult]:
        return _work

    def _work_item(self, task: Any, seed: int, epsilon: float, *, task_index: int | None) -> _Work:
        cfg = self.config
        buf = self.replay[task_index] if task_index is not None else None
        if buf is not None and len(buf) > 0 and cfg.inner_pool_size > 0:
            pool = buf.sample(min(cfg.inner_pool_size, len(buf)), self.rng)
        else:
            pool = Transitions.empty(self.obs_dim)
        return _Work(
            env_factory=self.env_factory,
            net_spec=freeze_spec(self.qnet.spec()),
            state=self.qnet.state_dict(),
            task=task,
            seed=seed,
            epsilon=epsilon,
            episodes=cfg.episodes_per_task,
            pool=pool,
            inner=dataclasses.replace(inner_dqn(cfg), updates_per_episode=0)
            if self.env_steps < cfg.learning_starts
            else inner_dqn(cfg),
        )

    def _observe(self, new: Transitions) -> None:
        self.qnet.obs_norm.update(new.obs)

    def _learn(self, task_ids: Sequence[int], results: Sequence[WorkResult]) -> dict[str, float]:
        eps = self.meta_lr()
        params = dict(self.qnet.named_parameters())
        with torch.no_grad():
            sq = sum(
                float((r.params[n] - p).square().sum())
                for r in results
                if r.params is not None
                for n, p in params.items()
            )
        with torch.no_grad():
            for name, p in params.items():
                delta = torch.zeros_like(p)
                for r in results:
                    assert r.params is not None
                    delta += r.params[name] - p
                p.add_(delta, alpha=eps / len(results))
        self.updates += 1
        return {"charts/meta_lr": eps, "losses/inner_displacement": (sq / len(results)) ** 0.5}

    def _models(self) -> dict[str, nn.Module]:
        return {"qnet": self.qnet}

    def policy_modules(self) -> dict[str, nn.Module]:
        return {"policy": self.qnet}

    def run_info(self) -> dict[str, Any]:
        return {"policy": self.qnet.spec(), "encoder": None, "adaptation": self.adaptation.to_dict()}
