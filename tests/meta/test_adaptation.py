"""The head adaptation rule (the device's inner loop) and MetaDQN's meta-gradient."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robot_meta.meta import Batch, HeadAdaptation, adapt_head, head_td_step, head_td_targets, meta_td_loss
from robot_meta.policies import QNetwork


def _numpy_rule(w0, b0, phi, actions, rewards, phi_next, done, steps, lr, gamma, kappa):  # type: ignore[no-untyped-def]
    """The documented rule, written out with explicit loops (what the numpy runtime implements)."""
    n = len(actions)
    y = np.array([rewards[i] + gamma * (1.0 - done[i]) * np.max(w0 @ phi_next[i] + b0) for i in range(n)])
    w, b = w0.copy(), b0.copy()
    for _ in range(steps):
        grad_w, grad_b = np.zeros_like(w), np.zeros_like(b)
        for i in range(n):
            delta = (w @ phi[i] + b)[actions[i]] - y[i]
            g = min(max(delta, -kappa), kappa)
            grad_w[actions[i]] += g * phi[i] / n
            grad_b[actions[i]] += g / n
        w, b = w - lr * grad_w, b - lr * grad_b
    return w, b


def _support(rng: np.random.Generator, n: int, h: int, a: int) -> dict[str, np.ndarray]:
    return {
        "phi": rng.normal(size=(n, h)),
        "actions": rng.integers(0, a, size=n),
        "rewards": rng.normal(scale=2.0, size=n),  # large enough that some TD errors exceed kappa
        "phi_next": rng.normal(size=(n, h)),
        "done": (rng.random(n) < 0.3).astype(np.float64),
    }


@pytest.mark.parametrize("steps", [1, 3])
def test_adapt_head_equals_hand_computed_td_steps(steps: int) -> None:
    rng = np.random.default_rng(0)
    h, a, n = 6, 4, 9
    w0, b0 = rng.normal(size=(a, h)), rng.normal(size=a)
    s = _support(rng, n, h, a)
    rule = HeadAdaptation(steps=steps, lr=0.3, gamma=0.9, huber_delta=0.7)
    expected_w, expected_b = _numpy_rule(w0, b0, **s, steps=steps, lr=0.3, gamma=0.9, kappa=0.7)
    t = {k: torch.from_numpy(v) for k, v in s.items()}
    w, b = adapt_head(
        torch.from_numpy(w0),
        torch.from_numpy(b0),
        t["phi"],
        t["actions"],
        t["rewards"],
        t["phi_next"],
        t["done"],
        rule,
    )
    np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.numpy(), expected_b, rtol=1e-12, atol=1e-12)
    assert not np.allclose(expected_w, w0)  # the step did something
    # clipping was exercised: some TD errors of the first step exceed kappa
    y = s["rewards"] + 0.9 * (1 - s["done"]) * (s["phi_next"] @ w0.T + b0).max(1)
    deltas = (s["phi"] @ w0.T + b0)[np.arange(n), s["actions"]] - y
    assert (np.abs(deltas) > 0.7).any() and (np.abs(deltas) < 0.7).any()


def test_one_step_is_sgd_on_the_mean_huber_td_loss() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    phi, actions, y = (
        torch.randn(8, 5, dtype=torch.float64),
        torch.randint(0, 3, (8,)),
        torch.randn(8, dtype=torch.float64),
    )
    loss = F.huber_loss((phi @ w.T + b).gather(1, actions[:, None]).squeeze(1), y, delta=0.5)
    gw, gb = torch.autograd.grad(loss, (w, b))
    w1, b1 = head_td_step(w.detach(), b.detach(), phi, actions, y, lr=0.2, huber_delta=0.5)
    torch.testing.assert_close(w1, w.detach() - 0.2 * gw)
    torch.testing.assert_close(b1, b.detach() - 0.2 * gb)


def test_batched_and_masked_adaptation_equal_per_task_rule() -> None:
    rng = np.random.default_rng(1)
    h, a = 4, 3
    rule = HeadAdaptation(steps=4, lr=0.2, gamma=0.95, huber_delta=1.0)
    w0, b0 = torch.from_numpy(rng.normal(size=(a, h))), torch.from_numpy(rng.normal(size=a))
    sizes = [5, 2, 7]
    sets = [_support(rng, n, h, a) for n in sizes]
    padded = {k: np.zeros((3, 7, *sets[0][k].shape[1:]), sets[0][k].dtype) for k in sets[0]}
    for k in padded:
        padded[k][...] = (
            rng.normal(size=padded[k].shape) if padded[k].dtype == np.float64 else 0
        )  # garbage padding
    mask = np.zeros((3, 7))
    for i, (n, st) in enumerate(zip(sizes, sets, strict=True)):
        for k in st:
            padded[k][i, :n] = st[k]
        mask[i, :n] = 1
    t = {k: torch.from_numpy(v) for k, v in padded.items()}
    w, b = adapt_head(
        w0, b0, t["phi"], t["actions"], t["rewards"], t["phi_next"], t["done"], rule, torch.from_numpy(mask)
    )
    assert w.shape == (3, a, h) and b.shape == (3, a)
    for i, st in enumerate(sets):
        ew, eb = _numpy_rule(w0.numpy(), b0.numpy(), **st, steps=4, lr=0.2, gamma=0.95, kappa=1.0)
        np.testing.assert_allclose(w[i].numpy(), ew, atol=1e-12)
        np.testing.assert_allclose(b[i].numpy(), eb, atol=1e-12)
    # an empty support leaves the head unchanged
    w_e, b_e = adapt_head(
        w0,
        b0,
        t["phi"][:, :0],
        t["actions"][:, :0],
        t["rewards"][:, :0],
        t["phi_next"][:, :0],
        t["done"][:, :0],
        rule,
    )
    assert w_e is w0 and b_e is b0


def test_targets_use_the_starting_head_and_termination() -> None:
    w, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0.5, -1.0])
    nxt = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    y = head_td_targets(w, b, nxt, torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), gamma=0.5)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 * max(1.5, 1.0), 2.0]))


def _tiny_problem(seed: int = 0) -> tuple[QNetwork, QNetwork, Batch, Batch, torch.Tensor]:
    torch.manual_seed(seed)
    qnet = QNetwork(obs_dim=3, n_actions=3, hidden=(5,)).double()
    qnet.obs_norm.update(torch.randn(40, 3, dtype=torch.float64) * 2 + 1)
    target = copy.deepcopy(qnet)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(0.1 * torch.randn_like(p))

    def batch(b: int, n: int) -> Batch:
        return Batch(
            torch.randn(b, n, 3, dtype=torch.float64),
            torch.randint(0, 3, (b, n)),
            torch.randn(b, n, dtype=torch.float64),
            torch.randn(b, n, 3, dtype=torch.float64),
            (torch.rand(b, n) < 0.2).double(),
        )

    mask = torch.ones(2, 6, dtype=torch.float64)
    mask[1, 4:] = 0
    return qnet, target, batch(2, 6), batch(2, 7), mask


def test_second_order_meta_gradient_matches_finite_differences() -> None:
    qnet, target, support, query, mask = _tiny_problem()
    rule = HeadAdaptation(steps=3, lr=0.5, gamma=0.9, huber_delta=1.0)
    names = [n for n, _ in qnet.named_parameters()]
    base = {n: p.detach().clone() for n, p in qnet.named_parameters()}

    def loss_of(params: dict[str, torch.Tensor]) -> torch.Tensor:
        loss, _ = meta_td_loss(
            qnet, target, support, query, rule, support_mask=mask, zero_shot_weight=0.3, params=params
        )
        return loss

    leaves = {n: v.clone().requires_grad_(True) for n, v in base.items()}
    grads = torch.autograd.grad(loss_of(leaves), [leaves[n] for n in names])
    eps = 1e-6
    for name, grad in zip(names, grads, strict=True):
        fd = torch.zeros_like(grad)
        for idx in np.ndindex(*grad.shape):
            plus = {n: v.clone() for n, v in base.items()}
            minus = {n: v.clone() for n, v in base.items()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd[idx] = (loss_of(plus) - loss_of(minus)) / (2 * eps)
        torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7, msg=f"meta-gradient of {name}")
    assert all(float(g.abs().max()) > 0 for g in grads)


def test_first_order_gradient_drops_the_inner_loop_jacobian() -> None:
    qnet, target, support, query, mask = _tiny_problem(seed=1)
    rule = HeadAdaptation(steps=3, lr=0.5, gamma=0.9, huber_delta=1.0)

    def head_grad(first_order: bool) -> torch.Tensor:
        qnet.zero_grad()
        loss, _ = meta_td_loss(qnet, target, support, query, rule, support_mask=mask, first_order=first_order)
        loss.backward()
        assert qnet.head.weight.grad is not None
        return qnet.head.weight.grad.clone()

    # FOMAML: d outer / d W_0 is d outer / d W_K (evaluated at the adapted head)
    with torch.no_grad():
        fs, fs_next = qnet.features(support.obs), qnet.features(support.next_obs)
        wk, bk = adapt_head(
            qnet.head.weight,
            qnet.head.bias,
            fs,
            support.actions,
            support.rewards,
            fs_next,
            support.terminated,
            rule,
            mask,
        )
    wk = wk.clone().requires_grad_(True)
    from robot_meta.meta import double_dqn_targets, td_loss

    with torch.no_grad():
        tfs, tfs_n = target.features(support.obs), target.features(support.next_obs)
        twk, tbk = adapt_head(
            target.head.weight,
            target.head.bias,
            tfs,
            support.actions,
            support.rewards,
            tfs_n,
            support.terminated,
            rule,
            mask,
        )
        y = double_dqn_targets(
            query.rewards,
            query.terminated,
            qnet.features(query.next_obs) @ wk.detach().transpose(-1, -2) + bk.unsqueeze(-2),
            target.features(query.next_obs) @ twk.transpose(-1, -2) + tbk.unsqueeze(-2),
            rule.gamma,
        )
    outer = td_loss(
        qnet.features(query.obs).detach() @ wk.transpose(-1, -2) + bk.unsqueeze(-2),
        query.actions,
        y,
        rule.huber_delta,
    )
    (expected,) = torch.autograd.grad(outer, wk)
    torch.testing.assert_close(head_grad(True), expected.sum(0))
    assert not torch.allclose(head_grad(False), head_grad(True))


@pytest.mark.parametrize(
    ("field", "value"), [("steps", 0), ("lr", -0.1), ("gamma", 1.5), ("huber_delta", 0.0)]
)
def test_head_adaptation_validates(field: str, value: float) -> None:
    kwargs: dict[str, float] = {field: value}
    with pytest.raises(ValueError, match=f"HeadRule.{field}"):
        HeadAdaptation(**kwargs)  # type: ignore[arg-type]


# -- n-step targets ------------------------------------------------------------------------------------


def _episodes_support(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three episode pieces in order: 5 steps ending in termination, 4 truncated, 3 cut by the buffer end."""
    d = 3
    obs_rows, next_rows, done = [], [], []
    for length, terminal in ((5, True), (4, False), (3, False)):
        o = rng.normal(size=(length + 1, d))
        obs_rows.append(o[:-1])
        next_rows.append(o[1:])
        dd = np.zeros(length)
        dd[-1] = 1.0 if terminal else 0.0
        done.append(dd)
    obs, nxt, dn = np.concatenate(obs_rows), np.concatenate(next_rows), np.concatenate(done)
    n = len(dn)
    return {
        "obs": obs,
        "next_obs": nxt,
        "done": dn,
        "rewards": rng.normal(size=n),
        "phi_next": rng.normal(size=(n, 6)),
    }


