"""Typed, frozen configurations of the meta-learning algorithms, their budgets and JSON round-trip.

Every field has a one-line docstring and is validated in ``__post_init__`` (a `ValueError`
naming the field, the value and what is allowed). ``--budget smoke|small|full`` picks the sizes
(`make_config`): ``smoke`` finishes in seconds (tests), ``small`` in a few minutes, ``full`` in
about 15 minutes for one algorithm on one Panda task family on a 2-core machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args

from robot_meta.checks import MAX_SEED

__all__ = [
    "BUDGETS",
    "AlgoName",
    "Budget",
    "ContextDQNConfig",
    "MetaConfig",
    "MetaDQNConfig",
    "ReptileConfig",
    "config_class",
    "config_from_dict",
    "make_config",
    "parse_override",
]

#: A registered algorithm's name (`robot_meta.meta.registry.ALGO_NAMES` lists them).
AlgoName = str
Budget = Literal["smoke", "small", "full"]
BUDGETS: tuple[Budget, ...] = get_args(Budget)

C = TypeVar("C", bound="MetaConfig")


def _fail(cls: str, name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{cls}.{name}={value!r} is invalid: {allowed}")


@dataclass(frozen=True)
class MetaConfig:
    """Fields shared by every algorithm: environment, task pool, loop sizes, DQN basics, bookkeeping."""

    algo: ClassVar[AlgoName]

    env_id: str = "robot_meta/PandaPush-v0"
    """Gymnasium id of the environment (made with ``action_mode="discrete"``)."""
    preset: str = "push"
    """`TaskDistribution` preset whose ``train`` split the task pool is drawn from."""
    seed: int = 0
    """Seed of everything (task pool, networks, exploration, environment resets)."""
    budget: Budget = "small"
    """Budget the sizes below were chosen for (a label; the sizes are what counts)."""
    num_tasks: int = 16
    """Size of the pool of training tasks drawn once from the train split (one replay buffer each)."""
    meta_iterations: int = 60
    """Number of meta-iterations (collect on a batch of tasks, then update)."""
    meta_batch_size: int = 4
    """Tasks visited (collected on) per meta-iteration."""
    episodes_per_task: int = 2
    """Episodes per task visit: the first with the meta-policy (zero-shot), the rest adapted."""
    hidden: tuple[int, ...] = (64, 64)
    """Widths of the Q-network trunk; the last is the feature size the head sees."""
    feature_activation: Literal["relu", "tanh"] = "tanh"
    """Activation of the last trunk layer (tanh: signed, bounded features for head adaptation)."""
    gamma: float = 0.98
    """Discount factor."""
    huber_delta: float = 1.0
    """Threshold of the Huber TD loss."""
    epsilon_start: float = 1.0
    """Exploration rate at the first iteration."""
    epsilon_end: float = 0.05
    """Exploration rate after the decay."""
    epsilon_fraction: float = 0.3
    """Fraction of meta_iterations over which epsilon decays linearly."""
    buffer_capacity: int = 20_000
    """Transitions kept per task (ring buffer)."""
    learning_starts: int = 1_000
    """Environment steps collected before the first update."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip of every optimiser step."""
    checkpoint_interval: int = 10
    """Meta-iterations between checkpoints (the last iteration is always saved)."""
    end_when_decided: bool = False
    """Training episodes end once their outcome is decided (the env option of that name: in slide,
    a struck puck at rest off the goal; the last reward pays the idle steps). Only collection during
    meta-training changes; evaluation and the device run the plain env."""

    def __post_init__(self) -> None:
        cls = type(self).__name__
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            hint = hints[f.name]
            if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise _fail(cls, f.name, value, "must be an int")
            if hint is float:
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise _fail(cls, f.name, value, "must be a finite number")
                object.__setattr__(self, f.name, float(value))
            if hint is bool and not isinstance(value, bool):
                raise _fail(cls, f.name, value, "must be true or false")
            if typing.get_origin(hint) is tuple:
                if isinstance(value, str) or not isinstance(value, tuple | list):
                    raise _fail(cls, f.name, value, "must be a sequence of positive ints, e.g. (64, 64)")
                object.__setattr__(self, f.name, tuple(value))
        if not isinstance(self.env_id, str) or not self.env_id:
            raise _fail(
                cls, "env_id", self.env_id, "must be a Gymnasium id such as 'robot_meta/PandaPush-v0'"
            )
        if not isinstance(self.preset, str) or not self.preset:
            raise _fail(cls, "preset", self.preset, "must be a task-distribution preset name such as 'push'")
        if self.feature_activation not in ("relu", "tanh"):
            raise _fail(cls, "feature_activation", self.feature_activation, "choose 'relu' or 'tanh'")
        if self.budget not in BUDGETS:
            raise _fail(cls, "budget", self.budget, f"choose one of {list(BUDGETS)}")
        self._positive(
            "num_tasks",
            "meta_iterations",
            "meta_batch_size",
            "episodes_per_task",
            "buffer_capacity",
            "checkpoint_interval",
        )
        if not 0 <= self.seed <= MAX_SEED:
            raise _fail(cls, "seed", self.seed, f"must be in [0, {MAX_SEED}] (what numpy and torch accept)")
        if self.learning_starts < 0:
            raise _fail(cls, "learning_starts", self.learning_starts, "must be >= 0")
        if not self.hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in self.hidden
        ):
            raise _fail(
                cls, "hidden", self.hidden, "must be a non-empty sequence of positive ints, e.g. (64, 64)"
            )
        self._in_range("gamma", 0.0, 1.0)
        self._in_range("epsilon_start", 0.0, 1.0)
        self._in_range("epsilon_end", 0.0, 1.0)
        self._in_range("epsilon_fraction", 0.0, 1.0)
        self._positive("huber_delta", "max_grad_norm")

    def _positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not value > 0:
                raise _fail(type(self).__name__, name, value, "must be > 0")

    def _in_range(self, name: str, lo: float, hi: float) -> None:
        value = getattr(self, name)
        if not lo <= value <= hi:
            raise _fail(type(self).__name__, name, value, f"must be in [{lo}, {hi}]")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (tuples become lists); `config_from_dict` inverts it."""
        out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return out

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; allowed {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def budget_sizes(cls, budget: Budget) -> dict[str, Any]:
        """Field values that define `budget` for this algorithm (on top of the defaults)."""
        common: dict[Budget, dict[str, Any]] = {
            "smoke": dict(num_tasks=4, meta_iterations=4, meta_batch_size=2, episodes_per_task=2,
                          learning_starts=100, checkpoint_interval=2, buffer_capacity=2_000),
            "small": dict(num_tasks=16, meta_iterations=60, meta_batch_size=4, episodes_per_task=2,
                          learning_starts=1_000, checkpoint_interval=10, buffer_capacity=10_000),
            "full": dict(num_tasks=32, meta_iterations=200, meta_batch_size=8, episodes_per_task=2,
                         learning_starts=2_000, checkpoint_interval=25, buffer_capacity=20_000),
        }  # fmt: skip
        if budget not in common:
            raise ValueError(f"unknown budget {budget!r}: choose one of {list(BUDGETS)}")
        return dict(common[budget], budget=budget)


@dataclass(frozen=True)
class _OuterDQNConfig(MetaConfig):
    """Fields of the algorithms whose outer loop is gradient descent on TD losses from the task buffers."""

    lr: float = 1e-3
    """Adam learning rate of the outer (meta) update."""
    updates_per_iteration: int = 32
    """Outer gradient steps per meta-iteration."""
    update_batch_tasks: int = 8
    """Tasks per outer gradient step (fewer if fewer tasks hold data yet)."""
    target_update_interval: int = 250
    """Outer gradient steps between hard copies of the online networks into the target networks."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive("lr", "updates_per_iteration", "update_batch_tasks", "target_update_interval")


