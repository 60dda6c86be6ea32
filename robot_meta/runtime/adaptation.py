"""The head adaptation rule in numpy (float32), the same formula as `robot_meta.meta.adaptation`.

`td_adapt` is `robot_meta.meta.adaptation.adapt_head` for one task: targets fixed from the
starting head, then K full-batch SGD steps on the clipped-Huber TD gradient with step alpha/N
(only the taken action's row gets a gradient). Every operation is done in float32 in the same
order as the torch code, so both agree to float32 rounding (tests/runtime checks ~1e-6).

`ridge_adapt` is the alternative closed-form rule: per action, a ridge regression of the same
fixed targets on ``[phi, 1]`` pulled towards the starting head.

`context_td_adapt` is `robot_meta.meta.adaptation.adapt_context_head` for one task (the context
head rule, `ContextHeadRule`): the same fixed targets, then K gradient steps on a context vector c
that enters the head bilinearly, ``W(c) = W_0 + sum_j c_j B_j``, ``b(c) = b_0 + L c``. Since
``Q_c(s_i)[a_i] = Q_0(s_i)[a_i] + G_i . c`` with ``G_i[j] = (B_j phi_i)[a_i] + L[j, a_i]``, each step
is a (D,)-vector update in closed form; every action's row moves with c. It refuses malformed input
(`ValueError`: wrong shapes, non-finite values, an action outside the head) before doing anything.

All are guarded: every step is checked (finite, inside the trust region around the starting
head) and a bad step is rolled back, so the head returned is always usable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "AdaptMethod",
    "FewShotAdapter",
    "HeadStep",
    "context_head",
    "context_td_adapt",
    "huber_loss",
    "ridge_adapt",
    "successor_flags",
    "td_adapt",
    "td_targets",
]

F32 = np.float32

AdaptMethod = Literal["td", "ridge"]


@dataclass(frozen=True)
class HeadStep:
    """Outcome of one guarded adaptation: the head to use and what happened."""

    weight: np.ndarray
    bias: np.ndarray
    steps: int
    """Steps applied (rolled-back steps excluded)."""
    loss_before: float
    loss_after: float
    rolled_back: bool
    reason: str
    """Why a step was rolled back ('' if none)."""
    context: np.ndarray | None = None
    """The adapted context vector c (`context_td_adapt`; None for the head rules)."""


def successor_flags(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """``(N,)`` float32: 1 where transition ``i + 1`` continues transition ``i`` (``next_obs[i] == obs[i + 1]`` exactly)."""
    n = len(obs)
    out = np.zeros(n, F32)
    if n > 1:
        out[:-1] = np.all(next_obs[:-1] == obs[1:], axis=-1)
    return out


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    if k == 0:
        return x
    out = np.zeros_like(x)
    out[: len(x) - k] = x[k:]
    return out


def td_targets(
    weight: np.ndarray,
    bias: np.ndarray,
    next_features: np.ndarray,
    rewards: np.ndarray,
    terminated: np.ndarray,
    gamma: float,
    n_step: int = 1,
    successor: np.ndarray | None = None,
) -> np.ndarray:
    """Fixed TD targets (float32, ``(N,)``): ``r + gamma (1 - d) max_a (W phi' + b)[a]`` for n_step = 1,
    else the n-step sums of `robot_meta.meta.adaptation.head_nstep_targets` (`successor` required)."""
    boot = (next_features @ weight.T + bias[None, :]).max(axis=-1)
    if n_step == 1:
        return rewards + F32(gamma) * (F32(1.0) - terminated) * boot
    if successor is None:
        raise ValueError(
            f"n_step={n_step} needs successor flags: pass successor=successor_flags(obs, next_obs)"
        )
    n = len(rewards)
    links = successor.astype(F32) * (F32(1.0) - terminated)
    alive = np.ones_like(rewards)
    length = np.ones_like(rewards)
    targets = rewards.copy()
    for j in range(1, min(n_step, n)):
        alive = alive * _shift(links, j - 1)
        targets = targets + alive * F32(gamma**j) * _shift(rewards, j)
        length = length + alive
    end = (np.arange(n) + length - 1).astype(np.int64)
    return (
        targets
        + np.power(np.full_like(length, F32(gamma)), length) * (F32(1.0) - terminated[end]) * boot[end]
    )


def huber_loss(
    weight: np.ndarray,
    bias: np.ndarray,
    features: np.ndarray,
    actions: np.ndarray,
    targets: np.ndarray,
    huber_delta: float,
) -> float:
    """Mean Huber TD loss of the head on a set (``head_td_loss`` of the torch code)."""
    if len(actions) == 0:
        return 0.0
    q_sa = (features @ weight.T + bias[None, :])[np.arange(len(actions)), actions]
    diff = q_sa - targets
    absd = np.abs(diff)
    k = F32(huber_delta)
    huber = np.where(absd <= k, F32(0.5) * diff * diff, k * (absd - F32(0.5) * k))
    return float(huber.mean())


def _huber_mean(delta: np.ndarray, k: np.float32) -> float:
    absd = np.abs(delta)
    return float(np.where(absd <= k, F32(0.5) * delta * delta, k * (absd - F32(0.5) * k)).mean())


def _inside(
    weight: np.ndarray, bias: np.ndarray, w0: np.ndarray, b0: np.ndarray, radius: float
) -> tuple[bool, str]:
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        return False, "the step made the head non-finite"
    dist = float(
        np.sqrt(np.sum((weight - w0) ** 2, dtype=np.float64) + np.sum((bias - b0) ** 2, dtype=np.float64))
    )
    if dist > radius:
        return (
            False,
            f"the step moved the head {dist:.3g} from its start, beyond the trust region {radius:.3g}",
        )
    return True, ""


def _as_set(
    features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_features: np.ndarray,
    terminated: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.ascontiguousarray(features, dtype=F32),
        np.asarray(actions, dtype=np.int64),
        np.asarray(rewards, dtype=F32),
        np.ascontiguousarray(next_features, dtype=F32),
        np.asarray(terminated, dtype=F32),
    )


def td_adapt(
    weight: np.ndarray,
    bias: np.ndarray,
    features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_features: np.ndarray,
    terminated: np.ndarray,
    *,
    steps: int,
    lr: float,
    gamma: float,
    huber_delta: float,
    n_step: int = 1,
    successor: np.ndarray | None = None,
    trust_radius: float = float("inf"),
) -> HeadStep:
    """`adapt_head` in numpy, guarded: a step that is non-finite or leaves the trust region is undone.

    Shapes: weight ``(A, H)``, bias ``(A,)``, features/next_features ``(N, H)``, actions ``(N,)``
    int, rewards/terminated ``(N,)``. The trust region is the Euclidean ball of radius
    `trust_radius` around the starting ``(weight, bias)``. On a rolled-back step the loop stops and
    the last good head is returned.
    """
    w0 = np.asarray(weight, dtype=F32)
    b0 = np.asarray(bias, dtype=F32)
    phi, a, r, phi_next, d = _as_set(features, actions, rewards, next_features, terminated)
    n = phi.shape[0]
    if n == 0 or steps <= 0:
        return HeadStep(w0.copy(), b0.copy(), 0, 0.0, 0.0, False, "")
    y = td_targets(w0, b0, phi_next, r, d, gamma, n_step, successor)
    # The head as one (A, H+1) matrix [W | b] against features [phi | 1]: the same products as
    # `_td_step` (the bias column's gradient is the sum of g), in half the numpy calls.
    n_act, h = w0.shape
    x = np.empty((n, h + 1), F32)
    x[:, :h] = phi
    x[:, h] = F32(1.0)
    theta0 = np.empty((n_act, h + 1), F32)
    theta0[:, :h] = w0
    theta0[:, h] = b0
    rows = np.arange(n)
    one_hot = np.zeros((n, n_act), dtype=F32)
    one_hot[rows, a] = F32(1.0)
    scale = F32(1.0 / n)  # torch.full_like(targets, 1.0 / N)
    k = F32(huber_delta)
    alpha = F32(lr)
    radius2 = trust_radius * trust_radius
    theta = theta0
    delta = (x @ theta.T)[rows, a] - y
    loss_before = _huber_mean(delta, k)
    done, rolled_back, reason = 0, False, ""
    for _ in range(steps):
        g = np.minimum(np.maximum(delta, -k), k) * scale  # clamp, without np.clip's Python wrapper
        theta_new = theta - alpha * ((one_hot * g[:, None]).T @ x)
        diff = (theta_new - theta0).ravel()
        dist2 = float(diff @ diff)
        if not math.isfinite(dist2):
            rolled_back, reason = True, "the step made the head non-finite"
            break
        if dist2 > radius2:
            rolled_back = True
            reason = (
                f"the step moved the head {math.sqrt(dist2):.3g} from its start, "
                f"beyond the trust region {trust_radius:.3g}"
            )
            break
        theta = theta_new
        done += 1
        delta = (x @ theta.T)[rows, a] - y
    loss_after = _huber_mean(delta, k)
    w, b = theta[:, :h], theta[:, h]
    return HeadStep(
        np.array(w, dtype=F32), np.array(b, dtype=F32), done, loss_before, loss_after, rolled_back, reason
    )


def ridge_adapt(
    weight: np.ndarray,
    bias: np.ndarray,
    features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_features: np.ndarray,
    terminated: np.ndarray,
    *,
    gamma: float,
    huber_delta: float,
    ridge_lambda: float,
    n_step: int = 1,
    successor: np.ndarray | None = None,
    trust_radius: float = float("inf"),
) -> HeadStep:
    """Closed-form alternative: per action ``a``, solve for ``theta_a = (w_a, b_a)``

        min_theta sum_{i: a_i = a} (theta . [phi_i, 1] - y_i)^2 + lambda ||theta - theta0_a||^2

    with the fixed targets ``y`` of the TD rule (float64 solve, float32 result). Actions without
    transitions keep their starting row. The solve counts as one step; it is rolled back (the
    starting head is kept) if it is non-finite or leaves the trust region.
    """
    w0 = np.asarray(weight, dtype=F32)
    b0 = np.asarray(bias, dtype=F32)
    phi, a, r, phi_next, d = _as_set(features, actions, rewards, next_features, terminated)
    n = phi.shape[0]
    if n == 0:
        return HeadStep(w0.copy(), b0.copy(), 0, 0.0, 0.0, False, "")
    y = td_targets(w0, b0, phi_next, r, d, gamma, n_step, successor)
    loss_before = huber_loss(w0, b0, phi, a, y, huber_delta)
    h = w0.shape[1]
    x = np.concatenate([phi, np.ones((n, 1), dtype=F32)], axis=1).astype(np.float64)
    theta0 = np.concatenate([w0, b0[:, None]], axis=1).astype(np.float64)  # (A, H+1)
    # Per-action normal equations (H+1 square), solved together for the actions that occur;
    # an action without transitions keeps its starting row.
    present = np.unique(a)
    y64 = y.astype(np.float64)
    gram = np.empty((len(present), h + 1, h + 1))
    rhs = np.empty((len(present), h + 1))
    eye = ridge_lambda * np.eye(h + 1)
    for k, act in enumerate(present):
        xa = x[a == act]
        gram[k] = xa.T @ xa + eye
        rhs[k] = xa.T @ y64[a == act] + ridge_lambda * theta0[act]
    theta = theta0.copy()
    theta[present] = np.linalg.solve(gram, rhs[..., None])[..., 0]
    w_new, b_new = theta[:, :h].astype(F32), theta[:, h].astype(F32)
    ok, why = _inside(w_new, b_new, w0, b0, trust_radius)
    if not ok:
        return HeadStep(w0.copy(), b0.copy(), 0, loss_before, loss_before, True, why)
    loss_after = huber_loss(w_new, b_new, phi, a, y, huber_delta)
    return HeadStep(w_new, b_new, 1, loss_before, loss_after, False, "")


def context_head(
    weight: np.ndarray, bias: np.ndarray, basis: np.ndarray, bias_basis: np.ndarray, context: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(W_0 + sum_j c_j B_j, b_0 + sum_j c_j L_j)`` in float32 (basis ``(D, A, H)``, bias_basis ``(D, A)``)."""
    c = np.asarray(context, F32)
    w = np.asarray(weight, F32) + (c[:, None, None] * basis).sum(0, dtype=F32)
    b = np.asarray(bias, F32) + (c[:, None] * bias_basis).sum(0, dtype=F32)
    return w.astype(F32), b.astype(F32)


def _check_context_set(
    w0: np.ndarray,
    b0: np.ndarray,
    basis: np.ndarray,
    bias_basis: np.ndarray,
    phi: np.ndarray,
    a: np.ndarray,
    r: np.ndarray,
    phi_next: np.ndarray,
    d: np.ndarray,
) -> None:
    """ValueError naming what is wrong with the inputs of `context_td_adapt` (nothing is computed from them)."""
    if w0.ndim != 2 or b0.shape != (w0.shape[0],):
        raise ValueError(f"head shapes {w0.shape}, {b0.shape}: expected weight (A, H) and bias (A,)")
    n_act, h = w0.shape
    if basis.ndim != 3 or basis.shape[1:] != (n_act, h) or bias_basis.shape != basis.shape[:2]:
        raise ValueError(
            f"context basis shapes {basis.shape}, {bias_basis.shape}: expected (D, {n_act}, {h}) and (D, {n_act})"
        )
    n = len(a)
    if a.ndim != 1 or phi.shape != (n, h) or phi_next.shape != (n, h) or r.shape != (n,) or d.shape != (n,):
        raise ValueError(
            f"support shapes features {phi.shape}, actions {a.shape}, rewards {r.shape}, next_features "
            f"{phi_next.shape}, terminated {d.shape}: expected (N, {h}), (N,), (N,), (N, {h}), (N,)"
        )
    if n and (int(a.min()) < 0 or int(a.max()) >= n_act):
        raise ValueError(f"support actions must be in [0, {n_act}), got [{int(a.min())}, {int(a.max())}]")
    for name, x in (("head", w0), ("head bias", b0), ("basis", basis), ("bias basis", bias_basis),
                    ("features", phi), ("rewards", r), ("next_features", phi_next), ("terminated", d)):  # fmt: skip
        if not np.isfinite(x).all():
            raise ValueError(f"refusing to adapt: {name} has non-finite values (NaN/inf)")


def context_td_adapt(
    weight: np.ndarray,
    bias: np.ndarray,
    basis: np.ndarray,
    bias_basis: np.ndarray,
    features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_features: np.ndarray,
    terminated: np.ndarray,
    *,
    steps: int,
    lr: float,
    gamma: float,
    huber_delta: float,
    n_step: int = 1,
    successor: np.ndarray | None = None,
    trust_radius: float = float("inf"),
) -> HeadStep:
    """`adapt_context_head` in numpy, guarded like `td_adapt`; ``HeadStep.context`` is the adapted c.

    Shapes: weight ``(A, H)``, bias ``(A,)``, basis ``(D, A, H)``, bias_basis ``(D, A)``,
    features/next_features ``(N, H)``, actions ``(N,)`` int, rewards/terminated ``(N,)``. The trust
    region bounds the head's move ``||(W(c) - W_0, b(c) - b_0)||``; a step that is non-finite or leaves
    it is undone and the loop stops. Malformed input raises `ValueError` (module docstring).
    """
    w0 = np.asarray(weight, dtype=F32)
    b0 = np.asarray(bias, dtype=F32)
    bs = np.ascontiguousarray(basis, dtype=F32)
    ls = np.ascontiguousarray(bias_basis, dtype=F32)
    phi, a, r, phi_next, d = _as_set(features, actions, rewards, next_features, terminated)
    _check_context_set(w0, b0, bs, ls, phi, a, r, phi_next, d)
    dim, n_act, h = bs.shape
    n = phi.shape[0]
    c = np.zeros(dim, F32)
    if n == 0 or steps <= 0:
        return HeadStep(w0.copy(), b0.copy(), 0, 0.0, 0.0, False, "", c)
    y = td_targets(w0, b0, phi_next, r, d, gamma, n_step, successor)
    rows = np.arange(n)
    q0 = (phi @ w0.T + b0[None, :])[rows, a]
    # G[i, j] = (B_j phi_i)[a_i] + L[j, a_i]: one (N, D*A) product, then the taken action's column per j.
    proj = (phi @ bs.reshape(dim * n_act, h).T).reshape(n, dim, n_act)
    g_feat = proj[rows, :, a] + ls.T[a]  # (N, D)
    # ||(W(c) - W0, b(c) - b0)||^2 = c^T M c with M the Gram matrix of the flattened [B_j | L_j].
    flat = np.concatenate([bs.reshape(dim, -1), ls], axis=1).astype(np.float64)
    gram = flat @ flat.T
    scale = F32(1.0 / n)
    k = F32(huber_delta)
    alpha = F32(lr)
    radius2 = trust_radius * trust_radius
    delta = q0 - y
    loss_before = _huber_mean(delta, k)
    done, rolled_back, reason = 0, False, ""
    for _ in range(steps):
        g = np.minimum(np.maximum(delta, -k), k) * scale
        c_new = c - alpha * (g[:, None] * g_feat).sum(0, dtype=F32)
        c64 = c_new.astype(np.float64)
        dist2 = float(c64 @ gram @ c64)
        if not (math.isfinite(dist2) and np.isfinite(c_new).all()):
            rolled_back, reason = True, "the step made the head non-finite"
            break
        if dist2 > radius2:
            rolled_back = True
            reason = (
                f"the step moved the head {math.sqrt(dist2):.3g} from its start, "
                f"beyond the trust region {trust_radius:.3g}"
            )
            break
        c = c_new.astype(F32)
        done += 1
        delta = q0 + g_feat @ c - y
    loss_after = _huber_mean(delta, k)
    w, b = context_head(w0, b0, bs, ls, c)
    if not (np.isfinite(w).all() and np.isfinite(b).all()):  # c finite but the head overflowed
        return HeadStep(w0.copy(), b0.copy(), 0, loss_before, loss_before, True,
                        "the step made the head non-finite", np.zeros(dim, F32))  # fmt: skip
    return HeadStep(w, b, done, loss_before, loss_after, rolled_back, reason, c)


@dataclass(frozen=True)
class FewShotAdapter:
    """The device's guarded head update: the manifest's rule plus the method and the trust region.

    ``adapt(W0, b0, phi, a, r, phi', d)`` is `td_adapt` (the meta-training inner loop, K steps),
    `context_td_adapt` (with a context basis: the context head rule) or `ridge_adapt`; the result is a `HeadStep` whose head is always finite and inside the trust region.
    """

    steps: int
    """K: TD steps (ignored by the ridge solve)."""
    lr: float
    """alpha: SGD step size."""
    gamma: float
    """Discount of the fixed targets."""
    huber_delta: float
    """kappa: Huber threshold."""
    n_step: int = 1
    """n of the n-step targets (1 = one-step)."""
    method: AdaptMethod = "td"
    """``td`` (the inner loop) or ``ridge`` (closed form)."""
    ridge_lambda: float = 1.0
    """Pull towards the starting head of the ridge solve."""
    trust_radius: float = float("inf")
    """Largest Euclidean distance of (W, b) from the starting head."""
    basis: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The context head rule's basis B ``(D, A, H)`` (with `bias_basis`): `adapt` then runs `context_td_adapt`."""
    bias_basis: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The context head rule's L ``(D, A)``."""

    def __post_init__(self) -> None:
        if self.method not in ("td", "ridge"):
            raise ValueError(f"FewShotAdapter.method={self.method!r}: choose 'td' or 'ridge'")
        if (self.basis is None) != (self.bias_basis is None):
            raise ValueError(
                "FewShotAdapter needs both basis and bias_basis (the context head rule) or neither"
            )
        if self.basis is not None and self.method != "td":
            raise ValueError(
                "the context head rule adapts c by gradient steps: use method='td' (ridge solves head rows)"
            )
        if self.steps < 1 or self.n_step < 1:
            raise ValueError(
                f"FewShotAdapter needs steps >= 1 and n_step >= 1, got {self.steps}, {self.n_step}"
            )
        if not (self.lr > 0 and self.huber_delta > 0 and self.ridge_lambda > 0 and self.trust_radius > 0):
            raise ValueError("FewShotAdapter lr, huber_delta, ridge_lambda and trust_radius must be > 0")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"FewShotAdapter.gamma={self.gamma} must be in [0, 1]")

    def adapt(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        features: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_features: np.ndarray,
        terminated: np.ndarray,
        successor: np.ndarray | None = None,
    ) -> HeadStep:
        """Adapt the head ``(weight, bias)`` on one support set (`successor` needed when n_step > 1)."""
        if self.basis is not None and self.bias_basis is not None:
            return context_td_adapt(
                weight, bias, self.basis, self.bias_basis, features, actions, rewards, next_features,
                terminated, steps=self.steps, lr=self.lr, gamma=self.gamma, huber_delta=self.huber_delta,
                n_step=self.n_step, successor=successor, trust_radius=self.trust_radius,
            )  # fmt: skip
        if self.method == "ridge":
            return ridge_adapt(
                weight, bias, features, actions, rewards, next_features, terminated,
                gamma=self.gamma, huber_delta=self.huber_delta, ridge_lambda=self.ridge_lambda,
                n_step=self.n_step, successor=successor, trust_radius=self.trust_radius,
            )  # fmt: skip
        return td_adapt(
            weight, bias, features, actions, rewards, next_features, terminated,
            steps=self.steps, lr=self.lr, gamma=self.gamma, huber_delta=self.huber_delta,
            n_step=self.n_step, successor=successor, trust_radius=self.trust_radius,
        )  # fmt: skip