def _hand_nstep(
    s: dict[str, np.ndarray], w0: np.ndarray, b0: np.ndarray, gamma: float, n_step: int
) -> np.ndarray:
    """The documented n-step targets, with explicit loops over each transition's unbroken piece."""
    n = len(s["rewards"])
    out = np.zeros(n)
    for i in range(n):
        total, k = 0.0, i
        for j in range(n_step):
            k = i + j
            total += gamma**j * s["rewards"][k]
            continues = (
                k + 1 < n and s["done"][k] == 0.0 and np.array_equal(s["next_obs"][k], s["obs"][k + 1])
            )
            if j == n_step - 1 or not continues:
                break
        m = k - i + 1
        out[i] = total + gamma**m * (1.0 - s["done"][k]) * np.max(w0 @ s["phi_next"][k] + b0)
    return out


@pytest.mark.parametrize("n_step", [1, 2, 3, 50])
def test_nstep_targets_equal_the_documented_sums_over_unbroken_episode_pieces(n_step: int) -> None:
    from robot_meta.meta.adaptation import head_nstep_targets, successor_flags

    rng = np.random.default_rng(n_step)
    s = _episodes_support(rng)
    w0, b0 = rng.normal(size=(4, 6)), rng.normal(size=4)
    t = {k: torch.from_numpy(v) for k, v in s.items()}
    succ = successor_flags(t["obs"], t["next_obs"])
    assert succ.tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0]
    y = head_nstep_targets(
        torch.from_numpy(w0), torch.from_numpy(b0), t["phi_next"], t["rewards"], t["done"], succ, 0.9, n_step
    )
    np.testing.assert_allclose(y.numpy(), _hand_nstep(s, w0, b0, 0.9, n_step), rtol=1e-12, atol=1e-12)
    if n_step == 1:
        y1 = head_td_targets(
            torch.from_numpy(w0), torch.from_numpy(b0), t["phi_next"], t["rewards"], t["done"], 0.9
        )
        assert torch.equal(y, y1)


