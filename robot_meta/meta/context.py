"""`ContextDQN`: Q(s, z) with z = encoder(transitions of the task), trained end to end.

Outer step, for a batch of tasks: a context of ``n ~ U{0..context_size}`` transitions and a TD
batch of ``batch_size`` transitions per task, both drawn from the task's replay buffer;
``z = encoder(context)`` (masked mean pooling; n = 0 gives the learned prior, i.e. the zero-shot
policy); loss = Huber TD of ``Q(s, z)`` with Double-DQN targets from the target pair
(target encoder + target Q-network, hard-copied every ``target_update_interval`` steps). The TD
gradient trains the encoder and the Q-network together.

Adaptation is inference: while acting, z is re-inferred after every step from the latest
``context_size`` transitions of the current task visit (starting from the prior).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from robot_meta.meta.config import ContextDQNConfig
from robot_meta.meta.dqn import double_dqn_targets, epsilon_greedy, hard_update, td_loss
from robot_meta.meta.eval.adapters import Adapter, ContextAdapter
from robot_meta.meta.replay import Transitions, stack_batches
from robot_meta.meta.rollout import EnvFactory, EpisodeStats, cached_env, run_episode
from robot_meta.meta.trainer import MetaTrainer
from robot_meta.meta.work import Spec, WorkResult, freeze_spec, worker_module
from robot_meta.policies import ContextEncoder, QNetwork
from robot_meta.runtime.manifest import ENCODER_FILE, ContextSpec, pack_transitions

if TYPE_CHECKING:
    from robot_meta.meta.run import TrainedRun

__all__ = ["ContextDQN"]


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
        z = enc(torch.zeros(0, enc.transition_dim))

    def act(obs: np.ndarray) -> int:
        with torch.inference_mode():
            q = qnet(torch.from_numpy(np.asarray(obs, dtype=np.float32)), z).numpy()
        return epsilon_greedy(q, item.epsilon, rng)

    def on_step(obs: np.ndarray, a: int, r: float, next_obs: np.ndarray, terminated: bool) -> None:
        nonlocal z
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


class ContextDQN(MetaTrainer[ContextDQNConfig]):
    """Context-conditioned DQN (a deterministic, mean-pooled PEARL-style encoder); adapting is inference."""

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
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.qnet.parameters()], lr=cfg.lr)

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
        )

    def _observe(self, new: Transitions) -> None:
        obs, next_obs = torch.from_numpy(new.obs), torch.from_numpy(new.next_obs)
        self.qnet.obs_norm.update(obs)
        self.encoder.update_normalizers(obs, next_obs)
        # Target networks share the current normalisation; only their weights lag behind.
        self.target.obs_norm.load_state_dict(self.qnet.obs_norm.state_dict())
        self.target_encoder.obs_norm.load_state_dict(self.encoder.obs_norm.state_dict())
        self.target_encoder.delta_norm.load_state_dict(self.encoder.delta_norm.state_dict())

    def _learn(self, task_ids: Sequence[int], results: Sequence[WorkResult]) -> dict[str, float]:
        cfg = self.config
        ready = [i for i, buf in enumerate(self.replay) if len(buf) > 0]
        sums: dict[str, float] = {}
        params = [*self.encoder.parameters(), *self.qnet.parameters()]
        for _ in range(cfg.updates_per_iteration):
            chosen = self.rng.choice(len(ready), size=min(cfg.update_batch_tasks, len(ready)), replace=False)
            tasks = [ready[int(i)] for i in chosen]
            ctx = stack_batches([self.replay[t].sample(cfg.context_size, self.rng) for t in tasks])
            sizes = torch.from_numpy(self.rng.integers(0, cfg.context_size + 1, size=len(tasks)))
            mask = (torch.arange(cfg.context_size).unsqueeze(0) < sizes.unsqueeze(1)).float()
            batch = stack_batches([self.replay[t].sample(cfg.batch_size, self.rng) for t in tasks])
            packed = self.encoder.pack(ctx.obs, ctx.actions, ctx.rewards, ctx.next_obs)
            z = self.encoder(packed, mask)
            q = self.qnet(batch.obs, z)
            with torch.no_grad():
                zt = self.target_encoder(packed, mask)
                y = double_dqn_targets(
                    batch.rewards,
                    batch.terminated,
                    self.qnet(batch.next_obs, z.detach()),
                    self.target(batch.next_obs, zt),
                    cfg.gamma,
                )
            loss = td_loss(q, batch.actions, y, cfg.huber_delta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            self.optimizer.step()
            self.updates += 1
            if self.updates % cfg.target_update_interval == 0:
                hard_update(self.target, self.qnet)
                hard_update(self.target_encoder, self.encoder)
            for k, v in {
                "losses/td": float(loss.detach()),
                "losses/grad_norm": grad_norm,
                "losses/z_norm": float(z.detach().norm(dim=-1).mean()),
            }.items():
                sums[k] = sums.get(k, 0.0) + v
        return {k: v / cfg.updates_per_iteration for k, v in sums.items()}

    def _models(self) -> dict[str, nn.Module]:
        return {
            "qnet": self.qnet,
            "encoder": self.encoder,
            "target": self.target,
            "target_encoder": self.target_encoder,
        }

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
