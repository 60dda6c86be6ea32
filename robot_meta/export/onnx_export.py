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

``encoder.onnx`` (ContextDQN): ``transitions (N, 2*obs_dim + A + 1), mask (N,) -> z (latent,)``.

Export fails loudly (`ExportError`) unless ``onnx.checker.check_model(full_check=True)`` passes
and onnxruntime matches torch on a few thousand observations: max abs difference of Q-values and
features <= `ExportConfig.atol` and identical greedy actions (up to exact near-ties, reported).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import Tensor, nn

from robot_meta.meta import TrainedRun, load_run, make_config
from robot_meta.policies import ContextEncoder, QNetwork
from robot_meta.runtime.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    load_manifest,
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

POLICY_FILE = "policy.onnx"
ENCODER_FILE = "encoder.onnx"
#: Default support size of a head rule whose run config has none (Reptile).
DEFAULT_SUPPORT_SIZE = 64


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


def train_command(run: TrainedRun) -> str:
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


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the overridable head initialisers are intended: no warning about them
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _parity_inputs(run: TrainedRun, n: int, rng: np.random.Generator) -> np.ndarray:
    """Observations spread over (and somewhat beyond) the range the normaliser has seen."""
    norm = run.policy.obs_norm
    mean = norm.mean.detach().numpy().astype(np.float64)
    std = np.sqrt(norm.var.detach().numpy().astype(np.float64) + norm.eps)
    scale = rng.choice([0.5, 1.0, 2.0, 4.0], size=(n, 1))
    return (mean + std * scale * rng.standard_normal((n, mean.size))).astype(np.float32)


def _contexts(run: TrainedRun, obs: np.ndarray, rng: np.random.Generator, sets: int) -> list[np.ndarray]:
    enc = run.encoder
    assert enc is not None
    out = []
    for k in range(sets):
        size = int(rng.integers(1, 65)) if k else 1
        idx = rng.integers(0, len(obs), size=size)
        s = obs[idx]
        one_hot = np.eye(enc.n_actions, dtype=np.float32)[rng.integers(0, enc.n_actions, size=size)]
        r = rng.standard_normal((size, 1)).astype(np.float32)
        nxt = s + 0.1 * rng.standard_normal(s.shape).astype(np.float32)
        out.append(np.concatenate([s, one_hot, r, nxt], axis=1).astype(np.float32))
    return out


def _compare(
    name: str, ref_q: np.ndarray, got_q: np.ndarray, ref_f: np.ndarray, got_f: np.ndarray, cfg: ExportConfig
) -> dict[str, Any]:
    q_diff = float(np.max(np.abs(ref_q - got_q)))
    f_diff = float(np.max(np.abs(ref_f - got_f)))
    ref_a, got_a = ref_q.argmax(-1), got_q.argmax(-1)
    differ = np.nonzero(ref_a != got_a)[0]
    top2 = np.sort(ref_q, axis=-1)[:, -2:] if ref_q.shape[1] > 1 else np.zeros((len(ref_q), 2))
    gaps = (top2[:, 1] - top2[:, 0])[differ]
    ties = int(np.sum(gaps <= cfg.tie_tol))
    mismatches = int(len(differ) - ties)
    stats = {
        "samples": len(ref_q),
        "max_abs_diff_q": q_diff,
        "max_abs_diff_features": f_diff,
        "greedy_mismatches": mismatches,
        "greedy_near_ties": ties,
    }
    if not (q_diff <= cfg.atol and f_diff <= cfg.atol and mismatches == 0):
        raise ExportError(
            f"torch<->onnxruntime parity failed for {name}: max |dQ|={q_diff:.3g}, max |dfeatures|={f_diff:.3g} "
            f"(allowed {cfg.atol:g}), {mismatches} greedy-action mismatches on {len(ref_q)} observations; "
            "the exporter or onnxruntime version is likely at fault (check `pip list`), do not deploy this export"
        )
    return stats


