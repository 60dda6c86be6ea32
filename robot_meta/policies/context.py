"""`ContextEncoder`: a permutation-invariant map from a set of transitions to a task embedding z."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robot_meta.policies.normalizer import RunningNormalizer
from robot_meta.policies.qnetwork import mlp

__all__ = ["ContextEncoder", "TaskEmbedding"]


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
        z: Tensor = self.out(self.pool(transitions, mask))
        return z

    def pool(self, transitions: Tensor, mask: Tensor | None = None) -> Tensor:
        """The masked mean of the per-transition features ``(..., hidden[-1])``, before `out` (zeros if empty)."""
        d, a = self.obs_dim, self.n_actions
        obs = transitions[..., :d]
        act_r = transitions[..., d : d + a + 1]
        next_obs = transitions[..., d + a + 1 :]
        x = torch.cat([self.obs_norm(obs), act_r, self.delta_norm(next_obs - obs)], dim=-1)
        h = self.phi(x)
        if mask is None:
            mask = torch.ones_like(h[..., 0])
        mask = mask.to(h.dtype)
        pooled: Tensor = (h * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1.0)
        return pooled

    @property
    def prior(self) -> Tensor:
        """The embedding of the empty context, ``out(0) = out.bias``: the zero-shot z."""
        return self.out.bias

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


class TaskEmbedding(nn.Module):
    """The privileged teacher of RMA-style training: true task parameters -> the embedding z they call for.

    ``z = mlp(standardise(p))`` with ``p`` a task's parameter vector (`TaskParams.to_vector`); the
    standardisation (mean and standard deviation of the training pool's vectors, fixed at
    construction) is a buffer, so a checkpoint restores it. Used only in training: the policy learns
    ``Q(s, mu(p))`` and the `ContextEncoder` learns to regress ``mu(p)`` from transitions; the device
    never sees true parameters.

    Args:
        param_vectors: ``(tasks, param_dim)`` parameter vectors of the training pool.
        latent_dim: size of z.
        hidden: width of the hidden layer.
    """

    mean: Tensor
    scale: Tensor

    def __init__(self, param_vectors: Tensor, latent_dim: int, hidden: int = 64) -> None:
        super().__init__()
        if param_vectors.dim() != 2 or param_vectors.shape[0] == 0 or param_vectors.shape[1] == 0:
            raise ValueError(
                f"TaskEmbedding needs a (tasks, param_dim) matrix of parameter vectors, got {tuple(param_vectors.shape)}"
            )
        if latent_dim <= 0 or hidden <= 0:
            raise ValueError(
                f"TaskEmbedding needs positive latent_dim and hidden, got {latent_dim}, {hidden}"
            )
        vectors = param_vectors.float()
        self.register_buffer("mean", vectors.mean(0))
        # Parameters constant over the pool (a one-hot column never set) are centred, not scaled.
        std = vectors.std(0, unbiased=False)
        self.register_buffer("scale", torch.where(std > 1e-6, std, torch.ones_like(std)))
        self.net = nn.Sequential(
            nn.Linear(vectors.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, latent_dim)
        )

    def forward(self, params: Tensor) -> Tensor:
        """``(..., param_dim)`` parameter vectors -> ``(..., latent_dim)`` embeddings."""
        z: Tensor = self.net((params - self.mean) / self.scale)
        return z