def test_nstep_rule_needs_successor_flags_and_respects_padding() -> None:
    from robot_meta.meta.adaptation import successor_flags

    rng = np.random.default_rng(3)
    s = _episodes_support(rng)
    t = {k: torch.from_numpy(v).float() for k, v in s.items()}
    phi = torch.from_numpy(rng.normal(size=(len(s["rewards"]), 6))).float()
    actions = torch.from_numpy(rng.integers(0, 4, size=len(s["rewards"])))
    w0, b0 = torch.randn(4, 6), torch.randn(4)
    rule = HeadAdaptation(steps=3, lr=0.2, n_step=10)
    with pytest.raises(ValueError, match="successor"):
        adapt_head(w0, b0, phi, actions, t["rewards"], t["phi_next"], t["done"], rule)
    # The real transitions padded with junk rows (mask 0) adapt exactly like the unpadded set.
    n, pad = len(s["rewards"]), 5

    def padded(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.randn(pad, *x.shape[1:]) if x.is_floating_point() else x[:pad]])

    mask = torch.cat([torch.ones(n), torch.zeros(pad)])
    p_obs, p_next = padded(t["obs"]), padded(t["next_obs"])
    p_next[n - 1] = p_obs[n]  # a junk row that looks like a continuation must still not be followed
    w_ref, b_ref = adapt_head(
        w0, b0, phi, actions, t["rewards"], t["phi_next"], t["done"], rule,
        successor=successor_flags(t["obs"], t["next_obs"]),
    )  # fmt: skip
    w_pad, b_pad = adapt_head(
        w0, b0, padded(phi), padded(actions), padded(t["rewards"]), padded(t["phi_next"]), padded(t["done"]),
        rule, mask, successor_flags(p_obs, p_next, mask),
    )  # fmt: skip
    torch.testing.assert_close(w_pad, w_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b_pad, b_ref, rtol=1e-5, atol=1e-6)