def _parity(
    run: TrainedRun, policy_path: Path, encoder_path: Path | None, cfg: ExportConfig
) -> dict[str, Any]:
    rng = np.random.default_rng(cfg.seed)
    qnet = run.policy
    obs = _parity_inputs(run, cfg.parity_samples, rng)
    sess = _session(policy_path)
    w = qnet.head.weight.detach().numpy()
    b = qnet.head.bias.detach().numpy()
    out: dict[str, Any] = {}
    z: np.ndarray | None = None
    if run.encoder is not None:
        assert encoder_path is not None
        enc_sess = _session(encoder_path)
        ctxs = _contexts(run, obs, rng, 64)
        with torch.no_grad():
            z_ref = np.stack([run.encoder(torch.from_numpy(c)).numpy() for c in ctxs])
        z_got = np.stack(
            [enc_sess.run(["z"], {"transitions": c, "mask": np.ones(len(c), np.float32)})[0] for c in ctxs]
        )
        # An empty context is a single all-zero row with mask 0 on the device.
        pad = np.zeros((1, run.encoder.transition_dim), np.float32)
        with torch.no_grad():
            prior_ref = run.encoder(torch.zeros(0, run.encoder.transition_dim)).numpy()
        prior_got = enc_sess.run(["z"], {"transitions": pad, "mask": np.zeros(1, np.float32)})[0]
        z_diff = float(max(np.max(np.abs(z_ref - z_got)), np.max(np.abs(prior_ref - prior_got))))
        out["encoder"] = {"contexts": len(ctxs) + 1, "max_abs_diff_z": z_diff}
        if not z_diff <= cfg.atol:
            raise ExportError(
                f"torch<->onnxruntime parity failed for the encoder: max |dz|={z_diff:.3g} (allowed {cfg.atol:g}); "
                "do not deploy this export"
            )
        z = np.concatenate([z_ref, prior_ref[None]])[np.arange(len(obs)) % (len(ctxs) + 1)].astype(np.float32)

    def ort_run(weight: np.ndarray, bias: np.ndarray, feed_head: bool) -> tuple[np.ndarray, np.ndarray]:
        feeds: dict[str, np.ndarray] = {"obs": obs}
        if feed_head:
            feeds.update(head_weight=weight, head_bias=bias)
        if z is not None:
            feeds["z"] = z
        q, f = sess.run(["q_values", "features"], feeds)
        return q, f

    with torch.no_grad():
        zt = None if z is None else torch.from_numpy(z)
        f_ref = qnet.features(torch.from_numpy(obs), zt).numpy()
        q_ref = qnet(torch.from_numpy(obs), zt).numpy()
    q_got, f_got = ort_run(w, b, feed_head=False)
    out["policy_default_head"] = _compare("the policy (meta-trained head)", q_ref, q_got, f_ref, f_got, cfg)
    w2 = (w + 0.05 * rng.standard_normal(w.shape) * (np.std(w) + 1e-3)).astype(np.float32)
    b2 = (b + 0.05 * rng.standard_normal(b.shape) * (np.std(b) + 1e-3)).astype(np.float32)
    with torch.no_grad():
        q_ref2 = (torch.from_numpy(f_ref) @ torch.from_numpy(w2).t() + torch.from_numpy(b2)).numpy()
    q_got2, f_got2 = ort_run(w2, b2, feed_head=True)
    out["policy_fed_head"] = _compare("the policy (head fed as input)", q_ref2, q_got2, f_ref, f_got2, cfg)
    w_echo, b_echo = sess.run(
        ["head_weight_value", "head_bias_value"], {"obs": obs[:1], **({} if z is None else {"z": z[:1]})}
    )
    if not (np.array_equal(w_echo, w) and np.array_equal(b_echo, b)):
        raise ExportError(
            "the policy graph's default head differs from the trained head: do not deploy this export"
        )
    return out


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


