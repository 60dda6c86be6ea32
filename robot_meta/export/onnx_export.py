"""Export a trained run to ONNX graphs plus a manifest, with a checker and a parity gate.

``policy.onnx`` (all policies)::

    inputs   obs (B, obs_dim) float32, head_weight (A, H), head_bias (A,)   [+ z (B, latent) for ContextDQN]
    outputs  q_values (B, A), features (B, H), head_weight_value (A, H), head_bias_value (A,)

Observation normalisation is inside the graph (the run's normaliser statistics are constants).
``head_weight``/``head_bias`` are graph inputs *and* initialisers of the same name, holding the
meta-trained head: ONNX treats such an initialiser as an overridable default, so the runtime feeds
its adapted head and the file alone still runs the meta-trained policy. ``features`` is the trunk
output the head sees (the runtime adapts the head from it without a second graph), and the two
``*_value`` outputs echo the head in use (the defaults when not fed: how a numpy-only runtime
reads the meta-trained head without the ``onnx`` package).

A MetaDQN policy trained with the context head rule (``inner_rule="context_td"``) also carries its
meta-learned basis as constants: outputs ``head_basis_value`` (D, A, H) and ``head_bias_basis_value``
(D, A). The device adapts c in numpy, forms ``W(c) = W_0 + sum_j c_j B_j`` and ``b(c)`` and feeds
them as ``head_weight``/``head_bias`` (so the same graph acts with the adapted context).

``encoder.onnx`` (ContextDQN): ``transitions (N, 2*obs_dim + A + 1), mask (N,) -> z (latent,)``.

Export fails loudly (`ExportError`) unless ``onnx.checker.check_model(full_check=True)`` passes
and onnxruntime matches torch on a few thousand observations: max abs difference of Q-values and
features <= `ExportConfig.atol` and identical greedy actions (up to exact near-ties, reported).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import Tensor, nn

from robot_meta.export.options import ExportConfig, ExportError
from robot_meta.export.parity import check_parity
from robot_meta.meta import TrainedRun, load_run, make_config
from robot_meta.policies import ContextEncoder, QNetwork
from robot_meta.runtime.manifest import (
    CHECKED_IR_VERSION,
    CHECKED_OPSET,
    ENCODER_FILE,
    MANIFEST_FILE,
    OLDEST_ONNXRUNTIME,
    POLICY_FILE,
    ContextSpec,
    Manifest,
    load_manifest,
    recover_export_dir,
    replace_export_dir,
    sha256_file,
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What `export_run` wrote."""

    out_dir: Path
    manifest: dict[str, Any]
    parity: dict[str, Any]


class _PolicyGraph(nn.Module):
    """``(obs, W, b[, z]) -> (W f(obs[, z]) + b, f(obs[, z]))`` around a QNetwork's trunk."""

    def __init__(self, qnet: QNetwork) -> None:
        super().__init__()
        self.body = qnet.body
        self.context = qnet.context_dim > 0

    def forward(
        self, obs: Tensor, head_weight: Tensor, head_bias: Tensor, z: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        f: Tensor = self.body(obs, z if self.context else None)
        return f @ head_weight.t() + head_bias, f


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in ("robot_meta", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def train_command(run: TrainedRun[Any]) -> str:
    """The ``robot-meta train`` command that reproduces the run's configuration."""
    cfg = run.config
    base = make_config(run.algo, budget=cfg.budget, env_id=cfg.env_id, preset=cfg.preset, seed=cfg.seed)
    mine, ref = cfg.to_dict(), base.to_dict()
    sets = [f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in mine.items() if ref.get(k) != v]
    return " ".join(
        [
            f"robot-meta train --algo {run.algo} --env {cfg.env_id} --preset {cfg.preset}",
            f"--budget {cfg.budget} --seed {cfg.seed}",
            *sets,
            f"--out {run.run_dir}",
        ]
    )


def _to_onnx(module: nn.Module, args: tuple[Tensor, ...], **kwargs: Any) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="robot_meta_export_") as tmp:
        path = Path(tmp) / "graph.onnx"
        # dynamo=False: the TorchScript exporter ships with torch; the dynamo path needs onnxscript.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, args, str(path), dynamo=False, do_constant_folding=True, **kwargs)
        return onnx.load(str(path))


def _policy_model(qnet: QNetwork, opset: int) -> onnx.ModelProto:
    graph_module = _PolicyGraph(qnet).eval()
    w = qnet.head.weight.detach().clone()
    b = qnet.head.bias.detach().clone()
    obs = torch.zeros(2, qnet.obs_dim)
    args: tuple[Tensor, ...] = (obs, w, b)
    names = ["obs", "head_weight", "head_bias"]
    axes: dict[str, dict[int, str]] = {
        "obs": {0: "batch"},
        "q_values": {0: "batch"},
        "features": {0: "batch"},
    }
    if qnet.context_dim:
        args = (*args, torch.zeros(2, qnet.context_dim))
        names.append("z")
        axes["z"] = {0: "batch"}
    model = _to_onnx(
        graph_module,
        args,
        input_names=names,
        output_names=["q_values", "features"],
        dynamic_axes=axes,
        opset_version=opset,
    )
    graph = model.graph
    inputs = {i.name for i in graph.input}
    if not {"head_weight", "head_bias"} <= inputs:
        raise ExportError(f"the exported policy graph lost its head inputs (has {sorted(inputs)})")
    for init in list(graph.initializer):
        if init.name in ("head_weight", "head_bias"):
            graph.initializer.remove(init)
    graph.initializer.extend(
        [
            numpy_helper.from_array(w.numpy().astype(np.float32), name="head_weight"),
            numpy_helper.from_array(b.numpy().astype(np.float32), name="head_bias"),
        ]
    )
    a, h = w.shape
    graph.node.extend(
        [
            helper.make_node("Identity", ["head_weight"], ["head_weight_value"], name="head_weight_echo"),
            helper.make_node("Identity", ["head_bias"], ["head_bias_value"], name="head_bias_echo"),
        ]
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info("head_weight_value", onnx.TensorProto.FLOAT, [a, h]),
            helper.make_tensor_value_info("head_bias_value", onnx.TensorProto.FLOAT, [a]),
        ]
    )
    if qnet.head_context_dim:
        basis = qnet.head_basis.detach().numpy().astype(np.float32)
        bias_basis = qnet.head_bias_basis.detach().numpy().astype(np.float32)
        graph.initializer.extend(
            [
                numpy_helper.from_array(basis, name="head_basis"),
                numpy_helper.from_array(bias_basis, name="head_bias_basis"),
            ]
        )
        graph.node.extend(
            [
                helper.make_node("Identity", ["head_basis"], ["head_basis_value"], name="head_basis_echo"),
                helper.make_node(
                    "Identity", ["head_bias_basis"], ["head_bias_basis_value"], name="head_bias_basis_echo"
                ),
            ]
        )
        graph.output.extend(
            [
                helper.make_tensor_value_info("head_basis_value", onnx.TensorProto.FLOAT, list(basis.shape)),
                helper.make_tensor_value_info(
                    "head_bias_basis_value", onnx.TensorProto.FLOAT, list(bias_basis.shape)
                ),
            ]
        )
    graph.doc_string = "robot_meta policy: Q = head_weight @ features(obs[, z]) + head_bias"
    return model


