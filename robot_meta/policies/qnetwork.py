"""`QNetwork`: observation normaliser + MLP trunk (``features``) + one linear ``head`` (+ an optional context basis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from robot_meta.policies.normalizer import RunningNormalizer

__all__ = ["FeatureActivation", "FeatureExtractor", "QNetwork", "mlp"]


FeatureActivation = Literal["relu", "tanh"]


def mlp(in_dim: int, hidden: Sequence[int], last_activation: FeatureActivation = "relu") -> nn.Sequential:
    """``Linear -> ReLU`` for every width in `hidden` (``Tanh`` after the last one if asked; empty = identity)."""
    layers: list[nn.Module] = []
    for i, width in enumerate(hidden):
        last = i == len(hidden) - 1
        layers += [nn.Linear(in_dim, width), nn.Tanh() if last and last_activation == "tanh" else nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers)


def _check_dims(obs_dim: int, n_actions: int, hidden: Sequence[int], context_dim: int) -> tuple[int, ...]:
    if isinstance(obs_dim, bool) or not isinstance(obs_dim, int) or obs_dim <= 0:
        raise ValueError(f"obs_dim must be a positive int, got {obs_dim!r}")
    if isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions <= 0:
        raise ValueError(f"n_actions must be a positive int, got {n_actions!r}")
    widths = tuple(int(h) for h in hidden)
    if any(h <= 0 for h in widths):
        raise ValueError(f"hidden widths must be positive, got {tuple(hidden)}")
    if isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 0:
        raise ValueError(f"context_dim must be a non-negative int, got {context_dim!r}")
    return widths


class FeatureExtractor(nn.Module):
    """``features(obs[, z]) = trunk(concat(normalise(obs), z))``: everything below the head."""

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int],
        context_dim: int = 0,
        feature_activation: FeatureActivation = "tanh",
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.context_dim = context_dim
        self.obs_norm = RunningNormalizer(obs_dim)
        self.trunk = mlp(obs_dim + context_dim, hidden, feature_activation)
        self.out_dim = int(hidden[-1]) if hidden else obs_dim + context_dim

    def forward(self, obs: Tensor, context: Tensor | None = None) -> Tensor:
        x = self.obs_norm(obs)
        if self.context_dim:
            if context is None:
                raise ValueError(
                    f"this network is conditioned on a task embedding of size {self.context_dim}: pass context=z"
                )
            if context.dim() < x.dim():  # one embedding per task, broadcast over that task's observations
                context = context.unsqueeze(-2).expand(*x.shape[:-1], self.context_dim)
            x = torch.cat([x, context], dim=-1)
        elif context is not None:
            raise ValueError(
                "this network takes no context (context_dim=0): call it with the observation only"
            )
        out: Tensor = self.trunk(x)
        return out


class QNetwork(nn.Module):
    """A discrete-action Q-network ``Q(obs[, z]) = head(features(obs[, z]))``.

    The trunk (`features`, including observation normalisation) is meta-trained and frozen on the
    device; the linear `head` (weight ``(n_actions, feature_dim)``, bias ``(n_actions,)``) is what
    adapts. It is a pure module: plain ``Linear``/``ReLU``/``Tanh``/arithmetic, no optimiser, no state that
    changes in `forward`, exportable with ``torch.onnx.export(..., dynamo=False)``.

    Args:
        obs_dim: observation size.
        n_actions: number of discrete actions.
        hidden: trunk widths; the last one is the feature size seen by the head.
        context_dim: size of a task embedding ``z`` concatenated to the normalised observation
            (ContextDQN); 0 for an unconditioned network.
        feature_activation: activation of the last trunk layer. ``tanh`` (default) gives signed,
            bounded features: a TD step on the head can then raise ``Q(s, a)`` in some states and
            lower it in others (with non-negative ReLU features one step moves it the same way
            everywhere), and ``|f| <= 1`` keeps the effect of the adaptation step size predictable.
        head_context_dim: D > 0 adds the meta-learned basis of the context head rule
            (`robot_meta.meta.adaptation.ContextHeadRule`): ``head_basis`` ``(D, n_actions, feature_dim)``
            and ``head_bias_basis`` ``(D, n_actions)``, with ``W(c) = W + sum_j c_j B_j``. `forward` is the
            network at ``c = 0`` (the basis does not change it); 0 (default) adds nothing.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        context_dim: int = 0,
        feature_activation: FeatureActivation = "tanh",
        head_context_dim: int = 0,
    ) -> None:
        super().__init__()
        widths = _check_dims(obs_dim, n_actions, hidden, context_dim)
        if (
            isinstance(head_context_dim, bool)
            or not isinstance(head_context_dim, int)
            or head_context_dim < 0
        ):
            raise ValueError(f"head_context_dim must be a non-negative int, got {head_context_dim!r}")
        if feature_activation not in ("relu", "tanh"):
            raise ValueError(f"feature_activation must be 'relu' or 'tanh', got {feature_activation!r}")
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.hidden = widths
        self.context_dim = context_dim
        self.feature_activation: FeatureActivation = feature_activation
        self.body = FeatureExtractor(obs_dim, widths, context_dim, feature_activation)
        self.head = nn.Linear(self.body.out_dim, n_actions)
        self.head_context_dim = head_context_dim
        if head_context_dim:
            # Same scale as the head's own initialisation: at c = 0 the basis changes nothing, and a
            # zero basis would be a saddle of the meta-gradient (the adapted c is linear in B too).
            bound = 1.0 / float(self.body.out_dim) ** 0.5
            self.head_basis = nn.Parameter(
                torch.empty(head_context_dim, n_actions, self.body.out_dim).uniform_(-bound, bound)
            )
            self.head_bias_basis = nn.Parameter(
                torch.empty(head_context_dim, n_actions).uniform_(-bound, bound)
            )

    @property
    def obs_norm(self) -> RunningNormalizer:
        """The observation normaliser (its buffers are updated by the training algorithms)."""
        return self.body.obs_norm

    @property
    def feature_dim(self) -> int:
        """Size of `features` (the head's input)."""
        return self.body.out_dim

    def features(self, obs: Tensor, context: Tensor | None = None) -> Tensor:
        """Trunk output ``f(obs[, z])`` of shape ``(..., feature_dim)``."""
        out: Tensor = self.body(obs, context)
        return out

    def forward(self, obs: Tensor, context: Tensor | None = None) -> Tensor:
        """Q-values of shape ``(..., n_actions)``."""
        out: Tensor = self.head(self.body(obs, context))
        return out

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``QNetwork(**net.spec())`` rebuilds it."""
        return {
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
            "context_dim": self.context_dim,
            "feature_activation": self.feature_activation,
            **({"head_context_dim": self.head_context_dim} if self.head_context_dim else {}),
        }
