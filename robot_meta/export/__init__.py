"""torch -> ONNX export of trained runs: graphs, manifest, checker and parity gate (imports torch).

    from robot_meta.export import export_run
    export_run("runs/slide", "exports/slide")      # policy.onnx [+ encoder.onnx] + manifest.json

The device side is `robot_meta.runtime` (numpy + onnxruntime only).
"""

from __future__ import annotations

from robot_meta.export.onnx_export import (
    ENCODER_FILE,
    POLICY_FILE,
    ExportConfig,
    ExportError,
    ExportResult,
    export_run,
    export_trained,
    train_command,
)

__all__ = [
    "ENCODER_FILE",
    "POLICY_FILE",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "export_run",
    "export_trained",
    "train_command",
]
