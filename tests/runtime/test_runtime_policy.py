"""AdaptivePolicy: loading guards, acting, observing, adapting, resetting; torch-free import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_meta.meta import TrainedRun, adapt_head
from robot_meta.runtime import (
    AdaptConfig,
    AdaptivePolicy,
    ManifestError,
    ObservationError,
    RuntimeLoadError,
    TransitionError,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def copy_of(tmp_path: Path, mdqn_export: tuple[TrainedRun, Path]) -> Path:
    dst = tmp_path / "exp"
    shutil.copytree(mdqn_export[1], dst)
    return dst


def _edit_manifest(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((path / "manifest.json").read_text())
    edit(doc)
    (path / "manifest.json").write_text(json.dumps(doc))


def _transitions(rng: np.random.Generator, n: int, obs_dim: int, n_actions: int):  # type: ignore[no-untyped-def]
    obs = (rng.normal(size=(n + 1, obs_dim)) * 2).astype(np.float32)
    return (
        obs[:-1],
        rng.integers(0, n_actions, n),
        rng.normal(size=n).astype(np.float32),
        obs[1:],
        rng.random(n) < 0.1,
    )


# -- acting ---------------------------------------------------------------------------------------
def test_act_matches_torch_greedy(mdqn_export: tuple[TrainedRun, Path]) -> None:
    run, path = mdqn_export
    policy = AdaptivePolicy.load(path)
    obs = (np.random.default_rng(0).normal(size=(300, 5)) * 2).astype(np.float32)
    with torch.no_grad():
        q_ref = run.policy(torch.from_numpy(obs)).numpy()
    acts = [policy.act(o) for o in obs]
    assert acts == list(q_ref.argmax(-1))
    np.testing.assert_allclose(policy.q_values(obs[0]), q_ref[0], atol=1e-5)
    assert policy.act(obs[0].astype(np.float64)) == acts[0]  # float64 is accepted (cast)
    assert policy.act(list(obs[0])) == acts[0]
    np.testing.assert_array_equal(policy.meta_weight, run.policy.head.weight.detach().numpy())


def test_bad_observations_are_refused_clearly(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    with pytest.raises(ObservationError, match=r"shape \(4,\) does not match the policy's \(5,\)"):
        policy.act(np.zeros(4, np.float32))
    with pytest.raises(ObservationError, match="dtype int64 is not a float type"):
        policy.act(np.zeros(5, np.int64))
    with pytest.raises(ObservationError, match="non-finite"):
        policy.act(np.array([0, 0, np.nan, 0, 0], np.float32))
    with pytest.raises(ObservationError, match="non-finite"):
        policy.act(np.array([0, 0, np.inf, 0, 0], np.float32))


# -- loading guards -------------------------------------------------------------------------------
def test_hash_mismatch_is_refused(copy_of: Path) -> None:
    data = bytearray((copy_of / "policy.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy_of / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"sha256 of .*policy.onnx.*corrupt or was modified"):
        AdaptivePolicy.load(copy_of)


def test_truncated_onnx_is_refused(copy_of: Path) -> None:
    data = (copy_of / "policy.onnx").read_bytes()
    (copy_of / "policy.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ManifestError, match="truncated"):
        AdaptivePolicy.load(copy_of)


def test_truncated_onnx_with_matching_manifest_gives_load_error(copy_of: Path) -> None:
    import hashlib

    data = (copy_of / "policy.onnx").read_bytes()[:300]
    (copy_of / "policy.onnx").write_bytes(data)

    def fix(doc: dict) -> None:  # type: ignore[type-arg]
        doc["files"]["policy.onnx"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    _edit_manifest(copy_of, fix)
    with pytest.raises(RuntimeLoadError, match=r"onnxruntime cannot load .*re-export"):
        AdaptivePolicy.load(copy_of)


def test_wrong_format_version_is_refused(copy_of: Path) -> None:
    _edit_manifest(copy_of, lambda d: d.update(format_version=99))
    with pytest.raises(ManifestError, match=r"format_version 99 .* reads version 1"):
        AdaptivePolicy.load(copy_of)


@pytest.mark.parametrize("field", ["head", "observation", "files", "adaptation", "env_id", "graphs"])
def test_missing_manifest_field_is_named(copy_of: Path, field: str) -> None:
    _edit_manifest(copy_of, lambda d: d.pop(field))
    with pytest.raises(ManifestError, match=f"'{field}' is missing"):
        AdaptivePolicy.load(copy_of)


def test_missing_nested_field_and_manifest(copy_of: Path, tmp_path: Path) -> None:
    _edit_manifest(copy_of, lambda d: d["adaptation"].pop("lr"))
    with pytest.raises(ManifestError, match=r"adaptation\.'lr' is missing"):
        AdaptivePolicy.load(copy_of)
    (copy_of / "manifest.json").unlink()
    with pytest.raises(ManifestError, match=r"manifest\.json not found"):
        AdaptivePolicy.load(copy_of)
    with pytest.raises(ManifestError, match="not a directory"):
        AdaptivePolicy.load(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["../policy.onnx", "/etc/passwd", "sub/../../x.onnx"])
def test_manifest_cannot_point_outside_its_directory(copy_of: Path, name: str) -> None:
    def point(doc: dict) -> None:  # type: ignore[type-arg]
        doc["files"][name] = doc["files"]["policy.onnx"]
        doc["graphs"]["policy"] = name

    _edit_manifest(copy_of, point)
    with pytest.raises(ManifestError, match="outside the export directory"):
        AdaptivePolicy.load(copy_of)


def test_symlink_out_of_the_directory_is_refused(copy_of: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(copy_of / "policy.onnx", outside)
    (copy_of / "policy.onnx").unlink()
    os.symlink(outside, copy_of / "policy.onnx")
    with pytest.raises(ManifestError, match="outside"):
        AdaptivePolicy.load(copy_of)


# -- observe / adapt / reset ----------------------------------------------------------------------
def test_adapt_equals_torch_rule_on_identical_transitions(mdqn_export: tuple[TrainedRun, Path]) -> None:
    run, path = mdqn_export
    policy = AdaptivePolicy.load(path)
    rng = np.random.default_rng(3)
    obs, acts, rews, nxt, term = _transitions(rng, 40, 5, 4)
    for i in range(40):
        policy.observe(obs[i], int(acts[i]), float(rews[i]), nxt[i], bool(term[i]))
    report = policy.adapt()
    assert report.applied and report.steps == 5 and report.transitions == 32  # support_size of the manifest
    assert report.loss_after < report.loss_before
    s = slice(8, 40)  # the latest 32
    net = run.policy
    assert run.adaptation is not None
    with torch.no_grad():
        w, b = adapt_head(
            net.head.weight, net.head.bias, net.features(torch.from_numpy(obs[s])), torch.from_numpy(acts[s]),
            torch.from_numpy(rews[s]), net.features(torch.from_numpy(nxt[s])),
            torch.from_numpy(term[s].astype(np.float32)), run.adaptation,
        )  # fmt: skip
    hw, hb = policy.head
    np.testing.assert_allclose(hw, w.numpy(), atol=2e-6, rtol=0)
    np.testing.assert_allclose(hb, b.numpy(), atol=2e-6, rtol=0)
    assert not np.array_equal(hw, policy.meta_weight)
    with torch.no_grad():
        q = net.features(torch.from_numpy(obs[:5])) @ w.t() + b
    np.testing.assert_allclose(policy.q_values(obs[0]), q[0].numpy(), atol=1e-5)


def test_observe_refuses_bad_transitions(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    good = np.zeros(5, np.float32)
    bad = np.array([0, np.nan, 0, 0, 0], np.float32)
    with pytest.raises(TransitionError, match="non-finite"):
        policy.observe(good, 0, 0.0, bad, False)
    with pytest.raises(TransitionError, match="reward nan is not finite"):
        policy.observe(good, 0, float("nan"), good, False)
    with pytest.raises(TransitionError, match=r"action 7 is not an int in \[0, 4\)"):
        policy.observe(good, 7, 0.0, good, False)
    with pytest.raises(TransitionError, match="shape"):
        policy.observe(np.zeros(3, np.float32), 0, 0.0, good, False)
    assert policy.buffered == 0
    report = policy.adapt()
    assert not report.applied and report.steps == 0 and "0 transitions" in report.reason


def test_buffer_is_bounded_and_keeps_the_latest(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1], AdaptConfig(buffer_capacity=10, support_size=4))
    for i in range(25):
        policy.observe(np.full(5, i, np.float32), 0, float(i), np.full(5, i + 1, np.float32), False)
    assert policy.buffered == 10
    obs, _, rewards, _, _ = policy._buffer.latest(4)
    assert list(rewards) == [21.0, 22.0, 23.0, 24.0] and obs[0, 0] == 21.0


def test_rollback_keeps_last_good_head_and_reset(mdqn_export: tuple[TrainedRun, Path]) -> None:
    path = mdqn_export[1]
    policy = AdaptivePolicy.load(path, AdaptConfig(trust_region=1e-9))
    rng = np.random.default_rng(4)
    obs, acts, rews, nxt, term = _transitions(rng, 20, 5, 4)
    for i in range(20):
        policy.observe(obs[i], int(acts[i]), float(rews[i]) * 50, nxt[i], bool(term[i]))
    report = policy.adapt()
    assert report.rolled_back and not report.applied and "trust region" in report.reason
    np.testing.assert_array_equal(policy.head[0], policy.meta_weight)
    # A normal policy adapts, then reset_adaptation restores the meta head and empties the buffer.
    ok = AdaptivePolicy.load(path)
    for i in range(20):
        ok.observe(obs[i], int(acts[i]), float(rews[i]), nxt[i], bool(term[i]))
    assert ok.adapt().applied and ok.adaptations == 1
    ok.reset_adaptation()
    assert ok.buffered == 0 and ok.adaptations == 0
    np.testing.assert_array_equal(ok.head[0], ok.meta_weight)


def test_ridge_method(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(
        mdqn_export[1], AdaptConfig(method="ridge", ridge_lambda=1.0, trust_region=5.0)
    )
    rng = np.random.default_rng(5)
    obs, acts, rews, nxt, term = _transitions(rng, 64, 5, 4)
    for i in range(64):
        policy.observe(obs[i], int(acts[i]), float(rews[i]), nxt[i], bool(term[i]))
    report = policy.adapt()
    assert report.method == "ridge" and report.applied and report.loss_after < report.loss_before


def test_act_while_adapting_in_another_thread(mdqn_export: tuple[TrainedRun, Path]) -> None:
    policy = AdaptivePolicy.load(mdqn_export[1])
    rng = np.random.default_rng(6)
    obs, acts, rews, nxt, term = _transitions(rng, 64, 5, 4)
    for i in range(64):
        policy.observe(obs[i], int(acts[i]), float(rews[i]), nxt[i], bool(term[i]))
    errors: list[BaseException] = []
    stop = threading.Event()

    def adapter() -> None:
        try:
            while not stop.is_set():
                policy.adapt()
                policy.reset_adaptation()
                for i in range(8):
                    policy.observe(obs[i], int(acts[i]), float(rews[i]), nxt[i], bool(term[i]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=adapter)
    t.start()
    actions = {policy.act(obs[i % 64]) for i in range(3000)}
    stop.set()
    t.join()
    assert not errors and actions <= set(range(4))


def test_context_policy_infers_z(context_export: tuple[TrainedRun, Path]) -> None:
    run, path = context_export
    policy = AdaptivePolicy.load(path)
    assert run.encoder is not None
    with torch.no_grad():
        z_prior = run.encoder(torch.zeros(0, run.encoder.transition_dim)).numpy()
    np.testing.assert_allclose(policy.z[0], z_prior, atol=1e-5)  # type: ignore[index]
    rng = np.random.default_rng(7)
    obs, acts, rews, nxt, term = _transitions(rng, 20, 5, 4)
    for i in range(20):
        policy.observe(obs[i], int(acts[i]), float(rews[i]), nxt[i], bool(term[i]))
    report = policy.adapt()
    assert report.method == "context" and report.applied and report.transitions == 16
    packed = run.encoder.pack(
        torch.from_numpy(obs[4:]),
        torch.from_numpy(acts[4:]),
        torch.from_numpy(rews[4:]),
        torch.from_numpy(nxt[4:]),
    )
    with torch.no_grad():
        z = run.encoder(packed)
        q = run.policy(torch.from_numpy(obs[:1]), z[None])
    np.testing.assert_allclose(policy.z[0], z.numpy(), atol=1e-5)  # type: ignore[index]
    np.testing.assert_allclose(policy.q_values(obs[0]), q[0].numpy(), atol=1e-5)
    policy.reset_adaptation()
    np.testing.assert_allclose(policy.z[0], z_prior, atol=1e-5)  # type: ignore[index]


# -- the device has no torch ----------------------------------------------------------------------
_BLOCKER = r"""
import sys, importlib.abc
BLOCKED = ("torch", "pybullet", "pybullet_data", "gymnasium")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the runtime must not import it")
        return None
