"""DQN building blocks shared by the meta-learning algorithms (targets, losses, schedules, actions).

`inner_dqn_updates` is the one short Double-DQN loop of the package: Reptile's inner loop, its
evaluation adapter and the fine-tuning baseline all run it (`InnerDQN` holds its hyper-parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robot_meta.meta.replay import Transitions

__all__ = [
    "InnerDQN",
    "LinearSchedule",
    "double_dqn_targets",
    "epsilon_greedy",
    "hard_update",
    "inner_dqn_updates",
    "td_loss",
]


@dataclass(frozen=True)
class LinearSchedule:
    """``start`` -> ``end`` linearly over the first ``duration`` ticks, then constant ``end``."""

    start: float
    end: float
    duration: float

    def __call__(self, t: float) -> float:
        if self.duration <= 0:
            return self.end
        frac = min(max(t / self.duration, 0.0), 1.0)
        return self.start + frac * (self.end - self.start)


def double_dqn_targets(
    rewards: Tensor,
    terminated: Tensor,
    next_q_online: Tensor,
    next_q_target: Tensor,
    gamma: float | Tensor,
) -> Tensor:
    """``r + gamma (1 - d) Q_target(s', argmax_a Q_online(s', a))`` (no gradient flows through it).

    `gamma` may be a tensor shaped like `rewards` (per-sample discounts ``gamma^n`` of n-step targets).
    """
    with torch.no_grad():
        best = next_q_online.argmax(dim=-1, keepdim=True)
        next_v = next_q_target.gather(-1, best).squeeze(-1)
        return rewards + gamma * (1.0 - terminated) * next_v


def advantage_learning_targets(targets: Tensor, q_target: Tensor, actions: Tensor, alpha: float) -> Tensor:
    """Advantage learning (Baird 1999; Bellemare et al., AAAI 2016): ``y - alpha (max_b Q(s, b) - Q(s, a))``
    with the target network's ``Q(s, .)``, which widens the gap between the best action and the others."""
    with torch.no_grad():
        q_sa = q_target.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return targets - alpha * (q_target.max(dim=-1).values - q_sa)


def td_loss(q: Tensor, actions: Tensor, targets: Tensor, huber_delta: float) -> Tensor:
    """Mean Huber loss between ``Q(s, a)`` (gathered from ``q`` ``(..., A)``) and the targets."""
    q_sa = q.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    return F.huber_loss(q_sa, targets, delta=huber_delta)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """Copy every parameter and buffer of `source` into `target`."""
    target.load_state_dict(source.state_dict())


def epsilon_greedy(q_values: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Uniform random action with probability `epsilon`, else the greedy one (lowest index on ties).

    Always draws exactly one uniform number, and a second only when exploring, so the random
    stream does not depend on the Q-values beyond that branch.
    """
    if rng.random() < epsilon:
        return int(rng.integers(q_values.shape[-1]))
    return int(np.argmax(q_values))


@dataclass(frozen=True)
class InnerDQN:
    """Hyper-parameters of a short full-network DQN on one task (Reptile's inner loop, fine-tuning)."""

    updates_per_episode: int = 20
    """Gradient steps after each episode, on minibatches of the task's transitions so far."""
    lr: float = 1e-3
    """Adam learning rate (beta1 = 0, fresh state per task visit / evaluation unit)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    target_interval: int = 25
    """Gradient steps between copies into the target network."""
    gamma: float = 0.98
    """Discount."""
    huber_delta: float = 1.0
    """Huber threshold."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip."""


def inner_dqn_updates(
    phi: nn.Module,
    target: nn.Module,
    opt: torch.optim.Optimizer,
    data: Transitions,
    rng: np.random.Generator,
    inner: InnerDQN,
    steps: int,
) -> tuple[list[float], int]:
    """``inner.updates_per_episode`` Double-DQN steps of `phi` on minibatches of `data` drawn with `rng`.

    One forward pass gives Q(s) and the online Q(s'); targets from `target`, Huber loss, gradient
    clip, one `opt` step; `target` is copied from `phi` every ``target_interval`` steps counted from
    `steps` (the steps done so far). Returns the losses and the new step count.
    """
    losses: list[float] = []
    for _ in range(inner.updates_per_episode):
        idx = rng.integers(0, len(data), size=inner.batch_size)
        b = Transitions(*(getattr(data, f)[idx] for f in Transitions._fields)).to_batch()
        q_both = phi(torch.cat([b.obs, b.next_obs]))
        q, q_next = q_both[: len(b.obs)], q_both[len(b.obs) :].detach()
        with torch.no_grad():
            y = double_dqn_targets(b.rewards, b.terminated, q_next, target(b.next_obs), inner.gamma)
        loss = td_loss(q, b.actions, y, inner.huber_delta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(phi.parameters(), inner.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        steps += 1
        if steps % inner.target_interval == 0:
            hard_update(target, phi)
    return losses, steps
