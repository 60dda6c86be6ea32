"""onnxruntime sessions of an export: the one session set-up of the package, built from verified bytes.

Sessions are single-threaded (one intra-op and one inter-op thread, sequential execution, every
graph optimisation) on the CPU provider: the runtime, the export's parity gate and evaluation use
`inference_session`, so what is checked is what runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnxruntime as ort

from robot_meta.runtime.manifest import Manifest, ManifestError

__all__ = ["RuntimeLoadError", "inference_session", "read_verified"]


class RuntimeLoadError(RuntimeError):
    """onnxruntime could not load a graph, or the graph does not match its manifest."""


def inference_session(model: bytes | str | Path, name: str) -> ort.InferenceSession:
    """A single-threaded CPU onnxruntime session of a graph (bytes or a path); RuntimeLoadError if it cannot load.

    The one session set-up of the package (the runtime, the export parity check and evaluation use it).
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # the overridable head initialisers are intended: no warning about them
    try:
        return ort.InferenceSession(
            model if isinstance(model, bytes) else str(model),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RuntimeLoadError(
            f"onnxruntime cannot load {name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "the file is damaged or from an incompatible exporter: re-export the run"
        ) from None


def read_verified(manifest: Manifest, name: str) -> bytes:
    """The file's bytes, hashed after reading (what is hashed is what is loaded)."""
    path = manifest.path(name)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.files[name]["sha256"]:
        raise ManifestError(f"{path} changed while it was being loaded: copy the export directory again")
    return data