def export_trained(
    run: TrainedRun,
    out: str | Path,
    *,
    config: ExportConfig | None = None,
    command: str | None = None,
) -> ExportResult:
    """Export an already loaded `TrainedRun` into directory `out` (see the module docstring)."""
    cfg = config or ExportConfig()
    out_dir = Path(out)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    # A half-written export must never look valid: the manifest goes first and comes back last.
    for name in ours:
        (out_dir / name).unlink(missing_ok=True)
    qnet = run.policy.eval()
    policy = _policy_model(qnet, cfg.opset)
    onnx.checker.check_model(policy, full_check=True)
    _write_atomic(out_dir / POLICY_FILE, policy.SerializeToString())
    files = [POLICY_FILE]
    enc_path: Path | None = None
    if run.encoder is not None:
        enc_model = _encoder_model(run.encoder, cfg.opset)
        onnx.checker.check_model(enc_model, full_check=True)
        enc_path = out_dir / ENCODER_FILE
        _write_atomic(enc_path, enc_model.SerializeToString())
        files.append(ENCODER_FILE)
    try:
        onnx.checker.check_model(str(out_dir / POLICY_FILE), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected {out_dir / POLICY_FILE}: {exc}") from exc
    parity = _parity(run, out_dir / POLICY_FILE, enc_path, cfg)

    env_id = run.config.env_id
    layout, action_map = _observation_and_actions(env_id, qnet.obs_dim, qnet.n_actions)
    norm = qnet.obs_norm
    if run.adaptation is not None:
        adaptation: dict[str, Any] = {
            **run.adaptation.to_dict(),
            "support_size": int(getattr(run.config, "support_size", DEFAULT_SUPPORT_SIZE)),
            "trained_with": "MetaDQN inner loop"
            if run.algo == "meta-dqn"
            else f"{run.algo} (device adapts the head only)",
        }
    else:
        adaptation = dict(run.info.get("adaptation") or {"rule": "context_inference"})
        adaptation.setdefault("context_size", int(getattr(run.config, "context_size", 64)))
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "algo": run.algo,
        "env_id": env_id,
        "observation": {"dim": qnet.obs_dim, "dtype": "float32", "layout": layout},
        "actions": {"n": qnet.n_actions, "map": action_map},
        "normalizer": {
            "in_graph": True,
            "mean": norm.mean.tolist(),
            "var": norm.var.tolist(),
            "eps": norm.eps,
            "clip": norm.clip,
            "count": float(norm.count.item()),
        },
        "head": {
            "n_actions": qnet.n_actions,
            "feature_dim": qnet.feature_dim,
            "weight_input": "head_weight",
            "bias_input": "head_bias",
            "shape": [qnet.n_actions, qnet.feature_dim],
        },
        "network": qnet.spec(),
        "context": None
        if run.encoder is None
        else {
            "latent_dim": run.encoder.latent_dim,
            "transition_dim": run.encoder.transition_dim,
            "encoder": run.encoder.spec(),
        },
        "graphs": {"policy": POLICY_FILE, **({"encoder": ENCODER_FILE} if enc_path is not None else {})},
        "adaptation": adaptation,
        "train_distribution": run.info.get("task_distribution"),
        "train": {
            "run_dir": str(run.run_dir),
            "iteration": run.iteration,
            "command": train_command(run),
            "config": run.config.to_dict(),
        },
        "producer": {
            "command": command or f"robot-meta export {run.run_dir} --out {out_dir}",
            "opset": cfg.opset,
            "versions": _versions(),
            "export_config": dataclasses.asdict(cfg),
        },
        "parity": parity,
        "files": {
            name: {"sha256": sha256_file(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in files
        },
    }
    _write_atomic(out_dir / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    load_manifest(out_dir)  # what the device will do: fail here rather than there
    log.info(
        "exported %s (iteration %d) to %s: parity max |dQ| %.2g",
        run.run_dir,
        run.iteration,
        out_dir,
        parity["policy_default_head"]["max_abs_diff_q"],
    )
    return ExportResult(out_dir, manifest, parity)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    config: ExportConfig | None = None,
    command: str | None = None,
) -> ExportResult:
    """Export the latest checkpoint of run directory `run_dir` into `out` (``robot-meta export``)."""
    return export_trained(load_run(run_dir), out, config=config, command=command)
