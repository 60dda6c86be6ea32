"""Options and the error of the exporter."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ExportConfig", "ExportError"]


class ExportError(RuntimeError):
    """The exported graphs failed a check (checker or parity); nothing usable was written."""


@dataclass(frozen=True)
class ExportConfig:
    """Options of `export_run`."""

    opset: int = 17
    """ONNX opset of the graphs."""
    parity_samples: int = 4096
    """Observations of the torch<->onnxruntime parity check."""
    atol: float = 1e-5
    """Largest allowed absolute difference of Q-values and features between torch and onnxruntime."""
    tie_tol: float = 1e-5
    """Q-value gap under which a differing greedy action counts as an exact near-tie, not a mismatch."""
    seed: int = 0
    """Seed of the parity inputs."""

    def __post_init__(self) -> None:
        if not 13 <= self.opset <= 21:
            raise ValueError(f"ExportConfig.opset={self.opset} must be in [13, 21]")
        if self.parity_samples < 16:
            raise ValueError(f"ExportConfig.parity_samples={self.parity_samples} must be >= 16")
        if not (math.isfinite(self.atol) and self.atol > 0):
            raise ValueError(f"ExportConfig.atol={self.atol} must be > 0")
        if not (math.isfinite(self.tie_tol) and self.tie_tol >= 0):
            raise ValueError(f"ExportConfig.tie_tol={self.tie_tol} must be >= 0")
