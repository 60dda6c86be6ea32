"""`ContextDQN`: Q(s, z) with z = encoder(transitions of the task); adapting is inference.

Two ways to train it (``ContextDQNConfig.teacher``):

- **teacher** (default; RMA, Kumar et al. 2021): a `TaskEmbedding` maps each training task's true
  parameters p to ``mu(p)``; the Q-network learns ``Q(s, mu(p))`` by n-step Double-DQN, and, with
  probability ``teacher_dropout`` per TD sample, ``Q(s, z0)`` with the prior ``z0`` = the encoder's
  output for an empty context (``out.bias``), which is the zero-shot policy. At the same time the
  encoder regresses ``mu(p)`` (stop-gradient) from ``n ~ U{1..context_size}`` transitions of the
  task (its ``out.bias`` takes no regression gradient: it stays the prior that TD trains). So z
  carries what the task's parameters imply for acting, and the device infers it from shots.
  Collection acts with ``mu(p)`` on most visits and, on a fraction ``encoder_visits``, exactly as
  the device does (z re-inferred by the encoder after every step from the prior on), so the
  encoder is also trained on the transitions its own z produces.
- **end to end** (``teacher=false``): a context of ``n ~ U{0..context_size}`` transitions and a TD
  batch per task; ``z = encoder(context)``; the TD loss of ``Q(s, z)`` trains encoder and
  Q-network together (PEARL-style, deterministic encoder). Every visit acts as the device does.

Targets come from the target pair (target encoder / embedding + target Q-network, hard-copied every
``target_update_interval`` steps). On the device and in evaluation z is re-inferred after every
step from the latest ``context_size`` transitions of the current task visit (starting from the prior).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robot_meta.meta.config import ContextDQNConfig
from robot_meta.meta.dqn import (
    advantage_learning_targets,
    double_dqn_targets,
    epsilon_greedy,
    hard_update,
    td_loss,
)
from robot_meta.meta.eval.adapters import Adapter, ContextAdapter
from robot_meta.meta.hindsight import HindsightGoals
from robot_meta.meta.replay import Batch, Transitions, stack_batches
from robot_meta.meta.rollout import EnvFactory, EpisodeStats, cached_env, run_episode
from robot_meta.meta.trainer import MetaTrainer
from robot_meta.meta.work import Spec, WorkResult, freeze_spec, worker_module
from robot_meta.policies import ContextEncoder, QNetwork, TaskEmbedding
from robot_meta.runtime.manifest import ENCODER_FILE, ContextSpec, pack_transitions

if TYPE_CHECKING:
    from robot_meta.meta.run import TrainedRun

__all__ = ["OUTCOME_SCALE", "ContextDQN"]

OUTCOME_SCALE = 0.1
"""Metres per unit of the outcome head's output (slide's puck travels up to about 1 m)."""


@dataclass(frozen=True)
class _Work:
    env_factory: EnvFactory
    net_spec: Spec
    enc_spec: Spec
    state: dict[str, Tensor]
    enc_state: dict[str, Tensor]
    task: Any
    seed: int
    epsilon: float
    episodes: int
    context_size: int
    z_fixed: np.ndarray | None = None
    """Act with this z for the whole visit (the true-parameter embedding); None: as the device does."""


def _work(item: _Work) -> WorkResult:
    """One task visit acting with Q(s, z), z re-inferred from the visit's transitions after every step."""
    net_kw, enc_kw = dict(item.net_spec), dict(item.enc_spec)
    qnet = worker_module(("context-q", item.net_spec), lambda: QNetwork(**net_kw))
    enc = worker_module(("context-enc", item.enc_spec), lambda: ContextEncoder(**enc_kw))
    qnet.load_state_dict(item.state)
    enc.load_state_dict(item.enc_state)
    env = cached_env(item.env_factory)
    rng = np.random.default_rng(item.seed)
    env_seed = int(rng.integers(2**31 - 1))  # seeds the visit's first reset only
    rows: list[np.ndarray] = []
    n_actions = enc.n_actions
    with torch.inference_mode():
        z = (
            enc(torch.zeros(0, enc.transition_dim))
            if item.z_fixed is None
            else torch.from_numpy(item.z_fixed)
        )

    def act(obs: np.ndarray) -> int:
        with torch.inference_mode():
            q = qnet(torch.from_numpy(np.asarray(obs, dtype=np.float32)), z).numpy()
        return epsilon_greedy(q, item.epsilon, rng)

    def on_step(obs: np.ndarray, a: int, r: float, next_obs: np.ndarray, terminated: bool) -> None:
        nonlocal z
        if item.z_fixed is not None:
            return
        rows.append(pack_transitions(obs, np.array([a]), np.array([r]), next_obs, n_actions)[0])
        with torch.inference_mode():
            z = enc(torch.from_numpy(np.stack(rows[-item.context_size :])))

    parts: list[Transitions] = []
    episodes: list[EpisodeStats] = []
    for e in range(item.episodes):
        tr, st = run_episode(env, item.task, env_seed if e == 0 else None, act, on_step)
        parts.append(tr)
        episodes.append(st)
    return WorkResult(Transitions.concat(parts), episodes)