def _encoder_model(enc: ContextEncoder, opset: int) -> onnx.ModelProto:
    rows = torch.zeros(3, enc.transition_dim)
    mask = torch.ones(3)
    model = _to_onnx(
        enc.eval(),
        (rows, mask),
        input_names=["transitions", "mask"],
        output_names=["z"],
        dynamic_axes={"transitions": {0: "n"}, "mask": {0: "n"}},
        opset_version=opset,
    )
    model.graph.doc_string = (
        "robot_meta context encoder: z = encoder(transitions [obs, onehot(a), r, next_obs], mask)"
    )
    return model


def _observation_and_actions(env_id: str, obs_dim: int, n_actions: int) -> tuple[list[list[Any]], list[Any]]:
    """Observation layout and action map from the env (a generic layout if it cannot be made)."""
    layout: list[list[Any]] = [["obs", obs_dim]]
    actions: list[Any] = []
    try:
        import gymnasium as gym

        import robot_meta  # noqa: F401  (registers the ids)

        env = gym.make(env_id, action_mode="discrete")
    except Exception as exc:
        log.warning(
            "could not make %s to describe its observations and actions (%s); using a generic layout",
            env_id,
            exc,
        )
        return layout, actions
    try:
        base = env.unwrapped
        if hasattr(base, "observation_layout"):
            layout = [[str(n), int(s)] for n, s in base.observation_layout]
        if hasattr(base, "describe_actions"):
            actions = json.loads(json.dumps(base.describe_actions()))
    finally:
        env.close()
    if sum(int(s) for _, s in layout) != obs_dim:
        log.warning(
            "the env's observation layout does not sum to obs_dim=%d; using a generic layout", obs_dim
        )
        layout = [["obs", obs_dim]]
    if actions and len(actions) != n_actions:
        log.warning(
            "the env describes %d actions, the policy has %d; leaving the action map empty",
            len(actions),
            n_actions,
        )
        actions = []
    return layout, actions


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _producer(
    run: TrainedRun[Any], out_dir: Path, cfg: ExportConfig, command: str | None, ir_version: int
) -> dict[str, Any]:
    """Who wrote the export, and the oldest onnxruntime its graphs were checked on (when that claim holds)."""
    checked = cfg.opset == CHECKED_OPSET and ir_version <= CHECKED_IR_VERSION
    return {
        "command": command or f"robot-meta export {run.run_dir} --out {out_dir}",
        "opset": cfg.opset,
        "ir_version": ir_version,
        "oldest_onnxruntime": OLDEST_ONNXRUNTIME if checked else None,
        "versions": _versions(),
        "export_config": dataclasses.asdict(cfg),
    }