def test_nstep_adaptation_carries_a_shots_outcome_back_to_its_first_action() -> None:
    """One-step targets leave the first action's value where the starting head put it; n-step ones move it
    to the shot's discounted return (what lets one shot re-rank a decisive first action)."""
    from robot_meta.meta.adaptation import successor_flags

    h, a, length = 4, 3, 10
    obs = torch.arange(length + 1, dtype=torch.float32).unsqueeze(-1).repeat(1, 2)
    phi = torch.zeros(length, h)
    phi[0, 0] = 1.0  # only the first state has a feature: the head cannot bootstrap anything
    rewards = torch.zeros(length)
    rewards[-1] = -5.0  # the shot's outcome arrives at its end
    done = torch.zeros(length)
    done[-1] = 1.0
    actions = torch.zeros(length, dtype=torch.long)
    w0, b0 = torch.zeros(a, h), torch.zeros(a)
    succ = successor_flags(obs[:-1], obs[1:])
    q_first = {}
    for n_step in (1, length):
        rule = HeadAdaptation(steps=50, lr=1.0, gamma=0.9, huber_delta=100.0, n_step=n_step)
        w, b = adapt_head(w0, b0, phi, actions, rewards, phi.roll(-1, 0), done, rule, successor=succ)
        q_first[n_step] = float(w[0] @ phi[0] + b[0])
    assert abs(q_first[1]) < 0.05
    assert q_first[length] < -0.5 * 5.0 * 0.9 ** (length - 1)
