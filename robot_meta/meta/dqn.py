"""DQN building blocks shared by the meta-learning algorithms (targets, losses, schedules, actions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LinearSchedule", "double_dqn_targets", "epsilon_greedy", "hard_update", "td_loss"]


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
    rewards: Tensor, terminated: Tensor, next_q_online: Tensor, next_q_target: Tensor, gamma: float
) -> Tensor:
    """``r + gamma (1 - d) Q_target(s', argmax_a Q_online(s', a))`` (no gradient flows through it)."""
    with torch.no_grad():
        best = next_q_online.argmax(dim=-1, keepdim=True)
        next_v = next_q_target.gather(-1, best).squeeze(-1)
        return rewards + gamma * (1.0 - terminated) * next_v


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
