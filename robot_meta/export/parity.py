"""The torch<->onnxruntime parity gate of an export (and its statistics, recorded in the manifest).

Observations spread over (and beyond) the normaliser's range; Q-values and features must agree to
`ExportConfig.atol` with the meta-trained head (the graph's defaults) and with a perturbed head fed
as input, greedy actions must be identical (up to exact near-ties, reported), and for ContextDQN
the encoder's z must agree on random contexts and on the empty context (the prior). A policy with a
context head basis must echo its basis exactly, and Q with a head ``W(c), b(c)`` built in numpy
(`robot_meta.runtime.context_head`) for random contexts c must match torch's `context_head`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_meta.export.options import ExportConfig, ExportError
from robot_meta.meta import TrainedRun
from robot_meta.runtime.adaptation import context_head
from robot_meta.runtime.manifest import pack_transitions
from robot_meta.runtime.session import inference_session

__all__ = ["check_parity"]


def _parity_inputs(run: TrainedRun[Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """Observations spread over (and somewhat beyond) the range the normaliser has seen."""
    norm = run.policy.obs_norm
    mean = norm.mean.detach().numpy().astype(np.float64)
    std = np.sqrt(norm.var.detach().numpy().astype(np.float64) + norm.eps)
    scale = rng.choice([0.5, 1.0, 2.0, 4.0], size=(n, 1))
    return (mean + std * scale * rng.standard_normal((n, mean.size))).astype(np.float32)


def _contexts(run: TrainedRun[Any], obs: np.ndarray, rng: np.random.Generator, sets: int) -> list[np.ndarray]:
    enc = run.encoder
    assert enc is not None
    out = []
    for k in range(sets):
        size = int(rng.integers(1, 65)) if k else 1
        idx = rng.integers(0, len(obs), size=size)
        s = obs[idx]
        actions = rng.integers(0, enc.n_actions, size=size)
        r = rng.standard_normal((size, 1)).astype(np.float32)
        nxt = s + 0.1 * rng.standard_normal(s.shape).astype(np.float32)
        out.append(pack_transitions(s, actions, r, nxt, enc.n_actions))
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


def check_parity(
    run: TrainedRun[Any], policy_path: Path, encoder_path: Path | None, cfg: ExportConfig
) -> dict[str, Any]:
    rng = np.random.default_rng(cfg.seed)
    qnet = run.policy
    obs = _parity_inputs(run, cfg.parity_samples, rng)
    sess = inference_session(policy_path, str(policy_path))
    w = qnet.head.weight.detach().numpy()
    b = qnet.head.bias.detach().numpy()
    out: dict[str, Any] = {}
    z: np.ndarray | None = None
    if run.encoder is not None:
        assert encoder_path is not None
        enc_sess = inference_session(encoder_path, str(encoder_path))
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
    if qnet.head_context_dim:
        out["policy_context_head"] = _context_parity(qnet, sess, obs, f_ref, w, b, z, rng, cfg)
    return out


def _context_parity(
    qnet: Any,
    sess: Any,
    obs: np.ndarray,
    f_ref: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    z: np.ndarray | None,
    rng: np.random.Generator,
    cfg: ExportConfig,
) -> dict[str, Any]:
    """The basis echo is exact; Q with ``W(c), b(c)`` built in numpy and fed to the graph equals torch's."""
    from robot_meta.meta.adaptation import context_head as torch_context_head

    basis = qnet.head_basis.detach()
    bias_basis = qnet.head_bias_basis.detach()
    extra = {} if z is None else {"z": z[:1]}
    got_basis, got_bias_basis = sess.run(
        ["head_basis_value", "head_bias_basis_value"], {"obs": obs[:1], **extra}
    )
    if not (np.array_equal(got_basis, basis.numpy()) and np.array_equal(got_bias_basis, bias_basis.numpy())):
        raise ExportError(
            "the policy graph's context basis differs from the trained one: do not deploy this export"
        )
    qs_ref, qs_got = [], []
    for _ in range(8):
        c = rng.standard_normal(basis.shape[0]).astype(np.float32)
        wc, bc = context_head(w, b, got_basis, got_bias_basis, c)
        with torch.no_grad():
            wt, bt = torch_context_head(
                torch.from_numpy(w), torch.from_numpy(b), basis, bias_basis, torch.from_numpy(c)
            )
            qs_ref.append((torch.from_numpy(f_ref) @ wt.t() + bt).numpy())
        feeds: dict[str, np.ndarray] = {"obs": obs, "head_weight": wc, "head_bias": bc}
        if z is not None:
            feeds["z"] = z
        qs_got.append(sess.run(["q_values"], feeds)[0])
    return _compare(
        "the policy (context head W(c), b(c))",
        np.concatenate(qs_ref), np.concatenate(qs_got), f_ref, f_ref, cfg,
    )  # fmt: skip
