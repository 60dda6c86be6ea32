"""Running observation normalisation kept inside the policy module (so it is part of the ONNX graph)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["RunningNormalizer"]


class RunningNormalizer(nn.Module):
    """Normalise inputs with running mean/variance statistics stored as buffers.

    ``forward(x) = clamp((x - mean) / sqrt(var + eps), -clip, clip)``.

    The statistics change only when `update` is called: the training algorithms call it on the
    observations they collect, and nothing else does. `forward` is pure, so the statistics are
    frozen constants of an exported (``eval()``) graph. Before the first update the normaliser is
    the identity up to ``eps`` (mean 0, variance 1).

    Args:
        dim: size of the last input dimension.
        eps: added to the variance; ``sqrt(eps)`` is the smallest scale a dimension is divided by
            (1e-4 → 1 cm for positions in metres), so near-constant inputs are not blown up.
        clip: normalised values are clipped to ``[-clip, clip]``.
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, dim: int, eps: float = 1e-4, clip: float = 10.0) -> None:
        super().__init__()
        if dim <= 0:
            raise ValueError(f"RunningNormalizer dim must be positive, got {dim}")
        if not eps > 0 or not clip > 0:
            raise ValueError(f"RunningNormalizer eps and clip must be positive, got eps={eps}, clip={clip}")
        self.dim = int(dim)
        self.eps = float(eps)
        self.clip = float(clip)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, x: Tensor | np.ndarray) -> None:
        """Merge a batch ``(..., dim)`` into the statistics (Chan et al. parallel update, float64)."""
        batch = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float64)
        batch = batch.reshape(-1, self.dim)
        n = batch.shape[0]
        if n == 0:
            return
        if not torch.isfinite(batch).all():
            raise ValueError(
                "RunningNormalizer.update got non-finite values: check the environment's observations"
            )
        b_mean = batch.mean(0)
        b_var = batch.var(0, unbiased=False)
        self.merge(float(n), b_mean, b_var)

    @torch.no_grad()
    def merge(self, n: float, b_mean: Tensor, b_var: Tensor) -> None:
        """Merge precomputed batch statistics (count, mean, population variance)."""
        count = float(self.count.item())
        total = count + n
        mean = self.mean.double()
        delta = b_mean.double() - mean
        new_mean = mean + delta * (n / total)
        m2 = self.var.double() * count + b_var.double() * n + delta.square() * (count * n / total)
        self.mean.copy_(new_mean.to(self.mean.dtype))
        self.var.copy_((m2 / total).to(self.var.dtype))
        self.count.fill_(total)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}, clip={self.clip}"
