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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robot_meta.meta.adaptation import HeadAdaptation
from robot_meta.meta.config import ReptileConfig
from robot_meta.meta.dqn import double_dqn_targets, epsilon_greedy, hard_update, td_loss
from robot_meta.meta.replay import Transitions
from robot_meta.meta.rollout import EnvFactory, EpisodeStats, cached_env, run_episode
from robot_meta.meta.trainer import MetaTrainer, WorkResult, freeze_spec, worker_module
from robot_meta.policies import QNetwork

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
    lr: float
    updates_per_episode: int
    batch_size: int
    target_interval: int
    gamma: float
    huber_delta: float
    max_grad_norm: float


def _work(item: _Work) -> WorkResult:
    """One task visit: a short DQN on the task from theta; returns phi and the collected transitions."""
    spec = dict(item.net_spec)
    phi = worker_module(("reptile", item.net_spec), lambda: QNetwork(**spec))
    target = worker_module(("reptile-target", item.net_spec), lambda: QNetwork(**spec).requires_grad_(False))
    phi.load_state_dict(item.state)
    target.load_state_dict(item.state)
    opt = torch.optim.Adam(phi.parameters(), lr=item.lr, betas=(0.0, 0.999), foreach=True)
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
        for _ in range(item.updates_per_episode):
            idx = rng.integers(0, len(data), size=item.batch_size)
            b = Transitions(*(getattr(data, f)[idx] for f in Transitions._fields)).to_batch()
            q_both = phi(torch.cat([b.obs, b.next_obs]))  # one pass for Q(s) and the online Q(s')
            q, q_next = q_both[: len(b.obs)], q_both[len(b.obs) :].detach()
            with torch.no_grad():
                y = double_dqn_targets(b.rewards, b.terminated, q_next, target(b.next_obs), item.gamma)
            loss = td_loss(q, b.actions, y, item.huber_delta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(phi.parameters(), item.max_grad_norm)
            opt.step()
            losses.append(float(loss.detach()))
            steps += 1
            if steps % item.target_interval == 0:
                hard_update(target, phi)
    params = {name: p.detach().clone() for name, p in phi.named_parameters()}
    metrics = {"losses/inner_td": float(np.mean(losses))} if losses else {}
    return WorkResult(Transitions.concat(fresh), episodes, metrics, params)


class Reptile(MetaTrainer[ReptileConfig]):
    """Reptile over per-task DQN inner loops, with a linearly annealed outer step size."""

    algo = "reptile"
    config_cls = ReptileConfig

    def _build(self) -> None:
        self.qnet = QNetwork(
            self.obs_dim,
            self.n_actions,
            self.config.hidden,
            feature_activation=self.config.feature_activation,
        )

    @property
    def adaptation(self) -> HeadAdaptation:
        """The head rule a Reptile policy is adapted with on the device."""
        cfg = self.config
        return HeadAdaptation(
            steps=cfg.adapt_steps, lr=cfg.adapt_lr, gamma=cfg.gamma, huber_delta=cfg.huber_delta
        )

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
            lr=cfg.inner_lr,
            updates_per_episode=cfg.inner_updates_per_episode if self.env_steps >= cfg.learning_starts else 0,
            batch_size=cfg.inner_batch_size,
            target_interval=cfg.inner_target_interval,
            gamma=cfg.gamma,
            huber_delta=cfg.huber_delta,
            max_grad_norm=cfg.max_grad_norm,
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
