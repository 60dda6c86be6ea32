"""The device contract has one owner: `Manifest` both ways, one `HeadRule`, one transition packing,
and graphs that the ONNX reference evaluator runs like onnxruntime (the oldest-version claim)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import export_fake, make_run

import robot_meta.meta as meta
from robot_meta.export import ENCODER_FILE, POLICY_FILE, ExportConfig, export_trained
from robot_meta.runtime import (
    MANIFEST_FILE,
    OLDEST_ONNXRUNTIME,
    HeadRule,
    ManifestError,
    load_manifest,
    pack_transitions,
)


@pytest.mark.parametrize("algo", ["meta-dqn", "reptile", "context"])
def test_manifest_to_dict_is_the_written_document(tmp_path: Path, algo: str) -> None:
    export_fake(tmp_path / "exp", algo)
    doc = json.loads((tmp_path / "exp" / MANIFEST_FILE).read_text())
    manifest = load_manifest(tmp_path / "exp")
    assert manifest.to_dict() == doc
    assert manifest.train_distribution == doc["train_distribution"]
    assert manifest.layout == doc["observation"]["layout"]


def test_one_head_rule_type_from_training_to_the_device(tmp_path: Path) -> None:
    assert meta.HeadAdaptation is HeadRule and meta.HeadRule is HeadRule
    rule = HeadRule(steps=3, lr=0.02, gamma=0.9, huber_delta=0.5, n_step=4, support_size=48)
    assert HeadRule.from_dict(rule.to_dict()) == rule
    run = make_run(tmp_path / "run", rule=rule)
    export_trained(run, tmp_path / "exp", config=ExportConfig(parity_samples=64))
    assert load_manifest(tmp_path / "exp").head_rule == rule  # support size and n_step included
    with pytest.raises(ManifestError, match="support_size"):
        HeadRule.from_dict({**rule.to_dict(), "support_size": 0})
    with pytest.raises(ValueError, match=r"HeadRule\.support_size"):
        HeadRule(support_size=0)


def test_manifest_records_the_oldest_onnxruntime_checked(tmp_path: Path) -> None:
    _, result = export_fake(tmp_path / "exp")
    producer = result.manifest["producer"]
    assert producer["oldest_onnxruntime"] == OLDEST_ONNXRUNTIME == "1.17.3"
    assert producer["opset"] == 17 and producer["ir_version"] <= 8
    # the claim was checked for opset 17 graphs only: another opset records none
    run = make_run(tmp_path / "run")
    other = export_trained(run, tmp_path / "exp18", config=ExportConfig(opset=18, parity_samples=64))
    assert other.manifest["producer"]["oldest_onnxruntime"] is None


def test_pack_transitions_is_the_encoders_layout() -> None:
    rng = np.random.default_rng(0)
    obs, nxt = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    actions, rewards = rng.integers(0, 4, 6), rng.standard_normal(6)
    rows = pack_transitions(obs, actions, rewards, nxt, 4)
    assert rows.dtype == np.float32 and rows.shape == (6, 2 * 5 + 4 + 1)
    from robot_meta.policies import ContextEncoder

    enc = ContextEncoder(5, 4, 3, (8,))
    t = enc.pack(
        torch.from_numpy(obs.astype(np.float32)),
        torch.from_numpy(actions),
        torch.from_numpy(rewards.astype(np.float32)),
        torch.from_numpy(nxt.astype(np.float32)),
    )
    np.testing.assert_array_equal(rows, t.numpy())


@pytest.mark.parametrize("algo", ["meta-dqn", "context"])
def test_reference_evaluator_agrees_with_onnxruntime(tmp_path: Path, algo: str) -> None:
    from onnx.reference import ReferenceEvaluator

    from robot_meta.runtime import inference_session

    export_fake(tmp_path / "exp", algo)
    rng = np.random.default_rng(3)
    obs = (rng.standard_normal((64, 5)) * 2).astype(np.float32)
    feeds: dict[str, np.ndarray] = {"obs": obs}
    if algo == "context":
        enc_path = tmp_path / "exp" / ENCODER_FILE
        rows = pack_transitions(obs[:20], rng.integers(0, 4, 20), rng.standard_normal(20), obs[1:21], 4)
        enc_feeds = {"transitions": rows, "mask": np.ones(20, np.float32)}
        z_ref = ReferenceEvaluator(str(enc_path)).run(["z"], enc_feeds)[0]
        z_ort = inference_session(enc_path, "encoder").run(["z"], enc_feeds)[0]
        np.testing.assert_allclose(z_ref, z_ort, rtol=0, atol=1e-6)
        feeds["z"] = np.repeat(np.asarray(z_ort, np.float32).reshape(1, -1), len(obs), axis=0)
    path = tmp_path / "exp" / POLICY_FILE
    names = ["q_values", "features", "head_weight_value", "head_bias_value"]
    ref = ReferenceEvaluator(str(path)).run(names, feeds)
    got = inference_session(path, "policy").run(names, feeds)
    for name, a, b in zip(names, ref, got, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)


def test_manifest_is_frozen_and_typed(tmp_path: Path) -> None:
    export_fake(tmp_path / "exp", "context")
    manifest = load_manifest(tmp_path / "exp")
    assert manifest.context is not None and manifest.head_rule is None
    assert manifest.rule is manifest.context and manifest.context.file == ENCODER_FILE
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.algo = "x"  # type: ignore[misc]