def _manifest(
    run: TrainedRun[Any],
    out_dir: Path,
    files: list[str],
    parity: dict[str, Any],
    cfg: ExportConfig,
    command: str | None,
    ir_version: int,
) -> Manifest:
    """The export's `Manifest`: the algorithm's device rule (asked of the registry) and the run's record."""
    qnet = run.policy
    rule = run.algorithm.device_rule(run)
    layout, action_map = _observation_and_actions(run.config.env_id, qnet.obs_dim, qnet.n_actions)
    norm = qnet.obs_norm
    return Manifest(
        directory=out_dir,
        algo=run.algo,
        env_id=run.config.env_id,
        obs_dim=qnet.obs_dim,
        n_actions=qnet.n_actions,
        feature_dim=qnet.feature_dim,
        policy_file=POLICY_FILE,
        head_rule=rule if not isinstance(rule, ContextSpec) else None,
        context=rule if isinstance(rule, ContextSpec) else None,
        files={
            name: {"sha256": sha256_file(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in files
        },
        layout=layout,
        action_map=action_map,
        normalizer={
            "in_graph": True,
            "mean": norm.mean.tolist(),
            "var": norm.var.tolist(),
            "eps": norm.eps,
            "clip": norm.clip,
            "count": float(norm.count.item()),
        },
        network=qnet.spec(),
        encoder_network=None if run.encoder is None else run.encoder.spec(),
        trained_with=run.algorithm.trained_with,
        train_distribution=run.info.get("task_distribution"),
        train={
            "run_dir": str(run.run_dir),
            "iteration": run.iteration,
            "command": train_command(run),
            "config": run.config.to_dict(),
        },
        producer=_producer(run, out_dir, cfg, command, ir_version),
        parity=parity,
    )


def export_trained(
    run: TrainedRun[Any],
    out: str | Path,
    *,
    config: ExportConfig | None = None,
    command: str | None = None,
) -> ExportResult:
    """Export an already loaded `TrainedRun` into directory `out` (see the module docstring).

    The export is built and checked in a sibling staging directory, then swapped in by renames
    (`replace_export_dir`): a process killed at any point leaves either the previous export or the
    new one loadable (`robot_meta.runtime.manifest.recover_export_dir` finishes an interrupted swap).
    """
    cfg = config or ExportConfig()
    out_dir = Path(out)
    recover_export_dir(out_dir)
    if out_dir.is_symlink():
        raise ExportError(f"{out_dir} is a symlink: pass a real directory as --out")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a directory: pass a new --out DIR")
    ours = {MANIFEST_FILE, POLICY_FILE, ENCODER_FILE}
    ours |= {f"{name}.tmp" for name in ours}
    if out_dir.is_dir():
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
        if foreign:
            raise ExportError(
                f"{out_dir} is not empty and holds files of no export ({', '.join(foreign[:3])}): "
                "refusing to write into it; pass a new --out DIR"
            )
    command = command or f"robot-meta export {run.run_dir} --out {out_dir}"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stage-", dir=out_dir.parent))
    try:
        manifest, parity = _build_export(run, stage, cfg, command)
        replace_export_dir(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    log.info(
        "exported %s (iteration %d) to %s: parity max |dQ| %.2g",
        run.run_dir,
        run.iteration,
        out_dir,
        parity["policy_default_head"]["max_abs_diff_q"],
    )
    return ExportResult(out_dir, manifest.to_dict(), parity)


def _build_export(
    run: TrainedRun[Any], out_dir: Path, cfg: ExportConfig, command: str
) -> tuple[Manifest, dict[str, Any]]:
    """Write and check every file of the export into the (fresh, empty) directory `out_dir`."""
    os.chmod(out_dir, 0o777 & ~_umask())  # mkdtemp creates 0700; an export is an ordinary directory
    qnet = run.policy.eval()
    policy = _policy_model(qnet, cfg.opset)
    onnx.checker.check_model(policy, full_check=True)
    _write_atomic(out_dir / POLICY_FILE, policy.SerializeToString())
    files = [POLICY_FILE]
    graphs = [policy]
    enc_path: Path | None = None
    if run.encoder is not None:
        enc_model = _encoder_model(run.encoder, cfg.opset)
        onnx.checker.check_model(enc_model, full_check=True)
        enc_path = out_dir / ENCODER_FILE
        _write_atomic(enc_path, enc_model.SerializeToString())
        files.append(ENCODER_FILE)
        graphs.append(enc_model)
    try:
        onnx.checker.check_model(str(out_dir / POLICY_FILE), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected {out_dir / POLICY_FILE}: {exc}") from exc
    parity = check_parity(run, out_dir / POLICY_FILE, enc_path, cfg)

    ir_version = max(m.ir_version for m in graphs)
    manifest = _manifest(run, out_dir, files, parity, cfg, command, ir_version)
    manifest.write()
    load_manifest(out_dir)  # what the device will do: fail here rather than there
    return manifest, parity


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    config: ExportConfig | None = None,
    command: str | None = None,
) -> ExportResult:
    """Export the latest checkpoint of run directory `run_dir` into `out` (``robot-meta export``)."""
    return export_trained(load_run(run_dir), out, config=config, command=command)
