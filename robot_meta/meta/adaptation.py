r"""The head adaptation rule: the inner loop of `MetaDQN` and exactly what the device runs in numpy.

Notation. A support set of N transitions :math:`(s_i, a_i, r_i, s'_i, d_i)` (``d_i`` = 1 if the
episode *terminated* at :math:`s'_i`, 0 otherwise; time-limit truncation is not termination).
``f`` is the frozen trunk including observation normalisation (`QNetwork.features`, the
``features`` output of the exported graph): :math:`\phi_i = f(s_i)`, :math:`\phi'_i = f(s'_i)`.
The head is :math:`Q(s) = W f(s) + b` with :math:`W \in R^{A \times H}`, :math:`b \in R^A`.
Hyper-parameters (`HeadRule`, alias `HeadAdaptation`): K = ``steps``, alpha = ``lr``, gamma, kappa = ``huber_delta``.

Starting from the head :math:`(W_0, b_0)` that adaptation begins with (the meta-trained head):

1. Targets, computed ONCE with the starting head and held fixed for all K steps. With n = ``n_step``::

       y_i = sum_{j=0}^{m_i - 1} gamma^j r_{i+j}  +  gamma^{m_i} * (1 - d_{e_i}) * max_a (W_0 phi'_{e_i} + b_0)[a]
       e_i = i + m_i - 1

   where m_i (1 <= m_i <= n) is the length of the unbroken piece of one episode that starts at
   transition i: transition k + 1 *continues* transition k iff both are real (not padding),
   d_k = 0 and ``next_obs_k == obs_{k+1}`` exactly, component by component (`successor_flags`);
   the sum stops before the first transition that does not continue its predecessor and after at
   most n transitions. The support must therefore keep transitions in the order they happened.
   With n = 1 (the default) this is the one-step target::

       y_i = r_i + gamma * (1 - d_i) * max_a (W_0 phi'_i + b_0)[a]

   A larger n carries an episode's outcome back to the action that caused it within one
   adaptation (one-step targets move information one transition per adaptation, i.e. not at all
   from the end of a shot to its first action).

2. For k = 0 .. K-1 (plain full-batch gradient descent on the mean Huber TD loss
   :math:`L = \frac1N \sum_i \mathrm{Huber}_\kappa(Q_k(s_i)[a_i] - y_i)`, whose derivative is
   ``clip(delta, -kappa, kappa)``)::

       delta_i = (W_k phi_i + b_k)[a_i] - y_i
       g_i     = clip(delta_i, -kappa, kappa)
       W_{k+1} = W_k - (alpha / N) * sum_i g_i * onehot(a_i) phi_i^T      # (A, H)
       b_{k+1} = b_k - (alpha / N) * sum_i g_i * onehot(a_i)              # (A,)

   i.e. only the row of the taken action receives a gradient from each transition.

3. The adapted head is :math:`(W_K, b_K)`. N = 0 or K = 0 leaves the head unchanged.

``Huber_kappa(x) = 0.5 x^2`` for ``|x| <= kappa``, else ``kappa (|x| - kappa / 2)`` (PyTorch's
``huber_loss(delta=kappa)``). No momentum, no weight decay, no target network beyond the fixed
targets of step 1. Everything is written with broadcasting over leading batch dimensions so that
`MetaDQN` adapts a batch of tasks at once, and it is differentiable end to end (the meta-gradient
flows through the K steps, the targets and the features) - that is the second-order MAML gradient.

The context head rule (`ContextHeadRule`; CAVIA, Zintgraf et al. 2019, with a bilinear head).
A TD step on the head only changes the rows of the actions tried in the support: a shot can
demote the action it tried but never promote an untried one. The context rule adapts a vector
:math:`c \in R^D` (``context_dim``) instead, which enters the head bilinearly::

       W(c) = W_0 + sum_j c_j B_j          B \in R^{D x A x H}  (meta-learned, `QNetwork.head_basis`)
       b(c) = b_0 + sum_j c_j L_j          L \in R^{D x A}      (`QNetwork.head_bias_basis`)

so :math:`Q_c(s)[a] = Q_0(s)[a] + G(s, a) \cdot c` with :math:`G(s, a)_j = (B_j f(s))[a] + L_j[a]`:
affine in c, and every coordinate of c moves every action's value. c starts at 0 (``W_0``, ``b_0``
absorb any learned offset). With the targets y of step 1 (computed from ``(W_0, b_0)``) and
:math:`G_i = G(s_i, a_i)`, K full-batch gradient steps of the same mean Huber TD loss in c::

       delta_i = Q_0(s_i)[a_i] + G_i . c_k - y_i
       c_{k+1} = c_k - (alpha / N) * sum_i clip(delta_i, -kappa, kappa) * G_i

and the adapted head is :math:`(W(c_K), b(c_K))` - an ordinary head, so the device acts with it
through the same graph inputs. `adapt_context` returns :math:`c_K`, `adapt_context_head` the head.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robot_meta.runtime.manifest import ContextHeadRule, GradientRule, HeadRule

__all__ = [
    "ContextHeadRule",
    "GradientRule",
    "HeadAdaptation",
    "HeadRule",
    "adapt_context",
    "adapt_context_head",
    "adapt_head",
    "adapt_with_rule",
    "context_features",
    "context_head",
    "head_nstep_targets",
    "head_q",
    "head_td_loss",
    "head_td_step",
    "head_td_targets",
    "successor_flags",
]


#: The rule's hyper-parameters: the runtime's `HeadRule` (one type for training, export and the device).
HeadAdaptation = HeadRule


def head_q(weight: Tensor, bias: Tensor, features: Tensor) -> Tensor:
    """``W f + b`` for features ``(..., N, H)``, weight ``(..., A, H)``, bias ``(..., A)`` -> ``(..., N, A)``."""
    return features @ weight.transpose(-1, -2) + bias.unsqueeze(-2)


def head_td_targets(
    weight: Tensor, bias: Tensor, next_features: Tensor, rewards: Tensor, terminated: Tensor, gamma: float
) -> Tensor:
    """Step 1: ``y = r + gamma (1 - d) max_a (W phi' + b)[a]``, shape ``(..., N)``."""
    next_q = head_q(weight, bias, next_features).max(dim=-1).values
    return rewards + gamma * (1.0 - terminated) * next_q


def successor_flags(obs: Tensor, next_obs: Tensor, mask: Tensor | None = None) -> Tensor:
    """``(..., N)`` float flags: 1 where transition ``i + 1`` continues transition ``i`` (same episode).

    That is ``next_obs[i] == obs[i + 1]`` exactly and both transitions real (`mask`, 1 = real);
    the last transition has no successor. Termination is applied by the targets, not here.
    """
    if obs.shape[-2] == 0:
        return torch.zeros(obs.shape[:-1], dtype=obs.dtype)
    cont = (next_obs[..., :-1, :] == obs[..., 1:, :]).all(-1).to(obs.dtype)
    if mask is not None:
        m = mask.to(obs.dtype)
        cont = cont * m[..., :-1] * m[..., 1:]
    return torch.cat([cont, torch.zeros_like(cont[..., :1])], dim=-1)


def _shift(x: Tensor, k: int) -> Tensor:
    """``out[..., i] = x[..., i + k]`` (0 past the end)."""
    if k == 0:
        return x
    return torch.cat([x[..., k:], torch.zeros_like(x[..., :k])], dim=-1)


def head_nstep_targets(
    weight: Tensor,
    bias: Tensor,
    next_features: Tensor,
    rewards: Tensor,
    terminated: Tensor,
    successor: Tensor | None,
    gamma: float,
    n_step: int,
) -> Tensor:
    """Step 1 with n-step sums (module docstring), shape ``(..., N)``; n_step = 1 is `head_td_targets`.

    `successor` (`successor_flags` of the set's observations) is required when ``n_step > 1``.
    """
    if n_step == 1:
        return head_td_targets(weight, bias, next_features, rewards, terminated, gamma)
    if successor is None:
        raise ValueError(
            f"n_step={n_step} needs the support's successor flags: pass "
            "successor=successor_flags(obs, next_obs, mask)"
        )
    successor = successor.to(rewards.dtype)
    boot = head_q(weight, bias, next_features).max(dim=-1).values  # (..., N)
    n = rewards.shape[-1]
    links = successor * (1.0 - terminated)  # transition k continues into k + 1
    alive = torch.ones_like(rewards)
    length = torch.ones_like(rewards)  # m_i
    targets = rewards.clone()
    for j in range(1, min(n_step, n)):
        alive = alive * _shift(links, j - 1)
        targets = targets + alive * (gamma**j) * _shift(rewards, j)
        length = length + alive
    end = (torch.arange(n, device=rewards.device) + length - 1).long()  # e_i
    end_done = terminated.gather(-1, end)
    end_boot = boot.gather(-1, end)
    return targets + torch.pow(torch.full_like(length, gamma), length) * (1.0 - end_done) * end_boot


def head_td_loss(
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    actions: Tensor,
    targets: Tensor,
    huber_delta: float,
    mask: Tensor | None = None,
) -> Tensor:
    """Mean Huber TD loss of the head on a set, shape ``(...)`` (mean over the N transitions)."""
    q_sa = head_q(weight, bias, features).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    diff = q_sa - targets
    absd = diff.abs()
    huber = torch.where(absd <= huber_delta, 0.5 * diff * diff, huber_delta * (absd - 0.5 * huber_delta))
    if mask is None:
        return huber.mean(-1)
    m = mask.to(huber.dtype)
    return (huber * m).sum(-1) / m.sum(-1).clamp(min=1.0)


def head_td_step(
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    actions: Tensor,
    targets: Tensor,
    *,
    lr: float,
    huber_delta: float,
) -> tuple[Tensor, Tensor]:
    """Step 2, once: one SGD step of the mean Huber TD loss on the head, in closed form.

    Shapes: weight ``(..., A, H)``, bias ``(..., A)``, features ``(..., N, H)``, actions ``(..., N)``
    (int), targets ``(..., N)``. Returns the new ``(weight, bias)``.
    """
    if features.shape[-2] == 0:
        return weight, bias
    one_hot = torch.nn.functional.one_hot(actions.long(), weight.shape[-2]).to(features.dtype)
    scale = torch.full_like(targets, 1.0 / features.shape[-2])
    return _td_step(weight, bias, features, one_hot, scale, targets, lr, huber_delta)


def _td_step(
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    one_hot: Tensor,
    scale: Tensor,
    targets: Tensor,
    lr: float,
    huber_delta: float,
) -> tuple[Tensor, Tensor]:
    """One step; `scale` ``(..., N)`` is 1/N for real transitions and 0 for padding."""
    q = head_q(weight, bias, features)  # (..., N, A)
    delta = (q * one_hot).sum(-1) - targets  # (..., N)
    g = (delta.clamp(-huber_delta, huber_delta) * scale).unsqueeze(-1) * one_hot  # (..., N, A)
    grad_w = g.transpose(-1, -2) @ features  # (..., A, H)
    grad_b = g.sum(-2)  # (..., A)
    return weight - lr * grad_w, bias - lr * grad_b


def adapt_head(
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_features: Tensor,
    terminated: Tensor,
    rule: HeadAdaptation,
    mask: Tensor | None = None,
    successor: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The whole rule: fixed targets from the starting head, then ``rule.steps`` `head_td_step`s.

    `successor` ``(..., N)``: `successor_flags` of the support's observations, required when
    ``rule.n_step > 1`` (it is what tells where episodes break).

    `mask` ``(..., N)`` (1 = real transition, 0 = padding) lets support sets of different sizes
    share one padded batch: the result is the rule applied to the real transitions only (N = their
    number; an all-padding set leaves the head unchanged). Differentiable with respect to every
    input (for the second-order meta-gradient); detach the inputs for a first-order or
    inference-only adaptation.
    """
    if features.shape[-2] == 0:
        return weight, bias
    targets = head_nstep_targets(
        weight, bias, next_features, rewards, terminated.to(rewards.dtype), successor, rule.gamma, rule.n_step
    )
    one_hot = torch.nn.functional.one_hot(actions.long(), weight.shape[-2]).to(features.dtype)
    if mask is None:
        scale = torch.full_like(targets, 1.0 / features.shape[-2])
    else:
        m = mask.to(targets.dtype)
        scale = m / m.sum(-1, keepdim=True).clamp(min=1.0)
    for _ in range(rule.steps):
        weight, bias = _td_step(weight, bias, features, one_hot, scale, targets, rule.lr, rule.huber_delta)
    return weight, bias


def context_head(
    weight: Tensor, bias: Tensor, basis: Tensor, bias_basis: Tensor, context: Tensor
) -> tuple[Tensor, Tensor]:
    """``(W_0 + sum_j c_j B_j, b_0 + sum_j c_j L_j)``: context ``(..., D)``, basis ``(D, A, H)``, bias_basis ``(D, A)``."""
    w = weight + (context[..., :, None, None] * basis).sum(-3)
    b = bias + (context[..., :, None] * bias_basis).sum(-2)
    return w, b


def context_features(basis: Tensor, bias_basis: Tensor, features: Tensor, actions: Tensor) -> Tensor:
    """``G_i = dQ(s_i)[a_i] / dc``, shape ``(..., N, D)``: ``(B_j f(s_i))[a_i] + L_j[a_i]``."""
    d, n_act, h = basis.shape
    proj = (features @ basis.reshape(d * n_act, h).t()).reshape(*features.shape[:-1], d, n_act)
    idx = actions.long()[..., None, None].expand(*actions.shape, d, 1)
    return proj.gather(-1, idx).squeeze(-1) + bias_basis.t()[actions.long()]


def adapt_context(
    weight: Tensor,
    bias: Tensor,
    basis: Tensor,
    bias_basis: Tensor,
    features: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_features: Tensor,
    terminated: Tensor,
    rule: ContextHeadRule,
    mask: Tensor | None = None,
    successor: Tensor | None = None,
) -> Tensor:
    """The context rule (module docstring): ``c_K`` of shape ``(..., D)`` from ``c_0 = 0``.

    Arguments as `adapt_head`, plus the meta-learned `basis` ``(D, A, H)`` and `bias_basis` ``(D, A)``.
    Differentiable with respect to every input (the second-order meta-gradient).
    """
    d = basis.shape[0]
    if d != rule.context_dim:
        raise ValueError(f"basis has {d} matrices but the rule's context_dim is {rule.context_dim}")
    c = features.new_zeros(*features.shape[:-2], d)
    if features.shape[-2] == 0:
        return c
    targets = head_nstep_targets(
        weight, bias, next_features, rewards, terminated.to(rewards.dtype), successor, rule.gamma, rule.n_step
    )
    q0 = head_q(weight, bias, features).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (..., N)
    g_feat = context_features(basis, bias_basis, features, actions)  # (..., N, D)
    if mask is None:
        scale = torch.full_like(targets, 1.0 / features.shape[-2])
    else:
        m = mask.to(targets.dtype)
        scale = m / m.sum(-1, keepdim=True).clamp(min=1.0)
    for _ in range(rule.steps):
        delta = q0 + (g_feat * c.unsqueeze(-2)).sum(-1) - targets
        g = delta.clamp(-rule.huber_delta, rule.huber_delta) * scale
        c = c - rule.lr * (g.unsqueeze(-1) * g_feat).sum(-2)
    return c


def adapt_context_head(
    weight: Tensor,
    bias: Tensor,
    basis: Tensor,
    bias_basis: Tensor,
    features: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_features: Tensor,
    terminated: Tensor,
    rule: ContextHeadRule,
    mask: Tensor | None = None,
    successor: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """`adapt_context`, returned as the adapted head ``(W(c_K), b(c_K))``."""
    c = adapt_context(
        weight,
        bias,
        basis,
        bias_basis,
        features,
        actions,
        rewards,
        next_features,
        terminated,
        rule,
        mask,
        successor,
    )
    return context_head(weight, bias, basis, bias_basis, c)


def adapt_with_rule(
    rule: GradientRule,
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_features: Tensor,
    terminated: Tensor,
    *,
    basis: Tensor | None = None,
    bias_basis: Tensor | None = None,
    mask: Tensor | None = None,
    successor: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The adapted head under `rule`: `adapt_head` for a `HeadRule`, `adapt_context_head` for a `ContextHeadRule`."""
    if isinstance(rule, ContextHeadRule):
        if basis is None or bias_basis is None:
            raise ValueError(
                "the context head rule needs the network's basis: build the QNetwork with "
                f"head_context_dim={rule.context_dim} and pass basis=net.head_basis, bias_basis=net.head_bias_basis"
            )
        return adapt_context_head(
            weight, bias, basis, bias_basis, features, actions, rewards, next_features, terminated, rule,
            mask, successor,
        )  # fmt: skip
    return adapt_head(
        weight, bias, features, actions, rewards, next_features, terminated, rule, mask, successor
    )
