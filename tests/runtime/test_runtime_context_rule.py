"""The numpy context head rule equals torch's `adapt_context_head`; guards, refusals, manifest, device."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_meta.meta import ContextHeadRule, adapt_context_head
from robot_meta.meta.adaptation import successor_flags as torch_successor
from robot_meta.runtime import (
    AdaptConfig,
    AdaptivePolicy,
    FewShotAdapter,
    ManifestError,
    context_td_adapt,
    load_manifest,
    successor_flags,
    td_adapt,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
from export_helpers import export_fake


def _set(rng: np.random.Generator, n: int, h: int = 16, a: int = 5, d: int = 4):  # type: ignore[no-untyped-def]
    obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
    next_obs, obs = obs[1:].copy(), obs[:-1].copy()
    if n > 3:
        obs[n // 2] = rng.normal(size=3).astype(np.float32)  # an episode break
    return {
        "weight": (rng.normal(size=(a, h)) * 0.5).astype(np.float32),
        "bias": rng.normal(size=a).astype(np.float32),
        "basis": (rng.normal(size=(d, a, h)) * 0.3).astype(np.float32),
        "bias_basis": (rng.normal(size=(d, a)) * 0.3).astype(np.float32),
        "features": np.tanh(rng.normal(size=(n, h))).astype(np.float32),
        "actions": rng.integers(0, a, size=n),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_features": np.tanh(rng.normal(size=(n, h))).astype(np.float32),
        "terminated": (rng.random(n) < 0.1).astype(np.float32),
        "obs": obs,
        "next_obs": next_obs,
    }


def _torch(s: dict[str, np.ndarray], rule: ContextHeadRule, succ: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
    t = {k: torch.from_numpy(v) for k, v in s.items()}
    return adapt_context_head(
        t["weight"], t["bias"], t["basis"], t["bias_basis"], t["features"], t["actions"], t["rewards"],
        t["next_features"], t["terminated"], rule, successor=succ,
    )  # fmt: skip


def _numpy(s: dict[str, np.ndarray], **kw):  # type: ignore[no-untyped-def]
    keys = (
        "weight",
        "bias",
        "basis",
        "bias_basis",
        "features",
        "actions",
        "rewards",
        "next_features",
        "terminated",
    )
    return context_td_adapt(*(s[k] for k in keys), **kw)


@pytest.mark.parametrize("n", [1, 7, 64])
def test_numpy_context_rule_equals_torch(n: int) -> None:
    s = _set(np.random.default_rng(n), n)
    rule = ContextHeadRule(steps=5, lr=0.5, gamma=0.95, huber_delta=0.7, context_dim=4)
    wt, bt = _torch(s, rule)
    step = _numpy(s, steps=5, lr=0.5, gamma=0.95, huber_delta=0.7)
    assert step.steps == 5 and not step.rolled_back and step.weight.dtype == np.float32
    assert step.context is not None and step.context.shape == (4,)
    np.testing.assert_allclose(step.weight, wt.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(step.bias, bt.numpy(), atol=1e-5, rtol=0)
    assert step.loss_after < step.loss_before
    # every action's row moved, not only the tried ones
    moved = np.abs(step.weight - s["weight"]).max(axis=1)
    assert (moved > 1e-4).all()


def test_numpy_nstep_context_rule_equals_torch() -> None:
    s = _set(np.random.default_rng(5), 30)
    succ = successor_flags(s["obs"], s["next_obs"])
    succ_t = torch_successor(torch.from_numpy(s["obs"]), torch.from_numpy(s["next_obs"]))
    rule = ContextHeadRule(steps=3, lr=0.4, gamma=0.9, huber_delta=1.0, n_step=4, context_dim=4)
    wt, bt = _torch(s, rule, succ_t)
    step = _numpy(s, steps=3, lr=0.4, gamma=0.9, huber_delta=1.0, n_step=4, successor=succ)
    np.testing.assert_allclose(step.weight, wt.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(step.bias, bt.numpy(), atol=1e-5, rtol=0)


def test_one_shot_promotes_the_right_action_on_the_device() -> None:
    """The bandit of tests/meta/test_context_rule.py in numpy: Q(s) = [1, .5, 0], action 0 fails,
    one step makes action 2 greedy (c = -1, Q = [0, .5, 1]); the head rule leaves action 2 at 0."""
    basis = np.zeros((1, 3, 2), np.float32)
    basis[0, 0, 0], basis[0, 2, 0] = 1.0, -1.0
    w0 = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]], np.float32)
    args = (np.array([[1.0, 0.0]], np.float32), np.array([0]), np.array([-1.0], np.float32),
            np.zeros((1, 2), np.float32), np.array([1.0], np.float32))  # fmt: skip
    step = context_td_adapt(w0, np.zeros(3, np.float32), basis, np.zeros((1, 3), np.float32), *args,
                            steps=1, lr=1.0, gamma=0.9, huber_delta=1.0)  # fmt: skip
    q = step.weight @ args[0][0] + step.bias
    assert step.context is not None and step.context.tolist() == [-1.0]
    assert q.tolist() == [0.0, 0.5, 1.0] and int(q.argmax()) == 2
    head = td_adapt(w0, np.zeros(3, np.float32), *args, steps=20, lr=1.0, gamma=0.9, huber_delta=1.0)
    qh = head.weight @ args[0][0] + head.bias
    assert qh[1] == 0.5 and qh[2] == 0.0 and int(qh.argmax()) != 2


def test_empty_support_leaves_the_head() -> None:
    s = _set(np.random.default_rng(0), 8)
    empty = {**s, **{k: s[k][:0] for k in ("features", "actions", "rewards", "next_features", "terminated")}}
    step = _numpy(empty, steps=3, lr=0.5, gamma=0.9, huber_delta=1.0)
    assert step.steps == 0 and not step.rolled_back
    assert np.array_equal(step.weight, s["weight"]) and np.array_equal(step.bias, s["bias"])
    assert step.context is not None and not step.context.any()


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("features", "nan", "features has non-finite"),
        ("rewards", "nan", "rewards has non-finite"),
        ("next_features", "inf", "next_features has non-finite"),
        ("basis", "nan", "basis has non-finite"),
        ("features", "shape", "support shapes"),
        ("rewards", "shape", "support shapes"),
        ("basis", "shape", "context basis shapes"),
        ("bias", "shape", "head shapes"),
        ("actions", "range", r"actions must be in \[0, 5\)"),
    ],
)
def test_bad_inputs_are_refused(key: str, value: str, match: str) -> None:
    s = _set(np.random.default_rng(1), 8)
    x = s[key].copy()
    if value in ("nan", "inf"):
        x.reshape(-1)[3] = np.nan if value == "nan" else np.inf
    elif value == "shape":
        x = x[..., :-1] if x.ndim > 1 else x[:-1]
    else:
        x[2] = 5
    with pytest.raises(ValueError, match=match):
        _numpy({**s, key: x}, steps=3, lr=0.5, gamma=0.9, huber_delta=1.0)


def test_trust_region_and_non_finite_steps_are_rolled_back() -> None:
    s = _set(np.random.default_rng(2), 32)
    moved = []
    for k in range(1, 6):
        sk = _numpy(s, steps=k, lr=2.0, gamma=0.9, huber_delta=1.0)
        moved.append(
            float(np.sqrt(np.sum((sk.weight - s["weight"]) ** 2) + np.sum((sk.bias - s["bias"]) ** 2)))
        )
    radius = (moved[1] + moved[2]) / 2  # the third step leaves the region
    guarded = _numpy(s, steps=5, lr=2.0, gamma=0.9, huber_delta=1.0, trust_radius=radius)
    assert guarded.rolled_back and guarded.steps == 2 and "trust region" in guarded.reason
    np.testing.assert_array_equal(
        guarded.weight, _numpy(s, steps=2, lr=2.0, gamma=0.9, huber_delta=1.0).weight
    )
    with np.errstate(over="ignore", invalid="ignore"):
        bad = _numpy(s, steps=3, lr=1e39, gamma=0.9, huber_delta=1.0)
    assert bad.rolled_back and bad.steps == 0 and "non-finite" in bad.reason
    np.testing.assert_array_equal(bad.weight, s["weight"])


def test_few_shot_adapter_runs_the_context_rule_and_refuses_ridge() -> None:
    s = _set(np.random.default_rng(3), 16)
    adapter = FewShotAdapter(
        steps=4, lr=0.5, gamma=0.9, huber_delta=1.0, basis=s["basis"], bias_basis=s["bias_basis"]
    )
    got = adapter.adapt(s["weight"], s["bias"], s["features"], s["actions"], s["rewards"], s["next_features"],
                        s["terminated"])  # fmt: skip
    ref = _numpy(s, steps=4, lr=0.5, gamma=0.9, huber_delta=1.0)
    np.testing.assert_array_equal(got.weight, ref.weight)
    with pytest.raises(ValueError, match="method='td'"):
        FewShotAdapter(steps=1, lr=0.5, gamma=0.9, huber_delta=1.0, method="ridge",
                       basis=s["basis"], bias_basis=s["bias_basis"])  # fmt: skip
    with pytest.raises(ValueError, match="both basis and bias_basis"):
        FewShotAdapter(steps=1, lr=0.5, gamma=0.9, huber_delta=1.0, basis=s["basis"])


def test_context_rule_round_trips_through_the_manifest_and_refuses_bad_fields() -> None:
    rule = ContextHeadRule(
        steps=3, lr=0.7, gamma=0.9, huber_delta=1.0, n_step=2, support_size=32, context_dim=6
    )
    doc = json.loads(json.dumps(rule.to_dict()))
    assert doc["rule"] == "head_context_td" and ContextHeadRule.from_dict(doc) == rule
    for key, bad in (("context_dim", 0), ("context_dim", None), ("lr", float("nan")), ("steps", 10**6)):
        with pytest.raises(ManifestError, match="adaptation"):
            ContextHeadRule.from_dict(
                {**doc, key: bad} if bad is not None else {k: v for k, v in doc.items() if k != key}
            )


@pytest.fixture(scope="module")
def context_rule_export(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("exports") / "mdqn-context"
    rule = ContextHeadRule(steps=5, lr=0.5, gamma=0.9, huber_delta=1.0, support_size=64, context_dim=4)
    run, result = export_fake(out, rule=rule)
    return run, out, result


def test_export_carries_the_basis_and_passes_parity(context_rule_export) -> None:  # type: ignore[no-untyped-def]
    run, out, result = context_rule_export
    manifest = load_manifest(out)
    assert isinstance(manifest.head_rule, ContextHeadRule) and manifest.head_rule.context_dim == 4
    assert result.manifest["head"]["basis_shape"] == [4, run.policy.n_actions, run.policy.feature_dim]
    par = result.parity["policy_context_head"]
    assert par["max_abs_diff_q"] <= 1e-5 and par["greedy_mismatches"] == 0
    policy = AdaptivePolicy.load(out)
    assert policy.head_basis is not None
    np.testing.assert_array_equal(policy.head_basis[0], run.policy.head_basis.detach().numpy())
    with pytest.raises(ValueError, match="method must be 'td'"):
        AdaptivePolicy.load(out, config=AdaptConfig(method="ridge"))


def test_device_adapt_equals_torch_rule_and_acts_with_the_adapted_head(context_rule_export) -> None:  # type: ignore[no-untyped-def]
    run, out, _ = context_rule_export
    policy = AdaptivePolicy.load(out, config=AdaptConfig(trust_region=100.0))
    rng = np.random.default_rng(4)
    obs = rng.normal(size=(65, run.policy.obs_dim)).astype(np.float32)
    actions = rng.integers(0, run.policy.n_actions, size=64)
    rewards = rng.normal(size=64).astype(np.float32)
    for i in range(64):
        policy.observe(obs[i], int(actions[i]), float(rewards[i]), obs[i + 1], False)
    report = policy.adapt()
    assert report.applied and report.steps == 5 and report.context is not None
    rule = run.adaptation
    qnet = run.policy
    with torch.no_grad():
        f = qnet.features(torch.from_numpy(obs))
        wt, bt = adapt_context_head(
            qnet.head.weight, qnet.head.bias, qnet.head_basis, qnet.head_bias_basis, f[:-1],
            torch.from_numpy(actions), torch.from_numpy(rewards), f[1:], torch.zeros(64), rule,
        )  # fmt: skip
        q_ref = (f @ wt.t() + bt).numpy()
    w, b = policy.head
    np.testing.assert_allclose(w, wt.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(b, bt.numpy(), atol=1e-5, rtol=0)
    q_dev = np.stack([policy.q_values(o) for o in obs])
    np.testing.assert_allclose(q_dev, q_ref, atol=1e-5, rtol=0)
    policy.reset_adaptation()
    np.testing.assert_array_equal(policy.head[0], policy.meta_weight)