def _param_vectors(tasks: Sequence[Any]) -> Tensor:
    """``(tasks, param_dim)`` float32 true-parameter vectors of the pool (``task.to_vector()``)."""
    if not all(callable(getattr(t, "to_vector", None)) for t in tasks):
        raise ValueError(
            "ContextDQN with teacher=true needs tasks with a to_vector() of their true parameters "
            "(TaskParams has it): use such a task distribution or set teacher=false"
        )
    return torch.from_numpy(np.stack([np.asarray(t.to_vector(), np.float32).ravel() for t in tasks]))


class ContextDQN(MetaTrainer[ContextDQNConfig]):
    """Context-conditioned DQN (mean-pooled encoder; RMA-style teacher or end to end); adapting is inference."""

    algo = "context"
    config_cls = ContextDQNConfig

    def _build(self) -> None:
        cfg = self.config
        self.encoder = ContextEncoder(self.obs_dim, self.n_actions, cfg.latent_dim, cfg.encoder_hidden)
        self.qnet = QNetwork(
            self.obs_dim,
            self.n_actions,
            cfg.hidden,
            context_dim=cfg.latent_dim,
            feature_activation=cfg.feature_activation,
        )
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target = copy.deepcopy(self.qnet).requires_grad_(False)
        params = [*self.encoder.parameters(), *self.qnet.parameters()]
        self.teacher: TaskEmbedding | None = None
        self.target_teacher: TaskEmbedding | None = None
        if cfg.teacher:
            self.param_vectors = _param_vectors(self.task_pool)
            self.teacher = TaskEmbedding(self.param_vectors, cfg.latent_dim, cfg.teacher_hidden)
            self.target_teacher = copy.deepcopy(self.teacher).requires_grad_(False)
            params += list(self.teacher.parameters())
        self.outcome: tuple[HindsightGoals, nn.Linear] | None = None
        if cfg.outcome_weight > 0:
            goals = HindsightGoals.for_env(cached_env(self.env_factory), "outcome_weight")
            width = goals.achieved.stop - goals.achieved.start
            head = nn.Linear(self.qnet.feature_dim, self.n_actions * width)
            self.outcome = (goals, head)
            params += list(head.parameters())
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        self.hindsight: tuple[HindsightGoals, float] | None = None
        if cfg.hindsight_fraction > 0:
            self.hindsight = (HindsightGoals.for_env(cached_env(self.env_factory)), cfg.hindsight_fraction)

    def _worker(self) -> Callable[[Any], WorkResult]:
        return _work

    def _work_item(self, task: Any, seed: int, epsilon: float, *, task_index: int | None) -> _Work:
        cfg = self.config
        return _Work(
            env_factory=self.env_factory,
            net_spec=freeze_spec(self.qnet.spec()),
            enc_spec=freeze_spec(self.encoder.spec()),
            state=self.qnet.state_dict(),
            enc_state=self.encoder.state_dict(),
            task=task,
            seed=seed,
            epsilon=epsilon,
            episodes=cfg.episodes_per_task,
            context_size=cfg.context_size,
            z_fixed=self._visit_z(seed, task_index),
        )

    def _visit_z(self, seed: int, task_index: int | None) -> np.ndarray | None:
        """The true-parameter z a training visit acts with, or None for a visit acted as on the device.

        Which one is a function of the visit's seed (so backends and resumed runs agree); probes
        (`task_index` None) always act as the device does.
        """
        if self.teacher is None or task_index is None:
            return None
        if np.random.default_rng([seed, 1]).random() < self.config.encoder_visits:
            return None
        with torch.inference_mode():
            z: np.ndarray = self.teacher(self.param_vectors[task_index]).numpy().copy()
        return z

    def _observe(self, new: Transitions) -> None:
        obs, next_obs = torch.from_numpy(new.obs), torch.from_numpy(new.next_obs)
        self.qnet.obs_norm.update(obs)
        self.encoder.update_normalizers(obs, next_obs)
        # Target networks share the current normalisation; only their weights lag behind.
        self.target.obs_norm.load_state_dict(self.qnet.obs_norm.state_dict())
        self.target_encoder.obs_norm.load_state_dict(self.encoder.obs_norm.state_dict())
        self.target_encoder.delta_norm.load_state_dict(self.encoder.delta_norm.state_dict())

    def _td_batch(self, tasks: Sequence[int]) -> tuple[Batch, Tensor | float]:
        """A ``(B, batch_size)`` TD batch of `tasks` and the bootstrap discounts (n-step when ``n_step > 1``)."""
        cfg = self.config
        if cfg.n_step == 1 and self.hindsight is None and cfg.episode_start_fraction == 0:
            return stack_batches([self.replay[t].sample(cfg.batch_size, self.rng) for t in tasks]), cfg.gamma
        parts = [
            self.replay[t].sample_nstep(
                cfg.batch_size, cfg.n_step, cfg.gamma, self.rng, self.hindsight, cfg.episode_start_fraction
            )
            for t in tasks
        ]
        return stack_batches([p[0] for p in parts]), torch.from_numpy(np.stack([p[1] for p in parts]))

    def _learn(self, task_ids: Sequence[int], results: Sequence[WorkResult]) -> dict[str, float]:
        cfg = self.config
        ready = [i for i, buf in enumerate(self.replay) if len(buf) > 0]
        sums: dict[str, float] = {}
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        smallest = 1 if self.teacher is not None else 0  # the teacher's prior is not regressed
        for _ in range(cfg.updates_per_iteration):
            chosen = self.rng.choice(len(ready), size=min(cfg.update_batch_tasks, len(ready)), replace=False)
            tasks = [ready[int(i)] for i in chosen]
            ctx = stack_batches([self.replay[t].sample(cfg.context_size, self.rng) for t in tasks])
            sizes = torch.from_numpy(self.rng.integers(smallest, cfg.context_size + 1, size=len(tasks)))
            mask = (torch.arange(cfg.context_size).unsqueeze(0) < sizes.unsqueeze(1)).float()
            batch, discount = self._td_batch(tasks)
            packed = self.encoder.pack(ctx.obs, ctx.actions, ctx.rewards, ctx.next_obs)
            if self.teacher is None:
                z = self.encoder(packed, mask)
                with torch.no_grad():
                    z_next = self.target_encoder(packed, mask)
                regression: Tensor | None = None
            else:
                z, z_next, regression = self._teacher_z(tasks, packed, mask, batch.obs.shape[:2])
            q = self.qnet(batch.obs, z)
            with torch.no_grad():
                y = double_dqn_targets(
                    batch.rewards,
                    batch.terminated,
                    self.qnet(batch.next_obs, z.detach()),
                    self.target(batch.next_obs, z_next),
                    discount,
                )
                if cfg.advantage_alpha > 0:
                    y = advantage_learning_targets(
                        y, self.target(batch.obs, z_next), batch.actions, cfg.advantage_alpha
                    )
            loss = td_loss(q, batch.actions, y, cfg.huber_delta)
            scalars = {"losses/td": float(loss.detach())}
            if regression is not None:
                loss = loss + cfg.regression_weight * regression
                scalars["losses/regression"] = float(regression.detach())
            if self.outcome is not None:
                outcome = self._outcome_loss(tasks, z)
                loss = loss + cfg.outcome_weight * outcome
                scalars["losses/outcome"] = float(outcome.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            scalars["losses/grad_norm"] = float(nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            scalars["losses/z_norm"] = float(z.detach().norm(dim=-1).mean())
            self.optimizer.step()
            self.updates += 1
            if self.updates % cfg.target_update_interval == 0:
                hard_update(self.target, self.qnet)
                hard_update(self.target_encoder, self.encoder)
                if self.teacher is not None and self.target_teacher is not None:
                    hard_update(self.target_teacher, self.teacher)
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v
        return {k: v / cfg.updates_per_iteration for k, v in sums.items()}

    def outcome_shift(self, obs: Tensor, z: Tensor) -> Tensor:
        """Predicted achieved-goal displacement ``(..., n_actions, goal_dim)`` in metres after
        ``outcome_horizon`` steps, for every action (``outcome_weight > 0`` only)."""
        if self.outcome is None:
            raise ValueError("this ContextDQN has no outcome model: train it with outcome_weight > 0")
        head = self.outcome[1]
        pred: Tensor = head(self.qnet.features(obs, z)).unflatten(-1, (self.n_actions, -1))
        return pred * OUTCOME_SCALE

    def _outcome_loss(self, tasks: Sequence[int], z: Tensor) -> Tensor:
        """Mean squared error of the outcome head on the taken actions of a fresh draw of each task's
        replay, with the TD batch's z (gradients reach the trunk and z), in units of `OUTCOME_SCALE`."""
        assert self.outcome is not None
        cfg, goals = self.config, self.outcome[0]
        parts = [self.replay[t].sample_outcome(cfg.batch_size, cfg.outcome_horizon, self.rng) for t in tasks]
        batch = stack_batches([p[0] for p in parts])
        later = torch.from_numpy(np.stack([p[1] for p in parts]))
        shift = (later[..., goals.achieved] - batch.obs[..., goals.achieved]) / OUTCOME_SCALE
        pred = self.outcome[1](self.qnet.features(batch.obs, z)).unflatten(-1, (self.n_actions, -1))
        index = batch.actions[..., None, None].expand(*batch.actions.shape, 1, pred.shape[-1])
        return F.mse_loss(pred.gather(-2, index).squeeze(-2), shift)

    def _teacher_z(
        self, tasks: Sequence[int], packed: Tensor, mask: Tensor, shape: torch.Size
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher mode: per-sample z (true-parameter embedding, or the prior with prob ``teacher_dropout``),
        the target networks' z, and the encoder's regression loss onto the embedding."""
        assert self.teacher is not None and self.target_teacher is not None
        cfg = self.config
        p = self.param_vectors[list(tasks)]
        drop = torch.from_numpy(self.rng.random(tuple(shape)) < cfg.teacher_dropout).unsqueeze(-1)
        mu = self.teacher(p)
        z = torch.where(drop, self.encoder.prior, mu.unsqueeze(1).expand(*shape, cfg.latent_dim))
        with torch.no_grad():
            mu_next = self.target_teacher(p).unsqueeze(1).expand(*shape, cfg.latent_dim)
            z_next = torch.where(drop, self.target_encoder.prior, mu_next)
        out = self.encoder.out
        z_hat = F.linear(self.encoder.pool(packed, mask), out.weight, out.bias.detach())
        return z, z_next, F.mse_loss(z_hat, mu.detach())

    def _models(self) -> dict[str, nn.Module]:
        models: dict[str, nn.Module] = {
            "qnet": self.qnet,
            "encoder": self.encoder,
            "target": self.target,
            "target_encoder": self.target_encoder,
        }
        if self.teacher is not None and self.target_teacher is not None:
            models.update(teacher=self.teacher, target_teacher=self.target_teacher)
        if self.outcome is not None:
            models["outcome"] = self.outcome[1]
        return models

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def policy_modules(self) -> dict[str, nn.Module]:
        return {"policy": self.qnet, "encoder": self.encoder}

    def run_info(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "policy": self.qnet.spec(),
            "encoder": self.encoder.spec(),
            "adaptation": {"rule": ContextSpec.rule, "context_size": cfg.context_size},
        }

    @classmethod
    def device_rule(cls, run: TrainedRun[ContextDQNConfig]) -> ContextSpec:
        """Inference of z by ``encoder.onnx`` from the latest ``context_size`` transitions."""
        enc = run.encoder
        if enc is None:
            raise ValueError(f"the context run {run.run_dir} has no encoder to export")
        return ContextSpec(ENCODER_FILE, enc.latent_dim, run.config.context_size, enc.transition_dim)

    @classmethod
    def eval_adapters(cls, run: TrainedRun[ContextDQNConfig]) -> dict[str, Callable[[int], Adapter]]:
        """``context``: z re-inferred after every shot step; evaluation uses z of the latest shots, frozen."""
        encoder = run.encoder
        assert encoder is not None
        ctx, eps = run.config.context_size, run.config.epsilon_end
        return {cls.algo: lambda _s: ContextAdapter(run.policy, encoder, ctx, eps)}
