"""The context head rule (CAVIA with a bilinear head): formula, coupling of actions, meta-gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from toy_env import toy_config, toy_trainer

from robot_meta.meta import (
    Batch,
    ContextHeadRule,
    HeadAdaptation,
    MetaDQN,
    adapt_context,
    adapt_context_head,
    adapt_head,
    adapt_with_rule,
    head_td_loss,
    head_td_targets,
    load_run,
    meta_td_loss,
)
from robot_meta.meta.adaptation import context_features, context_head
from robot_meta.meta.eval.adapters import HeadAdapter
from robot_meta.policies import QNetwork


def _loop_rule(w0, b0, basis, bias_basis, phi, actions, rewards, phi_next, done, steps, lr, gamma, kappa):  # type: ignore[no-untyped-def]
    """The documented rule written out with explicit loops over transitions (float64)."""
    n, d = len(actions), basis.shape[0]
    y = np.array([rewards[i] + gamma * (1.0 - done[i]) * np.max(w0 @ phi_next[i] + b0) for i in range(n)])
    c = np.zeros(d)
    for _ in range(steps):
        w = w0 + np.tensordot(c, basis, 1)
        b = b0 + c @ bias_basis
        grad = np.zeros(d)
        for i in range(n):
            a = actions[i]
            delta = w[a] @ phi[i] + b[a] - y[i]
            g = min(max(delta, -kappa), kappa)
            grad += g * np.array([basis[j, a] @ phi[i] + bias_basis[j, a] for j in range(d)]) / n
        c = c - lr * grad
    return c


def _random_set(
    rng: np.random.Generator, n: int = 11, h: int = 6, a: int = 4, d: int = 3
) -> dict[str, np.ndarray]:
    return {
        "w0": rng.normal(size=(a, h)),
        "b0": rng.normal(size=a),
        "basis": rng.normal(size=(d, a, h)),
        "bias_basis": rng.normal(size=(d, a)),
        "phi": rng.normal(size=(n, h)),
        "actions": rng.integers(0, a, size=n),
        "rewards": rng.normal(scale=2.0, size=n),
        "phi_next": rng.normal(size=(n, h)),
        "done": (rng.random(n) < 0.3).astype(np.float64),
    }


def _call(s: dict[str, np.ndarray], rule: ContextHeadRule) -> torch.Tensor:
    t = {k: torch.from_numpy(v) for k, v in s.items()}
    return adapt_context(
        t["w0"], t["b0"], t["basis"], t["bias_basis"], t["phi"], t["actions"], t["rewards"], t["phi_next"],
        t["done"], rule,
    )  # fmt: skip


@pytest.mark.parametrize("steps", [1, 4])
def test_adapt_context_equals_hand_computed_steps(steps: int) -> None:
    rng = np.random.default_rng(steps)
    s = _random_set(rng)
    rule = ContextHeadRule(steps=steps, lr=0.2, gamma=0.9, huber_delta=0.7, context_dim=3)
    expected = _loop_rule(**s, steps=steps, lr=0.2, gamma=0.9, kappa=0.7)
    c = _call(s, rule)
    np.testing.assert_allclose(c.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert np.abs(expected).max() > 1e-3  # it moved


def test_one_step_is_gradient_descent_on_the_huber_td_loss_in_c() -> None:
    rng = np.random.default_rng(7)
    s = {k: torch.from_numpy(v) for k, v in _random_set(rng).items()}
    rule = ContextHeadRule(steps=1, lr=0.3, gamma=0.9, huber_delta=0.7, context_dim=3)
    y = head_td_targets(s["w0"], s["b0"], s["phi_next"], s["rewards"], s["done"], 0.9)
    c = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w, b = context_head(s["w0"], s["b0"], s["basis"], s["bias_basis"], c)
    loss = head_td_loss(w, b, s["phi"], s["actions"], y, 0.7)
    (grad,) = torch.autograd.grad(loss, c)
    c1 = adapt_context(
        s["w0"], s["b0"], s["basis"], s["bias_basis"], s["phi"], s["actions"], s["rewards"], s["phi_next"],
        s["done"], rule,
    )  # fmt: skip
    torch.testing.assert_close(c1, -0.3 * grad, rtol=1e-12, atol=1e-12)
    # the closed-form G is dQ(s_i)[a_i]/dc
    g_feat = context_features(s["basis"], s["bias_basis"], s["phi"], s["actions"])
    q = lambda cc: context_head(s["w0"], s["b0"], s["basis"], s["bias_basis"], cc)  # noqa: E731
    jac = torch.autograd.functional.jacobian(
        lambda cc: (s["phi"] @ q(cc)[0].t() + q(cc)[1]).gather(-1, s["actions"].unsqueeze(-1)).squeeze(-1),
        torch.zeros(3, dtype=torch.float64),
    )
    torch.testing.assert_close(g_feat, jac, rtol=1e-12, atol=1e-12)


def _bandit() -> dict[str, torch.Tensor]:
    """One state, three actions; the meta head ranks 0 > 1 > 2, the task needs action 2.

    The shot tries the greedy action 0 and it fails (reward -1, episode over). The basis is what
    meta-training learns on a family where "0 fails" means "2 is right": one direction c_0 that
    lowers action 0 and raises action 2 (action 1 untouched).
    """
    phi = torch.tensor([[1.0, 0.0]])
    w0 = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]])  # Q(s) = [1.0, 0.5, 0.0]
    b0 = torch.zeros(3)
    basis = torch.zeros(1, 3, 2)
    basis[0, 0, 0], basis[0, 2, 0] = 1.0, -1.0
    return {
        "w0": w0,
        "b0": b0,
        "basis": basis,
        "bias_basis": torch.zeros(1, 3),
        "phi": phi,
        "actions": torch.tensor([0]),
        "rewards": torch.tensor([-1.0]),
        "phi_next": torch.zeros(1, 2),
        "done": torch.tensor([1.0]),
    }


def test_one_shot_promotes_the_untried_right_action_where_head_td_cannot() -> None:
    t = _bandit()
    phi = t["phi"][0]
    q0 = t["w0"] @ phi + t["b0"]
    assert q0.tolist() == [1.0, 0.5, 0.0] and int(q0.argmax()) == 0
    # The head rule: only the tried action's row moves, whatever K and alpha, so action 2 stays below
    # action 1 and can never become greedy.
    for steps, lr in ((1, 1.0), (5, 0.5), (50, 1.0)):
        rule = HeadAdaptation(steps=steps, lr=lr, gamma=0.9, huber_delta=1.0)
        w, b = adapt_head(
            t["w0"], t["b0"], t["phi"], t["actions"], t["rewards"], t["phi_next"], t["done"], rule
        )
        q = w @ phi + b
        assert q[1] == 0.5 and q[2] == 0.0  # untouched, exactly
        assert float(q[0]) < 1.0 and int(q.argmax()) != 2
    # The context rule, one step of alpha = 1: delta = Q(s)[0] - y = 1 - (-1) = 2, clipped to kappa = 1,
    # G = (B_0 phi)[0] = 1, so c = -1 and Q(s) = [1 - 1, 0.5, 0 + 1] = [0, 0.5, 1]: action 2 is greedy.
    crule = ContextHeadRule(steps=1, lr=1.0, gamma=0.9, huber_delta=1.0, context_dim=1)
    c = adapt_context(
        t["w0"], t["b0"], t["basis"], t["bias_basis"], t["phi"], t["actions"], t["rewards"], t["phi_next"],
        t["done"], crule,
    )  # fmt: skip
    assert c.tolist() == [-1.0]
    w, b = context_head(t["w0"], t["b0"], t["basis"], t["bias_basis"], c)
    q = w @ phi + b
    assert q.tolist() == [0.0, 0.5, 1.0] and int(q.argmax()) == 2
    # the dispatcher gives the same head
    w2, b2 = adapt_with_rule(
        crule, t["w0"], t["b0"], t["phi"], t["actions"], t["rewards"], t["phi_next"], t["done"],
        basis=t["basis"], bias_basis=t["bias_basis"],
    )  # fmt: skip
    assert torch.equal(w2, w) and torch.equal(b2, b)


def test_meta_training_learns_a_basis_that_promotes_the_right_action() -> None:
    """Meta-train (W0, b0, B, L) by the MetaDQN outer loss on a two-task bandit; then one failed shot of
    the greedy action makes the task's right action greedy (the head rule cannot: it demotes only)."""
    torch.manual_seed(0)
    qnet = QNetwork(1, 3, hidden=(4,), head_context_dim=2)
    target = QNetwork(1, 3, hidden=(4,), head_context_dim=2).requires_grad_(False)
    rule = ContextHeadRule(steps=1, lr=1.0, gamma=0.0, huber_delta=10.0, context_dim=2)
    opt = torch.optim.Adam(qnet.parameters(), lr=0.03)
    obs = torch.zeros(1, 1)
    # task 0: action 0 pays 1, others 0; task 1: action 2 pays 1, others 0 (gamma = 0: a bandit)
    pay = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

    def batch(actions: torch.Tensor, task_rows: torch.Tensor) -> Batch:
        n = actions.shape[-1]
        return Batch(
            obs=obs.expand(*actions.shape, 1),
            actions=actions,
            rewards=pay[task_rows].gather(-1, actions),
            next_obs=obs.expand(*actions.shape, 1),
            terminated=torch.ones(len(task_rows), n),
        )

    tasks = torch.tensor([0, 1])
    support = batch(torch.zeros(2, 1, dtype=torch.long), tasks)  # the shot tried action 0
    query = batch(torch.arange(3).repeat(2, 4), tasks)  # every action's outcome
    for _ in range(300):
        target.load_state_dict(qnet.state_dict())
        loss, _ = meta_td_loss(qnet, target, support, query, rule, zero_shot_weight=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        f = qnet.features(obs)
        for task in (0, 1):
            sup = batch(torch.zeros(1, 1, dtype=torch.long), torch.tensor([task]))
            w, b = adapt_context_head(
                qnet.head.weight, qnet.head.bias, qnet.head_basis, qnet.head_bias_basis, f.expand(1, 1, -1)[0],
                sup.actions[0], sup.rewards[0], f.expand(1, 1, -1)[0], sup.terminated[0], rule,
            )  # fmt: skip
            q = (f @ w.t() + b)[0]
            assert int(q.argmax()) == (0 if task == 0 else 2), q


def test_batched_and_masked_context_rule_equals_per_task_rule() -> None:
    rng = np.random.default_rng(3)
    rule = ContextHeadRule(steps=3, lr=0.3, gamma=0.9, huber_delta=1.0, context_dim=3)
    sets = [_random_set(rng, n=n) for n in (5, 9)]
    shared = {k: sets[0][k] for k in ("w0", "b0", "basis", "bias_basis")}
    for s in sets[1:]:
        s.update(shared)
    ref = [_call(s, rule) for s in sets]
    n_max = 9
    keys = ("phi", "actions", "rewards", "phi_next", "done")

    def pad(x: np.ndarray) -> np.ndarray:
        out = np.zeros((n_max, *x.shape[1:]), x.dtype)
        out[: len(x)] = x
        return out

    stacked = {k: torch.from_numpy(np.stack([pad(s[k]) for s in sets])) for k in keys}
    mask = torch.from_numpy(np.stack([pad(np.ones(len(s["actions"]))) for s in sets]))
    t = {k: torch.from_numpy(v) for k, v in shared.items()}
    c = adapt_context(
        t["w0"], t["b0"], t["basis"], t["bias_basis"], stacked["phi"], stacked["actions"], stacked["rewards"],
        stacked["phi_next"], stacked["done"], rule, mask,
    )  # fmt: skip
    for i, r in enumerate(ref):
        torch.testing.assert_close(c[i], r, rtol=1e-10, atol=1e-12)


def _loss_of(
    qnet: QNetwork, target: QNetwork, params: dict[str, torch.Tensor], first_order: bool
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)

    def b(n: int) -> Batch:
        return Batch(
            obs=torch.randn(2, n, 3, generator=gen, dtype=torch.float64),
            actions=torch.randint(0, 3, (2, n), generator=gen),
            rewards=torch.randn(2, n, generator=gen, dtype=torch.float64),
            next_obs=torch.randn(2, n, 3, generator=gen, dtype=torch.float64),
            terminated=(torch.rand(2, n, generator=gen) < 0.2).double(),
        )

    support, query = b(6), b(8)
    rule = ContextHeadRule(steps=2, lr=0.5, gamma=0.9, huber_delta=1.0, context_dim=2)
    loss, _ = meta_td_loss(qnet, target, support, query, rule, first_order=first_order, params=params)
    return loss


def test_meta_gradient_reaches_the_basis_and_matches_finite_differences() -> None:
    torch.manual_seed(1)
    qnet = QNetwork(3, 3, (5,), head_context_dim=2).double()
    target = QNetwork(3, 3, (5,), head_context_dim=2).double().requires_grad_(False)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in qnet.named_parameters()}
    loss = _loss_of(qnet, target, params, first_order=False)
    grads = torch.autograd.grad(loss, list(params.values()))
    g = dict(zip(params, grads, strict=True))
    assert float(g["head_basis"].abs().max()) > 1e-6 and float(g["head_bias_basis"].abs().max()) > 1e-6
    eps = 1e-6
    for name, idx in (("head_basis", (1, 2, 3)), ("head_bias_basis", (0, 1)), ("head.weight", (0, 4))):
        plus = {k: v.detach().clone() for k, v in params.items()}
        minus = {k: v.detach().clone() for k, v in params.items()}
        plus[name][idx] += eps
        minus[name][idx] -= eps
        fd = (float(_loss_of(qnet, target, plus, False)) - float(_loss_of(qnet, target, minus, False))) / (
            2 * eps
        )
        assert abs(fd - float(g[name][idx])) < 1e-6 * max(1.0, abs(fd)), (name, fd, float(g[name][idx]))
    fo = _loss_of(qnet, target, params, first_order=True)
    fo_grads = dict(zip(params, torch.autograd.grad(fo, list(params.values())), strict=True))
    assert float(fo_grads["head_basis"].abs().max()) > 1e-6  # FO-CAVIA still trains the basis via W(c_K)
    assert float(fo.detach()) == pytest.approx(float(loss.detach()), rel=1e-12)  # same forward value


