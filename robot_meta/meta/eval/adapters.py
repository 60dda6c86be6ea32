"""Per-algorithm adapters of the K-shot protocol: a policy plus its few-shot rule, as the protocol drives it.

Each algorithm names its adapters (`MetaTrainer.eval_adapters`); this module holds the rules they
are built from:

- `HeadAdapter`: `adapt_head` (or the context head rule, `adapt_context_head`) from the
  meta-trained head on the latest ``support_size`` shot transitions (MetaDQN; a Reptile policy
  under the device's head-only rule, ``reptile-head``);
- `ReptileAdapter`: `inner_dqn_updates` of the whole network after each shot (Reptile's inner loop,
  fresh Adam state per unit; also the fine-tuning baseline);
- `ContextAdapter`: z re-inferred after every shot step; evaluation uses z of the latest shots;
- `ExportAdapter`: an export directory under the on-device runtime (`AdaptivePolicy`), so the
  protocol scores exactly what ships;
- `StrikeAdapter`: the runtime's few-shot strike planner (`robot_meta.runtime.strike`), a posterior
  over particle tasks updated by each shot's observed strike.

Every adapter also acts as the policy was before any shot (`Adapter.act_unadapted`: the
meta-trained head, the meta-initialisation, the prior z, the runtime's meta-trained state), for
the protocol's paired no-adaptation control; it changes no state and draws from no stream.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from robot_meta.meta.adaptation import ContextHeadRule, GradientRule, adapt_with_rule, successor_flags
from robot_meta.meta.dqn import InnerDQN, epsilon_greedy, hard_update, inner_dqn_updates
from robot_meta.meta.replay import Transitions
from robot_meta.policies import ContextEncoder, QNetwork
from robot_meta.runtime.manifest import pack_transitions
from robot_meta.runtime.strike import StrikePlanner

if TYPE_CHECKING:
    from robot_meta.meta.strike import TravelModel
    from robot_meta.runtime import AdaptivePolicy

__all__ = [
    "Adapter",
    "ContextAdapter",
    "ExportAdapter",
    "HeadAdapter",
    "ReptileAdapter",
    "ShotRecorder",
    "StrikeAdapter",
    "StrikeOracleAdapter",
    "greedy_action",
    "head_basis",
]


def head_basis(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(head_basis, head_bias_basis)`` of a QNetwork built with ``head_context_dim > 0``, else None."""
    if getattr(net, "head_context_dim", 0):
        return net.head_basis, net.head_bias_basis  # type: ignore[return-value]
    return None


def greedy_action(q_values: np.ndarray) -> int:
    """`epsilon_greedy`'s greedy choice (lowest index on ties), drawing from no random stream."""
    return int(np.argmax(q_values))


@runtime_checkable
class Adapter(Protocol):
    """A policy plus its few-shot adaptation, as the protocol drives it.

    ``begin(task, rng)`` starts a unit from the un-adapted policy (`rng` is the unit's exploration
    stream); ``observe`` receives each shot transition; ``adapt()`` runs after each shot episode;
    ``act(obs, greedy)`` chooses an action (``greedy=False``: the policy's own exploration);
    ``act_unadapted(obs)`` is the greedy action of the policy as it was at ``begin`` (before any
    shot), whatever has been observed and adapted since: it must change no state and draw from no
    random stream (the protocol's paired control runs it between the adapted episodes and the
    next shot, and the adapted numbers must not depend on it).
    """

    uses_shots: bool

    def begin(self, task: Any, rng: np.random.Generator) -> None: ...

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None: ...

    def adapt(self) -> None: ...

    def act(self, obs: np.ndarray, greedy: bool) -> int: ...

    def act_unadapted(self, obs: np.ndarray) -> int: ...


