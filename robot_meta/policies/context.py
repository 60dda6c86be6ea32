"""`ContextEncoder`: a permutation-invariant map from a set of transitions to a task embedding z."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robot_meta.policies.normalizer import RunningNormalizer
from robot_meta.policies.qnetwork import mlp

__all__ = ["ContextEncoder"]


class ContextEncoder(nn.Module):
    """Mean-pooled MLP over transitions (s, a, r, s'), giving a task embedding ``z``.

    Input layout: a packed transition is the row ``[s (obs_dim), one_hot(a) (n_actions), r (1),
    s' (obs_dim)]`` (`transition_dim` floats; see `pack`). Each row is encoded as
    ``h = phi([normalise(s), one_hot(a), r, normalise_delta(s' - s)])`` and

        z = out( sum_i mask_i h_i / max(1, sum_i mask_i) )

    so z is invariant to the order of the transitions, and an empty (all-masked) context gives the
    learned prior ``z = out(0)`` (the zero-shot embedding). Both normalisers are buffers updated
    by the algorithm, like `QNetwork`'s. Pure module, ONNX-exportable (with the mask as an input,
    the set size stays dynamic).

    Args:
        obs_dim: observation size.
        n_actions: number of discrete actions.
        latent_dim: size of z.
        hidden: widths of the per-transition MLP ``phi``.
    """

    def __init__(
        self, obs_dim: int, n_actions: int, latent_dim: int = 8, hidden: Sequence[int] = (64, 64)
    ) -> None:
        super().__init__()
        if obs_dim <= 0 or n_actions <= 0 or latent_dim <= 0:
            raise ValueError(
                f"ContextEncoder needs positive obs_dim, n_actions and latent_dim, got {obs_dim}, {n_actions}, {latent_dim}"
            )
        widths = tuple(int(h) for h in hidden)
        if not widths or any(h <= 0 for h in widths):
            raise ValueError(
                f"ContextEncoder hidden must be a non-empty tuple of positive widths, got {tuple(hidden)}"
            )
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.latent_dim = latent_dim
        self.hidden = widths
        self.obs_norm = RunningNormalizer(obs_dim)
        self.delta_norm = RunningNormalizer(obs_dim)
        self.phi = mlp(self.transition_dim, widths)
        self.out = nn.Linear(widths[-1], latent_dim)

    @property
    def transition_dim(self) -> int:
        """Width of one packed transition row."""
        return 2 * self.obs_dim + self.n_actions + 1

    def pack(self, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor) -> Tensor:
        """Pack ``(..., N)`` transitions into rows ``(..., N, transition_dim)`` (float32)."""
        one_hot = F.one_hot(actions.long(), self.n_actions).to(obs.dtype)
        return torch.cat([obs, one_hot, rewards.unsqueeze(-1).to(obs.dtype), next_obs], dim=-1)

    def forward(self, transitions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Embed packed transitions ``(..., N, transition_dim)`` (mask ``(..., N)``, 1 = present) to ``(..., latent_dim)``."""
        d, a = self.obs_dim, self.n_actions
        obs = transitions[..., :d]
        act_r = transitions[..., d : d + a + 1]
        next_obs = transitions[..., d + a + 1 :]
        x = torch.cat([self.obs_norm(obs), act_r, self.delta_norm(next_obs - obs)], dim=-1)
        h = self.phi(x)
        if mask is None:
            mask = torch.ones_like(h[..., 0])
        mask = mask.to(h.dtype)
        pooled = (h * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1.0)
        z: Tensor = self.out(pooled)
        return z

    @torch.no_grad()
    def update_normalizers(self, obs: Tensor, next_obs: Tensor) -> None:
        """Merge a batch of observed transitions into both normalisers."""
        self.obs_norm.update(obs)
        self.delta_norm.update(next_obs - obs)

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``ContextEncoder(**enc.spec())`` rebuilds it."""
        return {
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
        }