sys.meta_path.insert(0, Block())
import numpy as np
import robot_meta.runtime as rt
policy = rt.AdaptivePolicy.load(sys.argv[1])
obs = np.zeros(policy.obs_dim, np.float32)
a = policy.act(obs)
for i in range(10):
    policy.observe(obs + i, a, -1.0, obs + i + 1, False)
report = policy.adapt()
assert report.applied, report
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("OK", a, report.steps)
"""


def test_runtime_imports_and_runs_without_torch_pybullet_gymnasium(
    mdqn_export: tuple[TrainedRun, Path],
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCKER, str(mdqn_export[1])],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK")


def test_onnx_policy_and_few_shot_adapter_public_pieces(mdqn_export: tuple[TrainedRun, Path]) -> None:
    from robot_meta.runtime import FewShotAdapter, OnnxPolicy

    path = mdqn_export[1]
    plain = OnnxPolicy.load(path)
    assert not hasattr(plain, "adapt")
    obs = np.ones(5, np.float32)
    w = np.zeros((4, 32), np.float32)
    b = np.array([0, 0, 1, 0], np.float32)
    plain.set_head(w, b)
    assert plain.act(obs) == 2
    with pytest.raises(ValueError, match="non-finite"):
        plain.set_head(w, np.array([0, np.nan, 0, 0], np.float32))
    with pytest.raises(ValueError, match="do not match"):
        plain.set_head(w[:3], b)
    assert plain.act(obs) == 2  # the refused heads changed nothing
    adaptive = AdaptivePolicy.load(path)
    assert isinstance(adaptive.adapter, FewShotAdapter)
    assert (adaptive.adapter.steps, adaptive.adapter.lr) == (5, 0.05)
