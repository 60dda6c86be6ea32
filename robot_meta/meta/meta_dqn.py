"""`MetaDQN`: MAML-style meta-Q-learning whose inner loop is the device's head adaptation rule.

Per outer step, for a batch of tasks with support set S and query set Q drawn from each task's
replay buffer (uniformly, with replacement):

- inner loop: ``(W_K, b_K) = adapt_head(W_0, b_0, f(S), ..., rule)`` (`robot_meta.meta.adaptation`),
  or with ``inner_rule="context_td"`` the context head rule ``(W(c_K), b(c_K)) =
  adapt_context_head(W_0, b_0, B, L, f(S), ...)`` (K steps on a context vector c, the basis B, L
  meta-learned with the rest); the target network is adapted on the same support with the same
  rule (no gradient);
- outer loss: mean Huber TD loss of ``Q(s) = W_K f(s) + b_K`` on Q with Double-DQN targets
  ``r + gamma (1 - d) Q'_K(s', argmax_a Q_K(s', a))`` (``Q'_K``: the adapted target network),
  plus ``zero_shot_weight`` times the same loss for the un-adapted head (targets from the
  un-adapted networks), so that the policy the device starts with is good too;
- the meta-gradient flows through the K inner steps, the inner targets and the support features
  (second order), or, with ``first_order=True``, only through the query features and
  ``W_K - W_0`` treated as a constant (FOMAML).

Collection (the worker) mimics deployment: the first episode of a task visit acts with the meta
head, and before every later episode the head is re-adapted from ``(W_0, b_0)`` on the visit's
latest ``support_size`` transitions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from robot_meta.meta.adaptation import (
    ContextHeadRule,
    GradientRule,
    HeadRule,
    adapt_context,
    adapt_with_rule,
    context_head,
    head_nstep_targets,
    head_q,
    head_td_loss,
    successor_flags,
)
from robot_meta.meta.config import MetaDQNConfig
from robot_meta.meta.dqn import double_dqn_targets, epsilon_greedy, hard_update, td_loss
from robot_meta.meta.eval.adapters import Adapter, HeadAdapter, head_basis
from robot_meta.meta.replay import Batch, SupportBank, Transitions, stack_batches
from robot_meta.meta.rollout import EnvFactory, EpisodeStats, cached_env, run_episode
from robot_meta.meta.trainer import MetaTrainer
from robot_meta.meta.work import WorkResult, freeze_spec, worker_module
from robot_meta.policies import QNetwork

if TYPE_CHECKING:
    from robot_meta.meta.run import TrainedRun

__all__ = ["MetaDQN", "meta_td_loss"]


def _adapt_on(
    support: Batch,
    w: Tensor,
    b: Tensor,
    basis: tuple[Tensor, Tensor] | None,
    fs: Tensor,
    fs_next: Tensor,
    rule: GradientRule,
    support_mask: Tensor | None,
    succ: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """`adapt_with_rule` from head (`w`, `b`) (and context `basis`) on the support set, given its features."""
    return adapt_with_rule(
        rule, w, b, fs, support.actions, support.rewards, fs_next, support.terminated,
        basis=None if basis is None else basis[0], bias_basis=None if basis is None else basis[1],
        mask=support_mask, successor=succ,
    )  # fmt: skip


def _inner_td_stats(
    support: Batch,
    w0: Tensor,
    b0: Tensor,
    wk: Tensor,
    bk: Tensor,
    fs: Tensor,
    fs_next: Tensor,
    rule: GradientRule,
    support_mask: Tensor | None,
    succ: Tensor | None,
) -> dict[str, float]:
    """The support set's TD loss before (`w0`, `b0`) and after (`wk`, `bk`) the inner steps."""
    with torch.no_grad():
        fs_d, fs_next_d = fs.detach(), fs_next.detach()
        y_in = head_nstep_targets(
            w0.detach(),
            b0.detach(),
            fs_next_d,
            support.rewards,
            support.terminated,
            succ,
            rule.gamma,
            rule.n_step,
        )
        pre = float(
            head_td_loss(
                w0.detach(), b0.detach(), fs_d, support.actions, y_in, rule.huber_delta, support_mask
            ).mean()
        )
        post = float(
            head_td_loss(
                wk.detach(), bk.detach(), fs_d, support.actions, y_in, rule.huber_delta, support_mask
            ).mean()
        )
    return {"losses/inner_td_pre": pre, "losses/inner_td_post": post}