class ShotRecorder:
    """Base of the adapters: the unit's shot transitions, its exploration stream, epsilon-greedy choice."""

    uses_shots = True

    def __init__(self, epsilon: float) -> None:
        self.epsilon = float(epsilon)
        self.rng = np.random.default_rng(0)
        self._rows: list[tuple[np.ndarray, int, float, np.ndarray, float]] = []

    def _begin(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._rows = []

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        self._rows.append(
            (
                np.asarray(obs, np.float32),
                int(action),
                float(reward),
                np.asarray(next_obs, np.float32),
                float(terminated),
            )
        )

    def shots(self, last: int | None = None) -> Transitions:
        rows = self._rows if last is None else self._rows[-last:]
        return Transitions(
            np.asarray([r[0] for r in rows], np.float32),
            np.asarray([r[1] for r in rows], np.int64),
            np.asarray([r[2] for r in rows], np.float32),
            np.asarray([r[3] for r in rows], np.float32),
            np.asarray([r[4] for r in rows], np.float32),
        )

    def _choose(self, q: np.ndarray, greedy: bool) -> int:
        return epsilon_greedy(q, 0.0 if greedy else self.epsilon, self.rng)


def _obs_tensor(obs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(obs, dtype=np.float32))


class HeadAdapter(ShotRecorder):
    """MetaDQN's adaptation (and a Reptile policy's on the device): `adapt_head` on the latest shots.

    Every ``adapt()`` starts again from the meta-trained head ``(W_0, b_0)`` on the latest
    ``support_size`` shot transitions (the training worker's and the device's rule).
    """

    def __init__(self, policy: QNetwork, rule: GradientRule, support_size: int, epsilon: float) -> None:
        super().__init__(epsilon)
        self.policy = policy
        self.rule = rule
        basis = head_basis(policy)
        if isinstance(rule, ContextHeadRule) and (basis is None or basis[0].shape[0] != rule.context_dim):
            raise ValueError(
                f"the context head rule needs a QNetwork with head_context_dim={rule.context_dim}"
            )
        self.basis = None if basis is None else (basis[0].detach(), basis[1].detach())
        self.support_size = int(support_size)
        self.w0 = policy.head.weight.detach().numpy().copy()
        self.b0 = policy.head.bias.detach().numpy().copy()
        self.w, self.b = self.w0, self.b0

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self._begin(rng)
        self.w, self.b = self.w0, self.b0

    def adapt(self) -> None:
        sup = self.shots(self.support_size).to_batch()
        if len(sup.obs) == 0:
            return
        with torch.inference_mode():
            w, b = adapt_with_rule(
                self.rule,
                torch.from_numpy(self.w0),
                torch.from_numpy(self.b0),
                self.policy.features(sup.obs),
                sup.actions,
                sup.rewards,
                self.policy.features(sup.next_obs),
                sup.terminated,
                basis=None if self.basis is None else self.basis[0],
                bias_basis=None if self.basis is None else self.basis[1],
                successor=successor_flags(sup.obs, sup.next_obs) if self.rule.n_step > 1 else None,
            )
        self.w, self.b = w.numpy(), b.numpy()

    def _q(self, obs: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            f = self.policy.features(_obs_tensor(obs)).numpy()
        q: np.ndarray = w @ f + b
        return q

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        return self._choose(self._q(obs, self.w, self.b), greedy)

    def act_unadapted(self, obs: np.ndarray) -> int:
        """Greedy with the meta-trained head ``(W_0, b_0)``."""
        return greedy_action(self._q(obs, self.w0, self.b0))


class ReptileAdapter(ShotRecorder):
    """A short Double-DQN of the whole network on the shots (Reptile's inner loop), from theta per unit.

    `network` maps a float tensor ``(N, obs_dim)`` to Q-values ``(N, A)``: our `QNetwork`, or the
    Q-network of an SB3 ``DQN`` (fine-tuning baseline).
    """

    def __init__(self, network: nn.Module, inner: InnerDQN, epsilon: float) -> None:
        super().__init__(epsilon)
        self.theta = copy.deepcopy(network).requires_grad_(False)
        self.inner = inner
        self.phi = copy.deepcopy(network)
        self.target = copy.deepcopy(network).requires_grad_(False)
        self.opt: torch.optim.Optimizer | None = None
        self.steps = 0

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self._begin(rng)
        hard_update(self.phi, self.theta)
        hard_update(self.target, self.theta)
        self.phi.requires_grad_(True)
        self.opt = torch.optim.Adam(self.phi.parameters(), lr=self.inner.lr, betas=(0.0, 0.999))
        self.steps = 0

    def adapt(self) -> None:
        data = self.shots()
        if len(data) == 0 or self.opt is None:
            return
        _, self.steps = inner_dqn_updates(
            self.phi, self.target, self.opt, data, self.rng, self.inner, self.steps
        )

    @staticmethod
    def _q(network: nn.Module, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            q: np.ndarray = network(_obs_tensor(obs).unsqueeze(0))[0].numpy()
        return q

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        return self._choose(self._q(self.phi, obs), greedy)

    def act_unadapted(self, obs: np.ndarray) -> int:
        """Greedy with theta, the network every unit starts from (the meta-initialisation)."""
        return greedy_action(self._q(self.theta, obs))


class ContextAdapter(ShotRecorder):
    """ContextDQN: z re-inferred after every shot step; evaluation uses z of the latest shots, frozen."""

    def __init__(self, policy: QNetwork, encoder: ContextEncoder, context_size: int, epsilon: float) -> None:
        super().__init__(epsilon)
        self.policy, self.encoder = policy, encoder
        self.context_size = int(context_size)
        with torch.inference_mode():
            self.prior = encoder(torch.zeros(0, encoder.transition_dim))
        self.z = self.prior
        self._packed: list[np.ndarray] = []

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self._begin(rng)
        self.z = self.prior
        self._packed = []

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        super().observe(obs, action, reward, next_obs, terminated)
        row = pack_transitions(
            obs, np.array([int(action)]), np.array([reward]), next_obs, self.encoder.n_actions
        )
        self._packed.append(row[0])
        self.adapt()

    def adapt(self) -> None:
        if self._packed:
            with torch.inference_mode():
                self.z = self.encoder(torch.from_numpy(np.stack(self._packed[-self.context_size :])))

    def _q(self, obs: np.ndarray, z: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            q: np.ndarray = self.policy(_obs_tensor(obs), z).numpy()
        return q

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        return self._choose(self._q(obs, self.z), greedy)

    def act_unadapted(self, obs: np.ndarray) -> int:
        """Greedy with the prior z (the encoder's output on no transitions)."""
        return greedy_action(self._q(obs, self.prior))


class ExportAdapter:
    """An export directory under the on-device runtime: `AdaptivePolicy` acts, observes and adapts.

    ``begin`` resets the adaptation (meta-trained head, prior z, empty buffer); ``adapt`` is
    `AdaptivePolicy.adapt` after each shot (for a context export, after every shot step, as the
    ``context`` adapter and ``robot-meta adapt`` do). Exploration is epsilon-greedy on the runtime's
    Q-values with the run's final epsilon (``train.config.epsilon_end`` of the manifest).
    """

    uses_shots = True

    def __init__(self, policy: AdaptivePolicy, epsilon: float | None = None) -> None:
        self.policy = policy
        cfg = policy.manifest.train_config
        self.epsilon = float(cfg.get("epsilon_end", 0.05)) if epsilon is None else float(epsilon)
        self.every_step = policy.manifest.context is not None
        self.rng = np.random.default_rng(0)

    @classmethod
    def load(cls, directory: str | Path, epsilon: float | None = None) -> ExportAdapter:
        from robot_meta.runtime import AdaptivePolicy

        return cls(AdaptivePolicy.load(directory), epsilon)

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self.rng = rng
        self.policy.reset_adaptation()

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        self.policy.observe(obs, int(action), float(reward), next_obs, bool(terminated))
        if self.every_step:
            self.policy.adapt()

    def adapt(self) -> None:
        self.policy.adapt()

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        q = self.policy.q_values(np.asarray(obs, np.float32))
        return epsilon_greedy(np.asarray(q).reshape(-1), 0.0 if greedy else self.epsilon, self.rng)

    def act_unadapted(self, obs: np.ndarray) -> int:
        """Greedy with the runtime's meta-trained state (`AdaptivePolicy.meta_q_values`)."""
        return greedy_action(np.asarray(self.policy.meta_q_values(np.asarray(obs, np.float32))).reshape(-1))


class StrikeAdapter:
    """A `StrikePlanner` under the protocol: the shots' strikes move its posterior; no exploration
    (the planner's own choice is informative, and it holds after the strike)."""

    uses_shots = True

    def __init__(self, planner: StrikePlanner) -> None:
        self.planner = copy.deepcopy(planner)  # one per unit: the protocol's units never share a posterior

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        self.planner.reset_adaptation()

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        self.planner.observe(obs, action, reward, next_obs, terminated)

    def adapt(self) -> None:  # called once per shot, at its end
        self.planner.end_episode()  # a strike still moving at the time limit counts, censored
        self.planner.adapt()  # the strikes observed in the shot move the posterior

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        return self.planner.act(obs)

    def act_unadapted(self, obs: np.ndarray) -> int:
        return self.planner.act_prior(obs)


class StrikeOracleAdapter:
    """The strike planner's privileged oracle under the protocol: at each unit's `begin` the planner is
    rebuilt over the one task the travel model predicts for the unit's true parameters
    (`robot_meta.meta.strike.privileged_planner`); it plays its rule from there and takes no shots
    (``uses_shots = False``, like the SB3 oracle)."""

    uses_shots = False

    def __init__(self, planner: StrikePlanner, model: TravelModel) -> None:
        self.base, self.model = planner, model
        self.planner = planner

    def begin(self, task: Any, rng: np.random.Generator) -> None:
        from robot_meta.meta.strike import privileged_planner

        self.planner = privileged_planner(self.base, self.model, task)

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        return None

    def adapt(self) -> None:
        return None

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        return self.planner.act(obs)

    def act_unadapted(self, obs: np.ndarray) -> int:
        return self.planner.act(obs)
