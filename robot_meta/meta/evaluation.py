r"""Meta-World-style K-shot evaluation on held-out tasks (`evaluate`) and its statistics.

The protocol, for every evaluation seed ``s`` and every task ``i`` of the ``num_tasks`` tasks drawn
from the split with that seed (one *unit* = one (task, seed) pair):

1. ``adapter.begin(task)``; the env is seeded once for the unit (its first reset), every later
   reset continues the env's own seeded RNG (a seeded reset rebuilds the PyBullet world);
2. for ``k = 0 .. max(shots)``: if ``k`` is one of the requested shots, run ``episodes`` greedy
   evaluation episodes with the policy as adapted after ``k`` shots (nothing is observed during
   them) and record their success rate and mean return, and the number of target-task
   transitions seen so far (``target_transitions``); then collect shot ``k + 1`` with the
   policy's own exploration (``act(obs, greedy=False)``), ``observe`` every transition and call
   ``adapt()``.

Shots are therefore nested: the policy evaluated after 5 shots has seen the 1-shot policy's shot
plus four more, exactly as a robot that keeps adapting would (and it costs ``max(shots)`` shot
episodes per unit instead of ``sum(shots)``). What "adapt" means is the algorithm's own rule, the
one its training worker uses between the episodes of a task visit:

- ``meta-dqn``: `adapt_head` from the meta-trained head on the latest ``support_size`` transitions;
- ``reptile``: ``inner_updates_per_episode`` Double-DQN steps of the whole network after each shot
  (the training inner loop, fresh Adam state per unit); ``reptile-head``: the device's head-only rule
  (`adapt_head` with the run's `HeadAdaptation`) instead, so the cost of that simplification shows;
- ``context``: z re-inferred after every shot step (the policy explores with its current belief);
  evaluation episodes use z encoded from the latest ``context_size`` shot transitions, frozen.

A method whose policy does not adapt (``uses_shots = False``: domain randomisation, the oracle) is
evaluated once per unit and the same numbers are reported for every K (``target_transitions`` 0).

Statistics: for each K, a unit's score is the success rate (and mean return) of its evaluation
episodes; the reported value is the mean over units, with a two-sided 95 % Student-t interval over
units, ``mean +- t_{0.975, n-1} s / sqrt(n)`` (``s`` the sample standard deviation, ``n`` the number
of units). Success intervals are clipped to [0, 1]. With one unit the interval is undefined (NaN,
``null`` in JSON). The t interval treats tasks and seeds as the random units (the question is "how
well does it do on a new task"); episodes within a unit are averaged first, so the interval is not
made falsely narrow by many episodes of one task.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from robot_meta.meta.adaptation import HeadAdaptation, adapt_head, successor_flags
from robot_meta.meta.dqn import double_dqn_targets, epsilon_greedy, hard_update, td_loss
from robot_meta.meta.replay import Transitions
from robot_meta.meta.rollout import EnvFactory, GymEnvFactory, TaskSampler, cached_env, run_episode
from robot_meta.meta.trainer import task_to_dict
from robot_meta.policies import ContextEncoder, QNetwork

if TYPE_CHECKING:
    from robot_meta.meta.run import TrainedRun
    from robot_meta.meta.trainer import MetaTrainer

__all__ = [
    "DEFAULT_SHOTS",
    "EVAL_FILE",
    "PLOT_FILE",
    "SPLITS",
    "Adapter",
    "AdapterMethod",
    "ContextAdapter",
    "InnerDQN",
    "EvalResult",
    "EvalSplit",
    "HeadAdapter",
    "KShotStats",
    "Method",
    "MethodResult",
    "ReptileAdapter",
    "ShotRecorder",
    "UnitResult",
    "aggregate",
    "evaluate",
    "evaluate_episodes",
    "evaluation_tasks",
    "load_eval",
    "mean_ci",
    "methods_for_run",
    "plot_success",
    "run_methods",
    "t_quantile_975",
    "unit_seeds",
]

log = logging.getLogger(__name__)

EvalSplit = Literal["train", "test", "interp", "ood"]
SPLITS: tuple[EvalSplit, ...] = get_args(EvalSplit)
DEFAULT_SHOTS: tuple[int, ...] = (0, 1, 5, 10)
EVAL_FILE = "eval.json"
PLOT_FILE = "eval.png"

# -- statistics ---------------------------------------------------------------------------------------

#: t_{0.975, df} for df = 1..30 (standard table values).
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom (two-sided 95 % intervals).

    Exact table values for df <= 30; beyond, the Cornish-Fisher expansion around the normal
    quantile (error below 1e-5 for df > 30).
    """
    if df < 1:
        raise ValueError(f"t_quantile_975 needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def mean_ci(values: Sequence[float], bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of `values` and its two-sided 95 % Student-t interval.

    One value gives ``(x, nan, nan)``; `bounds` clips the interval (e.g. ``(0, 1)`` for rates).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = t_quantile_975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return mean, lo, hi


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitResult:
    """One (task, seed) unit after K shots."""

    seed: int
    task_index: int
    k: int
    success: float
    """Success rate of the unit's evaluation episodes."""
    ret: float
    """Mean return of the unit's evaluation episodes."""
    target_transitions: int
    """Transitions of the target task seen before the evaluation episodes."""
    task: Any = None
    """JSON description of the task."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "task_index": self.task_index,
            "k": self.k,
            "success": self.success,
            "return": self.ret,
            "target_transitions": self.target_transitions,
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitResult:
        return cls(
            int(data["seed"]),
            int(data["task_index"]),
            int(data["k"]),
            float(data["success"]),
            float(data["return"]),
            int(data["target_transitions"]),
            data.get("task"),
        )


@dataclass(frozen=True)
class KShotStats:
    """Success and return after K shots, over units, with 95 % t intervals."""

    k: int
    success: float
    ci_low: float
    ci_high: float
    ret: float
    ret_ci_low: float
    ret_ci_high: float
    target_transitions: int
    """Mean over units of the target-task transitions seen before evaluation (rounded)."""
    n_units: int

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "success": self.success,
            "ci_low": num(self.ci_low),
            "ci_high": num(self.ci_high),
            "return": self.ret,
            "return_ci_low": num(self.ret_ci_low),
            "return_ci_high": num(self.ret_ci_high),
            "target_transitions": self.target_transitions,
            "n_units": self.n_units,
        }


@dataclass(frozen=True)
class MethodResult:
    """One method's per-K statistics and the unit results they come from."""

    name: str
    per_k: dict[int, KShotStats]
    units: tuple[UnitResult, ...]
    wall_time: float
    """Seconds spent evaluating (and, for scratch, training on the target task)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "K": {str(k): s.to_dict() for k, s in sorted(self.per_k.items())},
            "wall_time": self.wall_time,
            "units": [u.to_dict() for u in self.units],
        }


def aggregate(name: str, units: Sequence[UnitResult], wall_time: float = 0.0) -> MethodResult:
    """Per-K means and 95 % t intervals over the (task, seed) units of one method."""
    per_k: dict[int, KShotStats] = {}
    for k in sorted({u.k for u in units}):
        us = [u for u in units if u.k == k]
        s, s_lo, s_hi = mean_ci([u.success for u in us], bounds=(0.0, 1.0))
        r, r_lo, r_hi = mean_ci([u.ret for u in us])
        tt = round(float(np.mean([u.target_transitions for u in us])))
        per_k[k] = KShotStats(k, s, s_lo, s_hi, r, r_lo, r_hi, tt, len(us))
    return MethodResult(name, per_k, tuple(units), wall_time)


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` returns and writes to ``eval.json``."""

    split: str
    shots: tuple[int, ...]
    episodes: int
    seeds: tuple[int, ...]
    num_tasks: int
    methods: dict[str, MethodResult]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "shots": list(self.shots),
            "episodes": self.episodes,
            "seeds": list(self.seeds),
            "num_tasks": self.num_tasks,
            "protocol": (
                "per (task, seed) unit: shots collected with the policy's own exploration, adapt after "
                "each; greedy evaluation episodes after K shots; mean over units with 95% Student-t CI"
            ),
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            **self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the JSON (atomically) and return its path."""
        from robot_meta.meta.checkpoint import write_json_atomic

        out = Path(path)
        write_json_atomic(out, _finite(self.to_dict()))
        return out

    def table(self) -> str:
        """A plain-text table: method x K -> success [CI] (return)."""
        ks = list(self.shots)
        lines = ["method".ljust(14) + "".join(f"K={k}".rjust(26) for k in ks)]
        for name, m in self.methods.items():
            cells = []
            for k in ks:
                s = m.per_k.get(k)
                cells.append(
                    "-".rjust(26)
                    if s is None
                    else f"{s.success:.2f} [{s.ci_low:.2f},{s.ci_high:.2f}] {s.ret:7.1f}".rjust(26)
                )
            lines.append(name.ljust(14) + "".join(cells))
        return "\n".join(lines)


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# -- adapters -----------------------------------------------------------------------------------------


@runtime_checkable
class Adapter(Protocol):
    """A policy plus its few-shot adaptation, as the protocol drives it.

    ``begin(task, rng)`` starts a unit from the un-adapted policy (`rng` is the unit's exploration
    stream); ``observe`` receives each shot transition; ``adapt()`` runs after each shot episode;
    ``act(obs, greedy)`` chooses an action (``greedy=False``: the policy's own exploration).
    """

    uses_shots: bool

    def begin(self, task: Any, rng: np.random.Generator) -> None: ...

    def observe(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None: ...

    def adapt(self) -> None: ...

    def act(self, obs: np.ndarray, greedy: bool) -> int: ...


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

    def __init__(self, policy: QNetwork, rule: HeadAdaptation, support_size: int, epsilon: float) -> None:
        super().__init__(epsilon)
        self.policy = policy
        self.rule = rule
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
            w, b = adapt_head(
                torch.from_numpy(self.w0),
                torch.from_numpy(self.b0),
                self.policy.features(sup.obs),
                sup.actions,
                sup.rewards,
                self.policy.features(sup.next_obs),
                sup.terminated,
                self.rule,
                successor=successor_flags(sup.obs, sup.next_obs) if self.rule.n_step > 1 else None,
            )
        self.w, self.b = w.numpy(), b.numpy()

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        with torch.inference_mode():
            f = self.policy.features(_obs_tensor(obs)).numpy()
        return self._choose(self.w @ f + self.b, greedy)


@dataclass(frozen=True)
class InnerDQN:
    """Hyper-parameters of a short full-network DQN on the shots (Reptile's inner loop, fine-tuning)."""

    updates_per_episode: int = 20
    """Gradient steps after each shot episode, on minibatches of all shots so far."""
    lr: float = 1e-3
    """Adam learning rate (beta1 = 0, fresh state per unit)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    target_interval: int = 25
    """Gradient steps between copies into the target network."""
    gamma: float = 0.98
    """Discount."""
    huber_delta: float = 1.0
    """Huber threshold."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip."""


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
        cfg = self.inner
        for _ in range(cfg.updates_per_episode):
            idx = self.rng.integers(0, len(data), size=cfg.batch_size)
            b = Transitions(*(getattr(data, f)[idx] for f in Transitions._fields)).to_batch()
            q_both = self.phi(torch.cat([b.obs, b.next_obs]))
            q, q_next = q_both[: len(b.obs)], q_both[len(b.obs) :].detach()
            with torch.no_grad():
                y = double_dqn_targets(b.rewards, b.terminated, q_next, self.target(b.next_obs), cfg.gamma)
            loss = td_loss(q, b.actions, y, cfg.huber_delta)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.phi.parameters(), cfg.max_grad_norm)
            self.opt.step()
            self.steps += 1
            if self.steps % cfg.target_interval == 0:
                hard_update(self.target, self.phi)

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        with torch.inference_mode():
            q = self.phi(_obs_tensor(obs).unsqueeze(0))[0].numpy()
        return self._choose(q, greedy)


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
        one_hot = np.zeros(self.encoder.n_actions, np.float32)
        one_hot[int(action)] = 1.0
        self._packed.append(np.concatenate([obs, one_hot, [reward], next_obs]).astype(np.float32))
        self.adapt()

    def adapt(self) -> None:
        if self._packed:
            with torch.inference_mode():
                self.z = self.encoder(torch.from_numpy(np.stack(self._packed[-self.context_size :])))

    def act(self, obs: np.ndarray, greedy: bool) -> int:
        with torch.inference_mode():
            q = self.policy(_obs_tensor(obs), self.z).numpy()
        return self._choose(q, greedy)


# -- methods ------------------------------------------------------------------------------------------


class Method(ABC):
    """Something the protocol scores: it turns one unit into `UnitResult`s for one or more method names."""

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """The method names this method reports (scratch reports one per budget multiplier)."""

    @abstractmethod
    def run_unit(
        self, task: Any, seed: int, task_index: int, shots: Sequence[int], episodes: int
    ) -> dict[str, list[UnitResult]]:
        """All K of one unit; ``{name: [UnitResult per K]}``."""


def evaluate_episodes(
    env: gym.Env, task: Any, seed: int | None, act: Callable[[np.ndarray], int], episodes: int
) -> tuple[float, float]:
    """Success rate and mean return of `episodes` episodes of `act` (only the first reset is seeded)."""
    succ, rets = [], []
    for e in range(episodes):
        _, st = run_episode(env, task, seed if e == 0 else None, act)
        succ.append(st.success)
        rets.append(st.ret)
    return float(np.mean(succ)), float(np.mean(rets))


def unit_seeds(seed: int, task_index: int) -> tuple[int, np.random.Generator]:
    """The unit's env seed and exploration stream (the same for every method: paired comparisons)."""
    rng = np.random.default_rng([seed, task_index, 1])
    return int(rng.integers(2**31 - 1)), np.random.default_rng([seed, task_index, 2])


@dataclass
class AdapterMethod(Method):
    """A method given by an `Adapter` per evaluation seed (the default protocol of the module docstring)."""

    name: str
    make_adapter: Callable[[int], Adapter]
    env_factory: EnvFactory
    _cache: dict[int, Adapter] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def adapter(self, seed: int) -> Adapter:
        if seed not in self._cache:
            self._cache[seed] = self.make_adapter(seed)
        return self._cache[seed]

    def run_unit(
        self, task: Any, seed: int, task_index: int, shots: Sequence[int], episodes: int
    ) -> dict[str, list[UnitResult]]:
        adapter = self.adapter(seed)
        env = cached_env(self.env_factory)
        env_seed, rng = unit_seeds(seed, task_index)
        adapter.begin(task, rng)
        desc = task_to_dict(task)
        first: list[int | None] = [env_seed]

        def next_seed() -> int | None:
            s, first[0] = first[0], None
            return s

        def greedy(obs: np.ndarray) -> int:
            return adapter.act(obs, True)

        out: list[UnitResult] = []
        if not adapter.uses_shots:
            succ, ret = evaluate_episodes(env, task, next_seed(), greedy, episodes)
            return {self.name: [UnitResult(seed, task_index, k, succ, ret, 0, desc) for k in shots]}
        seen = 0
        for k in range(max(shots) + 1):
            if k in shots:
                succ, ret = evaluate_episodes(env, task, next_seed(), greedy, episodes)
                out.append(UnitResult(seed, task_index, k, succ, ret, seen, desc))
            if k < max(shots):
                tr, _ = run_episode(env, task, next_seed(), lambda o: adapter.act(o, False), adapter.observe)
                seen += len(tr)
                adapter.adapt()
        return {self.name: out}


def evaluation_tasks(tasks: TaskSampler, seed: int, num_tasks: int) -> list[Any]:
    """The held-out tasks of evaluation seed `seed` (the same for every method)."""
    return list(tasks.sample(num_tasks, np.random.default_rng([seed, 0x5EED])))


def _check_protocol(
    shots: Sequence[int], episodes: int, seeds: Sequence[int], num_tasks: int
) -> tuple[int, ...]:
    ks = tuple(sorted({int(k) for k in shots}))
    if not ks:
        raise ValueError("shots is empty: give at least one K, e.g. --shots 0,1,5,10")
    if ks[0] < 0:
        raise ValueError(f"shots must be >= 0, got {list(shots)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not seeds:
        raise ValueError("seeds is empty: give at least one evaluation seed, e.g. --seeds 0,1,2")
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    return ks


def run_methods(
    methods: Sequence[Method],
    tasks: TaskSampler,
    *,
    shots: Sequence[int] = DEFAULT_SHOTS,
    episodes: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    num_tasks: int = 5,
    progress: bool | None = None,
) -> dict[str, MethodResult]:
    """Score every method on the same units; ``{method name: MethodResult}``."""
    ks = _check_protocol(shots, episodes, seeds, num_tasks)
    import sys

    show = sys.stderr.isatty() if progress is None else progress
    units = [(s, i, t) for s in seeds for i, t in enumerate(evaluation_tasks(tasks, int(s), num_tasks))]
    results: dict[str, MethodResult] = {}
    for method in methods:
        collected: dict[str, list[UnitResult]] = {n: [] for n in method.names}
        t0 = time.perf_counter()
        for s, i, task in tqdm(units, desc="/".join(method.names), disable=not show, unit="task"):
            for name, rows in method.run_unit(task, int(s), i, ks, episodes).items():
                collected[name].extend(rows)
        wall = time.perf_counter() - t0
        for name, rows in collected.items():
            results[name] = aggregate(name, rows, wall / len(collected))
            log.info("%s: %s", name, {k: round(v.success, 3) for k, v in results[name].per_k.items()})
    return results


# -- trained runs -------------------------------------------------------------------------------------


#: Support size of the head-only adaptation of a Reptile policy (``reptile-head``; MetaDQN's default).
REPTILE_HEAD_SUPPORT = 64


def _exploration(config: Any) -> float:
    return float(getattr(config, "epsilon_end", 0.05))


def methods_for_run(
    run: TrainedRun, env_factory: EnvFactory | None = None, *, name_suffix: str = ""
) -> list[AdapterMethod]:
    """The evaluation methods of a trained run: ``meta-dqn``; ``reptile`` and ``reptile-head``; ``context``."""
    cfg = run.config
    factory = env_factory if env_factory is not None else GymEnvFactory(cfg.env_id)
    eps = _exploration(cfg)
    policy = run.policy
    if run.algo == "meta-dqn":
        rule = run.adaptation
        assert rule is not None
        support = int(getattr(cfg, "support_size", 64))
        return [
            AdapterMethod(
                "meta-dqn" + name_suffix, lambda _s: HeadAdapter(policy, rule, support, eps), factory
            )
        ]
    if run.algo == "reptile":
        head_rule = run.adaptation
        assert head_rule is not None
        inner = InnerDQN(
            updates_per_episode=int(cfg.inner_updates_per_episode),  # type: ignore[attr-defined]
            lr=float(cfg.inner_lr),  # type: ignore[attr-defined]
            batch_size=int(cfg.inner_batch_size),  # type: ignore[attr-defined]
            target_interval=int(cfg.inner_target_interval),  # type: ignore[attr-defined]
            gamma=cfg.gamma,
            huber_delta=cfg.huber_delta,
            max_grad_norm=cfg.max_grad_norm,
        )
        return [
            AdapterMethod("reptile" + name_suffix, lambda _s: ReptileAdapter(policy, inner, eps), factory),
            AdapterMethod(
                "reptile-head" + name_suffix,
                lambda _s: HeadAdapter(policy, head_rule, REPTILE_HEAD_SUPPORT, eps),
                factory,
            ),
        ]
    if run.algo == "context":
        encoder = run.encoder
        assert encoder is not None
        ctx = int(cfg.context_size)  # type: ignore[attr-defined]
        return [
            AdapterMethod(
                "context" + name_suffix, lambda _s: ContextAdapter(policy, encoder, ctx, eps), factory
            )
        ]
    raise ValueError(f"cannot evaluate algorithm {run.algo!r}: expected meta-dqn, reptile or context")


def _run_from_trainer(trainer: MetaTrainer[Any]) -> TrainedRun:
    from robot_meta.meta.run import TrainedRun

    mods = trainer.policy_modules()
    info = {"algo": trainer.algo, **trainer.run_info()}
    adaptation = getattr(trainer, "adaptation", None)
    policy = copy.deepcopy(mods["policy"]).eval()
    encoder = copy.deepcopy(mods["encoder"]).eval() if "encoder" in mods else None
    return TrainedRun(
        Path("."),
        trainer.algo,
        trainer.config,
        policy,  # type: ignore[arg-type]
        encoder,  # type: ignore[arg-type]
        adaptation if isinstance(adaptation, HeadAdaptation) else None,
        trainer.iteration,
        info,
    )


def evaluate(
    policy_or_run: TrainedRun | MetaTrainer[Any] | str | Path,
    split: EvalSplit = "test",
    shots: Sequence[int] = DEFAULT_SHOTS,
    episodes: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    num_tasks: int = 5,
    tasks: TaskSampler | None = None,
    env_factory: EnvFactory | None = None,
    out: str | Path | None = None,
    plot: bool = True,
    progress: bool | None = None,
) -> EvalResult:
    """The K-shot protocol (module docstring) for a trained run on held-out tasks.

    Args:
        policy_or_run: a run directory, a `TrainedRun` (`load_run`) or a trainer in memory.
        split: ``test`` (held-out region and shape) or ``ood`` (beyond the train ranges); ``train``
            is allowed for diagnosis.
        shots: the K values (shot episodes before the evaluation episodes).
        episodes: greedy evaluation episodes per unit and K.
        seeds: evaluation seeds; each draws its own `num_tasks` tasks and env/exploration seeds.
        num_tasks: tasks per seed.
        tasks: the task distribution to draw from (default: the run's preset, split `split`).
        env_factory: the environment (default: the run's env id, discrete actions).
        out: directory for ``eval.json`` and ``eval.png`` (default: the run directory if one was
            given; a trainer in memory without `out` writes nothing).
        plot: also write the success-vs-K plot.
        progress: tqdm bars (default: when stderr is a terminal).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {list(SPLITS)}")
    ks = _check_protocol(shots, episodes, seeds, num_tasks)
    from robot_meta.meta.run import TrainedRun, load_run

    run_dir: Path | None = None
    if isinstance(policy_or_run, str | Path):
        run_dir = Path(policy_or_run)
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"run directory {run_dir} does not exist: pass the --out of `robot-meta train`"
            )
        run = load_run(run_dir)
    elif isinstance(policy_or_run, TrainedRun):
        run = policy_or_run
        run_dir = run.run_dir
    else:
        run = _run_from_trainer(policy_or_run)
    if tasks is None:
        from robot_meta.envs.params import TaskDistribution

        tasks = TaskDistribution.preset(run.config.preset).split(split)
    methods = methods_for_run(run, env_factory)
    t0 = time.perf_counter()
    results = run_methods(
        methods, tasks, shots=ks, episodes=episodes, seeds=seeds, num_tasks=num_tasks, progress=progress
    )
    result = EvalResult(
        split=split,
        shots=ks,
        episodes=episodes,
        seeds=tuple(int(s) for s in seeds),
        num_tasks=num_tasks,
        methods=results,
        info={
            "algo": run.algo,
            "env_id": run.config.env_id,
            "preset": run.config.preset,
            "iteration": run.iteration,
            "wall_time": time.perf_counter() - t0,
        },
    )
    target = Path(out) if out is not None else run_dir
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        path = result.save(target / EVAL_FILE)
        if plot:
            plot_success(
                result.methods, target / PLOT_FILE, title=f"{run.algo} on {run.config.preset}:{split}"
            )
        log.info("wrote %s", path)
    return result


def plot_success(
    methods: Mapping[str, MethodResult] | Mapping[str, Mapping[int, Mapping[str, float]]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Success rate vs K (with the 95 % interval as a band) for every method; writes a PNG.

    `methods` is ``{name: MethodResult}`` or the JSON form ``{name: {K: {"success", "ci_low", "ci_high"}}}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.6, 4.2), dpi=110)
    entries: list[tuple[str, Any]] = list(methods.items())
    for i, (name, m) in enumerate(entries):
        if isinstance(m, MethodResult):
            rows = {k: (s.success, s.ci_low, s.ci_high) for k, s in m.per_k.items()}
        else:
            rows = {
                int(k): (
                    float(v["success"]),
                    math.nan if v.get("ci_low") is None else float(v["ci_low"]),
                    math.nan if v.get("ci_high") is None else float(v["ci_high"]),
                )
                for k, v in m.items()
            }
        ks = sorted(rows)
        y = np.array([rows[k][0] for k in ks])
        lo = np.array([rows[k][1] for k in ks])
        hi = np.array([rows[k][2] for k in ks])
        style = ":" if name.startswith("scratch") else "--" if name in _FIXED_STYLE else "-"
        # a small horizontal offset keeps overlapping lines (e.g. several at 0 %) apart
        xs = np.asarray(ks, dtype=float) + 0.04 * (i - (len(methods) - 1) / 2) * (max(ks) - min(ks) or 1) / 10
        (line,) = ax.plot(xs, y, marker="o", linestyle=style, label=name)
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.07)
    ax.set_xlabel("K (shot episodes on the target task)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.set_xticks(
        sorted({int(k) for m in methods.values() for k in (m.per_k if isinstance(m, MethodResult) else m)})
    )
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


#: Baselines that do not adapt or adapt by plain fine-tuning (dashed in the plot).
_FIXED_STYLE = frozenset({"domain-rand", "oracle", "finetune"})


def load_eval(path: str | Path) -> dict[str, Any]:
    """Read an ``eval.json``."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