def meta_td_loss(
    qnet: QNetwork,
    target: QNetwork,
    support: Batch,
    query: Batch,
    rule: GradientRule,
    *,
    support_mask: Tensor | None = None,
    first_order: bool = False,
    zero_shot_weight: float = 0.0,
    params: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The MetaDQN outer loss for a batch of tasks (support ``(B, S, ...)``, query ``(B, Q, ...)``).

    `params` (default: ``qnet``'s own parameters) are the meta-parameters the loss is a function
    of, applied through ``torch.func.functional_call`` (buffers such as the normaliser come from
    `qnet`); the target network only provides constants. Returns the loss and scalars
    (``losses/outer_td``, ``losses/zero_shot_td``, ``losses/inner_td_pre|post``).
    """
    p = dict(qnet.named_parameters()) if params is None else dict(params)
    body_params = {k[len("body.") :]: v for k, v in p.items() if k.startswith("body.")}
    w0, b0 = p["head.weight"], p["head.bias"]
    if isinstance(rule, ContextHeadRule) and "head_basis" not in p:
        raise ValueError(f"the context head rule needs a QNetwork with head_context_dim={rule.context_dim}")
    basis = (p["head_basis"], p["head_bias_basis"]) if isinstance(rule, ContextHeadRule) else None

    def feats(obs: Tensor) -> Tensor:
        out: Tensor = functional_call(qnet.body, body_params, (obs,))
        return out

    succ = successor_flags(support.obs, support.next_obs, support_mask) if rule.n_step > 1 else None

    if first_order and isinstance(rule, ContextHeadRule):
        assert basis is not None
        with torch.no_grad():  # FO-CAVIA: c_K is a constant; the head W(c_K) still trains W0, b0, B, L
            fs, fs_next = feats(support.obs), feats(support.next_obs)
            c = adapt_context(
                w0, b0, basis[0], basis[1], fs, support.actions, support.rewards, fs_next,
                support.terminated, rule, support_mask, succ,
            )  # fmt: skip
        wk, bk = context_head(w0, b0, basis[0], basis[1], c)
    elif first_order:
        with torch.no_grad():
            fs, fs_next = feats(support.obs), feats(support.next_obs)
            wk_c, bk_c = _adapt_on(support, w0, b0, basis, fs, fs_next, rule, support_mask, succ)
        wk, bk = w0 + (wk_c - w0).detach(), b0 + (bk_c - b0).detach()
    else:
        fs, fs_next = feats(support.obs), feats(support.next_obs)
        wk, bk = _adapt_on(support, w0, b0, basis, fs, fs_next, rule, support_mask, succ)

    with torch.no_grad():
        tw0, tb0 = target.head.weight, target.head.bias
        tfs, tfs_next = target.features(support.obs), target.features(support.next_obs)
        twk, tbk = _adapt_on(support, tw0, tb0, head_basis(target), tfs, tfs_next, rule, support_mask, succ)
        tf_q_next = target.features(query.next_obs)
        f_q_next = feats(query.next_obs)
        y = double_dqn_targets(
            query.rewards,
            query.terminated,
            head_q(wk.detach(), bk.detach(), f_q_next),
            head_q(twk, tbk, tf_q_next),
            rule.gamma,
        )
    fq = feats(query.obs)
    outer = td_loss(head_q(wk, bk, fq), query.actions, y, rule.huber_delta)
    loss = outer
    stats: dict[str, float] = {"losses/outer_td": float(outer.detach())}
    if zero_shot_weight > 0:
        with torch.no_grad():
            y0 = double_dqn_targets(
                query.rewards,
                query.terminated,
                head_q(w0.detach(), b0.detach(), f_q_next),
                head_q(tw0, tb0, tf_q_next),
                rule.gamma,
            )
        zero = td_loss(head_q(w0, b0, fq), query.actions, y0, rule.huber_delta)
        loss = loss + zero_shot_weight * zero
        stats["losses/zero_shot_td"] = float(zero.detach())
    stats.update(_inner_td_stats(support, w0, b0, wk, bk, fs, fs_next, rule, support_mask, succ))
    return loss, stats


@dataclass(frozen=True)
class _Work:
    env_factory: EnvFactory
    net_spec: tuple[tuple[str, Any], ...]
    state: dict[str, Tensor]
    task: Any
    seed: int
    epsilon: float
    episodes: int
    support_size: int
    rule: GradientRule


def _work(item: _Work) -> WorkResult:
    """One task visit: episode 0 with the meta head, later episodes with the head re-adapted on the visit so far."""
    spec = dict(item.net_spec)
    qnet = worker_module(("meta-dqn", item.net_spec), lambda: QNetwork(**spec))
    qnet.load_state_dict(item.state)
    env = cached_env(item.env_factory)
    rng = np.random.default_rng(item.seed)
    env_seed = int(rng.integers(2**31 - 1))  # seeds the visit's first reset only
    w0, b0 = qnet.head.weight.detach(), qnet.head.bias.detach()
    parts: list[Transitions] = []
    supports: list[Transitions] = []
    episodes: list[EpisodeStats] = []
    for e in range(item.episodes):
        w, b = w0, b0
        if e > 0:
            support = Transitions.concat(parts).tail(item.support_size)
            supports.append(support)
            sup = support.to_batch()
            basis = head_basis(qnet)
            with torch.no_grad():
                w, b = adapt_with_rule(
                    item.rule,
                    w0,
                    b0,
                    qnet.features(sup.obs),
                    sup.actions,
                    sup.rewards,
                    qnet.features(sup.next_obs),
                    sup.terminated,
                    basis=None if basis is None else basis[0].detach(),
                    bias_basis=None if basis is None else basis[1].detach(),
                    successor=successor_flags(sup.obs, sup.next_obs),
                )
        wn, bn = w.numpy(), b.numpy()

        def act(obs: np.ndarray, wn: np.ndarray = wn, bn: np.ndarray = bn) -> int:
            with torch.inference_mode():
                f = qnet.features(torch.from_numpy(np.asarray(obs, dtype=np.float32))).numpy()
            return epsilon_greedy(wn @ f + bn, item.epsilon, rng)

        tr, st = run_episode(env, item.task, env_seed if e == 0 else None, act)
        parts.append(tr)
        episodes.append(st)
    if not supports:  # a one-episode visit: its episode is what the device would adapt on next
        supports.append(parts[0].tail(item.support_size))
    return WorkResult(Transitions.concat(parts), episodes, supports=supports)


class MetaDQN(MetaTrainer[MetaDQNConfig]):
    """MAML-style meta-Q-learning; the inner loop is exactly the device's head adaptation (`adaptation`)."""

    algo = "meta-dqn"
    trained_with = "MetaDQN inner loop"
    config_cls = MetaDQNConfig

    def _build(self) -> None:
        cfg = self.config
        self.qnet = QNetwork(
            self.obs_dim,
            self.n_actions,
            cfg.hidden,
            feature_activation=cfg.feature_activation,
            head_context_dim=cfg.context_dim if cfg.inner_rule == "context_td" else 0,
        )
        self.target = copy.deepcopy(self.qnet).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.qnet.parameters(), lr=cfg.lr)
        self.supports = [
            SupportBank(cfg.support_bank_size, cfg.support_size, self.obs_dim) for _ in self.task_pool
        ]

    @classmethod
    def head_rule(cls, config: MetaDQNConfig) -> GradientRule:
        """The adaptation rule (inner loop here, `adapt()` on the device): `HeadRule` or `ContextHeadRule`."""
        shared: dict[str, Any] = dict(
            steps=config.inner_steps,
            gamma=config.gamma,
            huber_delta=config.huber_delta,
            n_step=config.inner_n_step,
            support_size=config.support_size,
        )
        if config.inner_rule == "context_td":
            return ContextHeadRule(lr=config.context_lr, context_dim=config.context_dim, **shared)
        return HeadRule(lr=config.inner_lr, **shared)

    @property
    def adaptation(self) -> GradientRule:
        """`head_rule` of this trainer's config."""
        return self.head_rule(self.config)

    @classmethod
    def eval_adapters(cls, run: TrainedRun[MetaDQNConfig]) -> dict[str, Callable[[int], Adapter]]:
        """``meta-dqn``: the run's rule from the meta-trained head on the latest ``support_size`` shots."""
        rule = run.adaptation
        assert rule is not None
        eps = run.config.epsilon_end
        return {cls.algo: lambda _s: HeadAdapter(run.policy, rule, rule.support_size, eps)}

    def _worker(self) -> Callable[[Any], WorkResult]:
        return _work

    def _work_item(self, task: Any, seed: int, epsilon: float, *, task_index: int | None) -> _Work:
        cfg = self.config
        return _Work(
            env_factory=self.env_factory,
            net_spec=freeze_spec(self.qnet.spec()),
            state=self.qnet.state_dict(),
            task=task,
            seed=seed,
            epsilon=epsilon,
            episodes=cfg.episodes_per_task,
            support_size=cfg.support_size,
            rule=self.adaptation,
        )

    def _store(self, task_id: int, result: WorkResult) -> None:
        super()._store(task_id, result)
        for support in result.supports:
            self.supports[task_id].add(support)

    def _extra_state(self) -> dict[str, Any]:
        return {"supports": [bank.state_dict() for bank in self.supports]}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        if len(state["supports"]) != len(self.supports):
            raise ValueError(f"{len(state['supports'])} support banks for {len(self.supports)} tasks")
        for bank, bank_state in zip(self.supports, state["supports"], strict=True):
            bank.load_state_dict(bank_state)

    def _observe(self, new: Transitions) -> None:
        # The target network shares the current normalisation (as with normalised replay in SB3):
        # only its weights lag behind.
        self.qnet.obs_norm.update(new.obs)
        self.target.obs_norm.load_state_dict(self.qnet.obs_norm.state_dict())

    def _learn(self, task_ids: Sequence[int], results: Sequence[WorkResult]) -> dict[str, float]:
        cfg = self.config
        ready = [i for i, bank in enumerate(self.supports) if len(bank) > 0 and len(self.replay[i]) > 0]
        rule = self.adaptation
        sums: dict[str, float] = {}
        for _ in range(cfg.updates_per_iteration):
            chosen = self.rng.choice(len(ready), size=min(cfg.update_batch_tasks, len(ready)), replace=False)
            tasks = [ready[int(i)] for i in chosen]
            drawn = [self.supports[t].sample(self.rng) for t in tasks]
            support = stack_batches([d[0] for d in drawn])
            mask = torch.from_numpy(np.stack([d[1] for d in drawn]))
            query = stack_batches([self.replay[t].sample(cfg.query_size, self.rng) for t in tasks])
            loss, stats = meta_td_loss(
                self.qnet,
                self.target,
                support,
                query,
                rule,
                support_mask=mask,
                first_order=cfg.first_order,
                zero_shot_weight=cfg.zero_shot_weight,
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["losses/grad_norm"] = float(
                nn.utils.clip_grad_norm_(self.qnet.parameters(), cfg.max_grad_norm)
            )
            self.optimizer.step()
            self.updates += 1
            if self.updates % cfg.target_update_interval == 0:
                hard_update(self.target, self.qnet)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
        return {k: v / cfg.updates_per_iteration for k, v in sums.items()}

    def _models(self) -> dict[str, nn.Module]:
        return {"qnet": self.qnet, "target": self.target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def policy_modules(self) -> dict[str, nn.Module]:
        return {"policy": self.qnet}

    def run_info(self) -> dict[str, Any]:
        return {"policy": self.qnet.spec(), "encoder": None, "adaptation": self.adaptation.to_dict()}