def test_context_rule_validates_and_refuses_a_mismatched_basis() -> None:
    with pytest.raises(ValueError, match="context_dim"):
        ContextHeadRule(context_dim=0)
    with pytest.raises(ValueError, match="lr"):
        ContextHeadRule(lr=float("nan"))
    s = {k: torch.from_numpy(v) for k, v in _random_set(np.random.default_rng(0)).items()}
    with pytest.raises(ValueError, match="context_dim is 2"):
        adapt_context(
            s["w0"], s["b0"], s["basis"], s["bias_basis"], s["phi"], s["actions"], s["rewards"], s["phi_next"],
            s["done"], ContextHeadRule(context_dim=2),
        )  # fmt: skip
    with pytest.raises(ValueError, match="head_context_dim"):
        adapt_with_rule(
            ContextHeadRule(context_dim=3), s["w0"], s["b0"], s["phi"], s["actions"], s["rewards"], s["phi_next"],
            s["done"],
        )  # fmt: skip
    empty = adapt_context(
        s["w0"], s["b0"], s["basis"], s["bias_basis"], s["phi"][:0], s["actions"][:0], s["rewards"][:0],
        s["phi_next"][:0], s["done"][:0], ContextHeadRule(context_dim=3),
    )  # fmt: skip
    assert empty.tolist() == [0.0, 0.0, 0.0]


