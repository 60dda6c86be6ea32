"""Export: graphs, manifest, onnx.checker and the torch<->onnxruntime parity gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import export_fake, make_run

from robot_meta.export import (
    ENCODER_FILE,
    POLICY_FILE,
    ExportConfig,
    ExportError,
    export_trained,
    train_command,
)
from robot_meta.runtime import FORMAT_VERSION, MANIFEST_FILE, load_manifest, sha256_file


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_policy_export_has_head_inputs_with_trained_defaults(tmp_path: Path) -> None:
    run, _ = export_fake(tmp_path / "exp")
    model = onnx.load(str(tmp_path / "exp" / POLICY_FILE))
    onnx.checker.check_model(model, full_check=True)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    outputs = [o.name for o in model.graph.output]
    assert {"obs", "head_weight", "head_bias"} <= inputs
    assert outputs == ["q_values", "features", "head_weight_value", "head_bias_value"]
    np.testing.assert_array_equal(inits["head_weight"], run.policy.head.weight.detach().numpy())
    np.testing.assert_array_equal(inits["head_bias"], run.policy.head.bias.detach().numpy())
    sess = ort.InferenceSession(str(tmp_path / "exp" / POLICY_FILE), providers=["CPUExecutionProvider"])
    assert {i.name for i in sess.get_overridable_initializers()} == {"head_weight", "head_bias"}
    # Normalisation is in the graph: raw observations in, the torch Q-values out.
    obs = np.random.default_rng(1).normal(size=(64, 5)).astype(np.float32) * 3
    q, f = sess.run(["q_values", "features"], {"obs": obs})
    with torch.no_grad():
        np.testing.assert_allclose(q, run.policy(torch.from_numpy(obs)).numpy(), atol=1e-5)
        np.testing.assert_allclose(f, run.policy.features(torch.from_numpy(obs)).numpy(), atol=1e-5)


def test_manifest_content(tmp_path: Path) -> None:
    export_fake(tmp_path / "exp")
    doc = json.loads((tmp_path / "exp" / MANIFEST_FILE).read_text())
    assert doc["format_version"] == FORMAT_VERSION
    assert doc["algo"] == "meta-dqn"
    assert doc["observation"] == {"dim": 5, "dtype": "float32", "layout": [["obs", 5]]}
    assert doc["actions"]["n"] == 4
    assert doc["head"]["shape"] == [4, 32]
    assert doc["adaptation"]["rule"] == "head_td_sgd"
    assert doc["adaptation"]["steps"] == 5 and doc["adaptation"]["lr"] == 0.05
    assert doc["adaptation"]["support_size"] == 32  # the smoke config's support size
    assert set(doc["producer"]["versions"]) >= {"torch", "onnx", "onnxruntime", "numpy", "python"}
    assert doc["producer"]["command"].startswith("robot-meta export")
    assert doc["train"]["command"].startswith("robot-meta train --algo meta-dqn")
    assert doc["files"][POLICY_FILE]["sha256"] == sha256_file(tmp_path / "exp" / POLICY_FILE)
    par = doc["parity"]["policy_default_head"]
    assert par["samples"] == 512 and par["max_abs_diff_q"] <= 1e-5 and par["greedy_mismatches"] == 0
    assert doc["parity"]["policy_fed_head"]["max_abs_diff_q"] <= 1e-5
    assert len(doc["normalizer"]["mean"]) == 5
    load_manifest(tmp_path / "exp")  # valid for the runtime


def test_context_export_has_encoder_and_parity(tmp_path: Path) -> None:
    _, result = export_fake(tmp_path / "exp", "context")
    assert (tmp_path / "exp" / ENCODER_FILE).is_file()
    doc = result.manifest
    assert doc["graphs"] == {"policy": POLICY_FILE, "encoder": ENCODER_FILE}
    assert doc["adaptation"] == {"rule": "context_inference", "context_size": 16}
    assert doc["context"]["latent_dim"] == 4 and doc["context"]["transition_dim"] == 2 * 5 + 4 + 1
    assert result.parity["encoder"]["max_abs_diff_z"] <= 1e-5
    onnx.checker.check_model(str(tmp_path / "exp" / ENCODER_FILE), full_check=True)
    sess = ort.InferenceSession(str(tmp_path / "exp" / POLICY_FILE), providers=["CPUExecutionProvider"])
    assert "z" in {i.name for i in sess.get_inputs()}


def test_parity_failure_is_loud_and_leaves_no_manifest(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    with pytest.raises(ExportError, match="parity failed"):
        export_trained(run, tmp_path / "exp", config=ExportConfig(parity_samples=64, atol=1e-12))
    assert not (tmp_path / "exp" / MANIFEST_FILE).exists()
    export_trained(run, tmp_path / "exp", config=ExportConfig(parity_samples=64))  # a retry into it works
    load_manifest(tmp_path / "exp")


def test_reexport_replaces_and_refuses_foreign_directory(tmp_path: Path) -> None:
    export_fake(tmp_path / "exp", "context")
    export_fake(tmp_path / "exp", seed=1)  # a previous export is replaced (its encoder removed)
    assert load_manifest(tmp_path / "exp").context is None
    assert not (tmp_path / "exp" / ENCODER_FILE).exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"not empty and holds files of no export \(notes.txt\)"):
        export_trained(make_run(tmp_path / "run"), foreign)


def test_train_command_reproduces_overrides(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    cmd = train_command(run)
    assert cmd.startswith(
        "robot-meta train --algo meta-dqn --env test/NoSuchEnv-v0 --preset slide --budget smoke"
    )
    assert cmd.endswith(f"--out {tmp_path / 'run'}")
    assert "--set" not in cmd


def test_reptile_export_adapts_the_head_only(tmp_path: Path) -> None:
    _, result = export_fake(tmp_path / "exp", "reptile")
    adaptation = result.manifest["adaptation"]
    assert adaptation["rule"] == "head_td_sgd" and adaptation["support_size"] == 64
    assert "head only" in adaptation["trained_with"]
    assert load_manifest(tmp_path / "exp").head_rule is not None
