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
"""

from __future__ import annotations

import torch
from torch import Tensor

from robot_meta.runtime.manifest import HeadRule

__all__ = [
    "HeadAdaptation",
    "HeadRule",
    "adapt_head",
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