@dataclass(frozen=True)
class MetaDQNConfig(_OuterDQNConfig):
    """`MetaDQN`: MAML over the head adaptation rule (`robot_meta.meta.adaptation`)."""

    algo: ClassVar[AlgoName] = "meta-dqn"

    inner_steps: int = 5
    """K: TD steps of the head adaptation rule (inner loop, and on the device)."""
    inner_lr: float = 0.01
    """alpha: SGD step size of the head adaptation rule (0.05 flipped greedy actions on Panda Reach)."""
    inner_n_step: int = 1
    """n of the head adaptation rule's n-step TD targets (1 = one-step; see `HeadAdaptation.n_step`)."""
    support_size: int = 64
    """Transitions in a support set (inner loop); during collection, the most recent ones of the visit."""
    query_size: int = 128
    """Transitions in a query set (outer loss), drawn uniformly from the task's replay buffer."""
    support_bank_size: int = 32
    """Support sets kept per task: the visit prefixes collection adapted on, reused as outer-loop supports."""
    first_order: bool = False
    """Drop the second-order terms (FOMAML): the adapted head's gradient is applied to the meta head."""
    zero_shot_weight: float = 0.25
    """Weight of the un-adapted head's TD loss on the query set (keeps the zero-shot policy useful)."""
    inner_rule: Literal["head_td", "context_td"] = "head_td"
    """The device rule: ``head_td`` (K TD steps on the head, `HeadRule`) or ``context_td`` (K steps on a
    context vector c entering the head bilinearly, `ContextHeadRule`: every action's value moves)."""
    context_dim: int = 4
    """D: size of c of the ``context_td`` rule (ignored by ``head_td``)."""
    context_lr: float = 0.5
    """alpha of the ``context_td`` rule: step size on c (``head_td`` uses ``inner_lr``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive(
            "inner_steps", "inner_lr", "inner_n_step", "support_size", "query_size", "support_bank_size",
            "context_dim", "context_lr",
        )  # fmt: skip
        if self.inner_rule not in ("head_td", "context_td"):
            raise _fail(
                type(self).__name__, "inner_rule", self.inner_rule, "choose 'head_td' or 'context_td'"
            )
        if self.zero_shot_weight < 0:
            raise _fail(type(self).__name__, "zero_shot_weight", self.zero_shot_weight, "must be >= 0")

    @classmethod
    def budget_sizes(cls, budget: Budget) -> dict[str, Any]:
        sizes = super().budget_sizes(budget)
        sizes.update(
            {
                "smoke": dict(updates_per_iteration=4, update_batch_tasks=2, support_size=32, query_size=32),
                "small": dict(updates_per_iteration=32, update_batch_tasks=8),
                "full": dict(updates_per_iteration=64, update_batch_tasks=8),
            }[budget]
        )
        return sizes


@dataclass(frozen=True)
class ReptileConfig(MetaConfig):
    """`Reptile`: first-order meta-learning over full-network DQN inner loops."""

    algo: ClassVar[AlgoName] = "reptile"

    episodes_per_task: int = 3
    """Episodes per task visit; the inner DQN updates run after each one."""
    inner_lr: float = 1e-3
    """Adam learning rate of the inner DQN loop (beta1 = 0, fresh state per task visit)."""
    inner_updates_per_episode: int = 20
    """Inner DQN gradient steps after each collected episode."""
    inner_batch_size: int = 64
    """Transitions per inner gradient step."""
    inner_pool_size: int = 1_000
    """Transitions of the task's replay buffer handed to the inner loop besides the fresh ones."""
    inner_target_interval: int = 25
    """Inner gradient steps between hard copies into the inner target network."""
    meta_lr_start: float = 1.0
    """Outer step size epsilon at the first iteration (theta += epsilon * mean(phi - theta))."""
    meta_lr_end: float = 0.1
    """Outer step size at the last iteration (annealed linearly)."""
    adapt_steps: int = 5
    """K of the head adaptation rule used on the device for a Reptile policy."""
    adapt_lr: float = 0.01
    """alpha of the head adaptation rule used on the device for a Reptile policy."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive(
            "inner_lr",
            "inner_updates_per_episode",
            "inner_batch_size",
            "inner_target_interval",
            "adapt_steps",
            "adapt_lr",
        )
        if self.inner_pool_size < 0:
            raise _fail(type(self).__name__, "inner_pool_size", self.inner_pool_size, "must be >= 0")
        self._in_range("meta_lr_start", 0.0, 1.0)
        self._in_range("meta_lr_end", 0.0, 1.0)
        if self.meta_lr_start == 0.0 and self.meta_lr_end == 0.0:
            raise _fail(
                type(self).__name__,
                "meta_lr_start",
                0.0,
                "and meta_lr_end cannot both be 0 (nothing would be learned)",
            )

    @classmethod
    def budget_sizes(cls, budget: Budget) -> dict[str, Any]:
        sizes = super().budget_sizes(budget)
        sizes.update(
            {
                "smoke": dict(episodes_per_task=2, inner_updates_per_episode=4, inner_pool_size=200),
                "small": dict(episodes_per_task=3, inner_updates_per_episode=20),
                "full": dict(episodes_per_task=3, inner_updates_per_episode=15, meta_iterations=180),
            }[budget]
        )
        return sizes


@dataclass(frozen=True)
class ContextDQNConfig(_OuterDQNConfig):
    """`ContextDQN`: Q(s, z) with z = encoder(transitions of the task), trained end to end."""

    algo: ClassVar[AlgoName] = "context"

    latent_dim: int = 8
    """Size of the task embedding z."""
    encoder_hidden: tuple[int, ...] = (64, 64)
    """Widths of the per-transition MLP of the context encoder."""
    context_size: int = 64
    """Most transitions the encoder sees (training draws 0..context_size; acting uses the latest ones)."""
    batch_size: int = 64
    """TD transitions per task per outer gradient step."""
    n_step: int = 1
    """n of the n-step Double-DQN targets (summed along each stored episode; 1 = one-step)."""
    teacher: bool = True
    """RMA-style training: Q(s, z) learns with z = an embedding of the task's true parameters and the
    encoder regresses that embedding from transitions (false: encoder and Q trained end to end by TD)."""
    teacher_hidden: int = 64
    """Width of the hidden layer of the parameter embedding (``teacher`` only)."""
    teacher_dropout: float = 0.3
    """Probability that a TD sample uses the prior z (the encoder's empty-context output) instead of
    the true-parameter embedding, so the zero-shot policy is learned too (``teacher`` only)."""
    encoder_visits: float = 0.3
    """Fraction of task visits acted with the encoder's z re-inferred after every step, as on the
    device; the others act with the true-parameter embedding (``teacher`` only)."""
    regression_weight: float = 1.0
    """Weight of the encoder's mean-squared regression onto the (stop-gradient) embedding (``teacher`` only)."""
    advantage_alpha: float = 0.0
    """Advantage learning's alpha: TD targets minus alpha x the target network's action gap at s
    (widens the gap between the best action and the others; 0 = plain Double DQN)."""
    hindsight_fraction: float = 0.0
    """Fraction of TD samples whose goal is relabelled to one their episode achieved later (HER's
    ``future``, `robot_meta.meta.hindsight`; the encoder's context is never relabelled; 0 = off)."""
    episode_start_fraction: float = 0.0
    """Fraction of TD samples replaced by the first transition of their episode (the decision step,
    e.g. slide's first strike, is then more of each batch; 0 = uniform sampling)."""
    outcome_weight: float = 0.0
    """Weight of an auxiliary outcome loss: a linear head on the Q-network's trunk predicts, for every
    action, how far taking it moves the achieved goal (the object) by ``outcome_horizon`` steps later
    or the episode's end, trained by mean squared error on the taken action (a z-conditioned model of
    the task's physics that shapes the trunk TD reads; needs an achieved goal in the observation, so
    not reach; 0 = off)."""
    outcome_horizon: int = 50
    """Steps after an action at which its outcome (the achieved-goal displacement) is read."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive(
            "latent_dim", "context_size", "batch_size", "n_step", "teacher_hidden", "regression_weight",
            "outcome_horizon",
        )  # fmt: skip
        if not self.outcome_weight >= 0:  # NaN fails too
            raise _fail(type(self).__name__, "outcome_weight", self.outcome_weight, "must be >= 0")
        self._in_range("teacher_dropout", 0.0, 1.0)
        self._in_range("encoder_visits", 0.0, 1.0)
        self._in_range("hindsight_fraction", 0.0, 1.0)
        self._in_range("episode_start_fraction", 0.0, 1.0)
        self._in_range("advantage_alpha", 0.0, 1.0)
        if not self.encoder_hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in self.encoder_hidden
        ):
            raise _fail(
                type(self).__name__,
                "encoder_hidden",
                self.encoder_hidden,
                "must be a non-empty sequence of positive ints",
            )

    @classmethod
    def budget_sizes(cls, budget: Budget) -> dict[str, Any]:
        sizes = super().budget_sizes(budget)
        # small/full: the quick loop's RMA setting (benchmarks/research/context_quickloop.py): tasks
        # fresh from the train distribution at almost every visit (a large pool, small buffers),
        # about 0.5 updates of 128 samples per env step, 10-step targets, a 128x128 ReLU trunk.
        learner: dict[str, Any] = dict(
            buffer_capacity=400, meta_batch_size=8, episodes_per_task=2, learning_starts=2_000,
            hidden=(128, 128), feature_activation="relu", lr=5e-4, updates_per_iteration=400,
            update_batch_tasks=8, batch_size=16, target_update_interval=1_000, n_step=10,
        )  # fmt: skip
        per_budget: dict[str, dict[str, Any]] = {
            "smoke": dict(
                updates_per_iteration=4, update_batch_tasks=2, context_size=16, batch_size=32, n_step=10
            ),
            "small": dict(learner, num_tasks=256, meta_iterations=30, checkpoint_interval=10),
            "full": dict(learner, num_tasks=512, meta_iterations=80, checkpoint_interval=20),
        }
        sizes.update(per_budget[budget])
        return sizes


def config_class(algo: str) -> type[MetaConfig]:
    """The config class of the registered algorithm `algo` (`robot_meta.meta.registry`)."""
    from robot_meta.meta.registry import algorithm

    return algorithm(algo).config_cls


def config_from_dict(algo: str, data: Mapping[str, Any]) -> MetaConfig:
    """Rebuild a config from ``config.json``'s ``config`` entry."""
    return config_class(algo).from_dict(data)


def parse_override(cls: type[MetaConfig], item: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` for a field of `cls`; VALUE is JSON (``0.01``, ``[128, 128]``, ``true``) or a bare string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    fields = {f.name for f in dataclasses.fields(cls)}
    if not sep or not key:
        raise ValueError(f"override {item!r} must look like KEY=VALUE, e.g. lr=0.0003")
    if key not in fields:
        raise ValueError(f"{cls.__name__} has no field {key!r}: choose one of {sorted(fields)}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    hint = typing.get_type_hints(cls)[key]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # 1e5 means 100000
    return key, value


def make_config(
    algo: str,
    *,
    budget: Budget = "small",
    env_id: str = "robot_meta/PandaPush-v0",
    preset: str = "push",
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> MetaConfig:
    """The config of `algo` for `budget`, with explicit `overrides` applied last (validated)."""
    cls = config_class(algo)
    values: dict[str, Any] = cls.budget_sizes(budget)
    values.update(env_id=env_id, preset=preset, seed=seed)
    values.update(overrides or {})
    return cls.from_dict(values)