def test_qnetwork_basis_leaves_forward_and_default_spec_unchanged() -> None:
    torch.manual_seed(0)
    plain = QNetwork(3, 4, (8,))
    torch.manual_seed(0)
    ctx = QNetwork(3, 4, (8,), head_context_dim=2)
    assert "head_context_dim" not in plain.spec() and ctx.spec()["head_context_dim"] == 2
    assert QNetwork(**ctx.spec()).head_basis.shape == (2, 4, 8)
    x = torch.randn(5, 3)
    assert torch.equal(plain(x), ctx(x))  # same init stream for trunk and head; forward is c = 0
    assert set(ctx.state_dict()) - set(plain.state_dict()) == {"head_basis", "head_bias_basis"}


def test_context_rule_training_resumes_bitwise_and_evaluates_from_its_run(tmp_path: Path) -> None:
    """MetaDQN with inner_rule='context_td' on the toy family: kill + resume equals a straight run,
    same seed gives the same weights, and the loaded run adapts with the context rule."""
    from test_resume import RESUME, Stop, _assert_same_state, _stop_at

    cfg = toy_config("meta-dqn", **RESUME, support_bank_size=2, inner_rule="context_td", context_dim=3)
    straight = toy_trainer(cfg)
    straight.train(tmp_path / "straight")
    interrupted = toy_trainer(cfg)
    with pytest.raises(Stop):
        interrupted.train(tmp_path / "resumed", callback=_stop_at(5))
    resumed = toy_trainer(cfg)
    resumed.train(tmp_path / "resumed")
    _assert_same_state(straight, resumed)
    assert "head_basis" in straight.state_dict()["models"]["qnet"]

    run = load_run(tmp_path / "straight")
    assert isinstance(run.adaptation, ContextHeadRule) and run.adaptation.context_dim == 3
    assert run.info["adaptation"]["rule"] == "head_context_td"
    adapter = MetaDQN.eval_adapters(run)["meta-dqn"](0)
    assert isinstance(adapter, HeadAdapter) and adapter.basis is not None
    adapter.begin(None, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(6):
        o = rng.normal(size=3).astype(np.float32)
        adapter.observe(o, int(rng.integers(3)), float(rng.normal()), o + 0.1, False)
    w0 = adapter.w.copy()
    adapter.adapt()
    assert (np.abs(adapter.w - w0).max(axis=1) > 0).all()  # every action's row moved
