"""Policies: pure ``torch.nn.Module``s with all pre-processing inside, exportable to ONNX.

- `QNetwork`: observation normaliser + MLP trunk (``features``) + a linear ``head`` (what adapts
  on the device); optionally conditioned on a task embedding ``z``.
- `ContextEncoder`: permutation-invariant set encoder from transitions (s, a, r, s') to ``z``.
- `TaskEmbedding`: the privileged teacher of RMA-style training, true task parameters to ``z``.
- `RunningNormalizer`: running mean/variance statistics as buffers, updated only by the trainers.

No optimisers live here: the algorithms in `robot_meta.meta` own them.
"""

from __future__ import annotations

from robot_meta.policies.context import ContextEncoder, TaskEmbedding
from robot_meta.policies.normalizer import RunningNormalizer
from robot_meta.policies.qnetwork import FeatureActivation, FeatureExtractor, QNetwork, mlp

__all__ = [
    "ContextEncoder",
    "FeatureActivation",
    "FeatureExtractor",
    "QNetwork",
    "RunningNormalizer",
    "TaskEmbedding",
    "mlp",
]
