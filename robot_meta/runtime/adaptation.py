"""The head adaptation rule in numpy (float32), the same formula as `robot_meta.meta.adaptation`.

`td_adapt` is `robot_meta.meta.adaptation.adapt_head` for one task: targets fixed from the
starting head, then K full-batch SGD steps on the clipped-Huber TD gradient with step alpha/N
(only the taken action's row gets a gradient). Every operation is done in float32 in the same
order as the torch code, so both agree to float32 rounding (tests/runtime checks ~1e-6).

`ridge_adapt` is the alternative closed-form rule: per action, a ridge regression of the same
fixed targets on ``[phi, 1]`` pulled towards the starting head.

Both are guarded: every step is checked (finite, inside the trust region around the starting
head) and a bad step is rolled back, so the head returned is always usable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "AdaptMethod",
    "FewShotAdapter",
    "HeadStep",
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


@dataclass(frozen=True)
class FewShotAdapter:
    """The device's guarded head update: the manifest's rule plus the method and the trust region.

    ``adapt(W0, b0, phi, a, r, phi', d)`` is `td_adapt` (the meta-training inner loop, K steps) or
    `ridge_adapt`; the result is a `HeadStep` whose head is always finite and inside the trust region.
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

    def __post_init__(self) -> None:
        if self.method not in ("td", "ridge"):
            raise ValueError(f"FewShotAdapter.method={self.method!r}: choose 'td' or 'ridge'")
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
