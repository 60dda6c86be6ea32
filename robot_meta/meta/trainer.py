"""`MetaTrainer`: the loop shared by every algorithm, run directories, checkpoints and logging.

One meta-iteration is:

1. draw a batch of tasks from the fixed training pool and one seed per task (main RNG);
2. ``backend.map(worker, items)``: each item is a pure function of (meta-parameters, task, seed,
   epsilon, ...) that collects episodes on its task - the first with the meta-policy, the later ones
   adapted by the algorithm's own inner loop - and returns transitions, episode statistics and, for
   Reptile, the adapted parameters;
3. store the transitions in the tasks' replay buffers and merge them into the normalisers;
4. the algorithm's outer update (`_learn`);
5. log scalars (``meta/``, ``losses/``, ``charts/``), checkpoint every ``checkpoint_interval``.

Determinism: all randomness comes from the seed - the task pool and the networks' initial weights
from their own streams, everything else from one numpy ``Generator`` whose state is checkpointed
together with the models, optimisers, replay buffers and counters. A resumed run therefore repeats
exactly the float operations of an uninterrupted one (same torch thread count assumed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from robot_meta.distributed import Backend, get_backend
from robot_meta.meta.checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    RUN_FORMAT,
    TENSORBOARD_DIR,
    CheckpointError,
    check_checkpoint_config,
    check_run_config,
    load_checkpoint,
    lock_run_dir,
    remove_stale_temp_files,
    save_checkpoint,
    write_json_atomic,
)
from robot_meta.meta.config import AlgoName, MetaConfig
from robot_meta.meta.dqn import LinearSchedule
from robot_meta.meta.replay import ReplayBuffer, Transitions
from robot_meta.meta.rollout import (
    EnvFactory,
    GymEnvFactory,
    TaskSampler,
    cached_env,
    env_dims,
    summarize_episodes,
)
from robot_meta.meta.work import WorkResult, task_to_dict

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from robot_meta.meta.eval.adapters import Adapter
    from robot_meta.meta.run import TrainedRun
    from robot_meta.runtime.manifest import DeviceRule, GradientRule

__all__ = ["MetaTrainer", "TrainCallback", "TrainResult"]

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=MetaConfig)


@dataclass(frozen=True)
class TrainResult:
    """Summary of a `MetaTrainer.train` call."""

    algo: str
    iterations: int
    env_steps: int
    updates: int
    metrics: dict[str, float]
    """Scalars of the last iteration run by this call (empty if the run was already complete)."""
    run_dir: Path | None
    wall_time: float


TrainCallback = Callable[["MetaTrainer[Any]", dict[str, float]], None]
"""Called after every meta-iteration (after its checkpoint, if any) with the trainer and its scalars."""


class ResourceError(ValueError):
    """The configuration needs more of the machine than it has (checked before anything is created)."""


def available_memory() -> int | None:
    """Bytes of RAM available to a new allocation (``MemAvailable`` of /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def check_replay_memory(capacity: int, obs_dim: int, tasks: int) -> None:
    """`ResourceError` if full replay buffers (one per task) would not fit in the available RAM."""
    per_transition = 2 * obs_dim * 4 + 8 + 4 + 4  # obs, next_obs float32; action int64; reward, done float32
    need = int(capacity) * tasks * per_transition
    have = available_memory()
    if have is not None and need > have:
        raise ResourceError(
            f"buffer_capacity={capacity} needs {need / 2**30:.3g} GiB of replay memory for {tasks} tasks "
            f"but {have / 2**30:.3g} GiB is available: lower --set buffer_capacity "
            f"(at most {max(have // (tasks * per_transition), 1)}) or num_tasks"
        )


def training_env_factory(config: MetaConfig) -> GymEnvFactory:
    """The env meta-training collects on: discrete actions, plus ``end_when_decided`` if the config asks."""
    kwargs: tuple[tuple[str, Any], ...] = (("action_mode", "discrete"),)
    if config.end_when_decided:
        kwargs = (*kwargs, ("end_when_decided", True))
    return GymEnvFactory(config.env_id, kwargs)


def _default_tasks(preset: str) -> TaskSampler:
    from robot_meta.envs.params import TaskDistribution

    return TaskDistribution.preset(preset).split("train")


class MetaTrainer(ABC, Generic[ConfigT]):
    """Base of `MetaDQN`, `Reptile` and `ContextDQN`: the shared ``train()`` loop.

    Args:
        config: the algorithm's frozen config.
        env_factory: makes the environment (default: `training_env_factory`, ``gym.make(config.env_id,
            action_mode="discrete")`` plus ``end_when_decided`` when the config sets it).
            Must be hashable and picklable (an env class or a `GymEnvFactory` are).
        tasks: where the training task pool is drawn from, anything with ``.sample(n, rng)``
            (default: the ``train`` split of ``TaskDistribution.preset(config.preset)``).
        backend: execution backend of the per-task work (default: ``get_backend("local")``).
    """

    algo: ClassVar[AlgoName]
    """The algorithm's name: ``--algo`` of the CLI, ``algo`` of config.json and of the manifest."""
    config_cls: ClassVar[type[MetaConfig]]
    """Its typed frozen config."""
    trained_with: ClassVar[str] = ""
    """How meta-training relates to the device rule (a note in the export manifest; '' = the same rule)."""

    def __init__(
        self,
        config: ConfigT,
        *,
        env_factory: EnvFactory | None = None,
        tasks: TaskSampler | None = None,
        backend: Backend | None = None,
    ) -> None:
        if not isinstance(config, self.config_cls):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}"
            )
        self.config: ConfigT = config
        self.env_factory: EnvFactory = (
            env_factory if env_factory is not None else training_env_factory(config)
        )
        self.task_distribution: TaskSampler = tasks if tasks is not None else _default_tasks(config.preset)
        self.backend: Backend = backend if backend is not None else get_backend("local")
        self.obs_dim, self.n_actions = env_dims(cached_env(self.env_factory))
        self.task_pool: list[Any] = list(
            self.task_distribution.sample(config.num_tasks, np.random.default_rng([config.seed, 0]))
        )
        if len(self.task_pool) != config.num_tasks:
            raise ValueError(
                f"the task distribution returned {len(self.task_pool)} tasks for num_tasks={config.num_tasks}"
            )
        self.rng = np.random.default_rng([config.seed, 1])
        random.seed(config.seed)
        check_replay_memory(config.buffer_capacity, self.obs_dim, len(self.task_pool))
        self.replay = [ReplayBuffer(config.buffer_capacity, self.obs_dim) for _ in self.task_pool]
        self.iteration = 0
        self.env_steps = 0
        self.updates = 0
        self.epsilon_schedule = LinearSchedule(
            config.epsilon_start, config.epsilon_end, config.epsilon_fraction * config.meta_iterations
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self._build()

    # -- algorithm hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def _build(self) -> None:
        """Create networks and optimisers (the torch RNG is seeded with ``config.seed``)."""

    @abstractmethod
    def _worker(self) -> Callable[[Any], WorkResult]:
        """The module-level (picklable) per-task work function."""

    @abstractmethod
    def _work_item(self, task: Any, seed: int, epsilon: float, *, task_index: int | None) -> Any:
        """The work item of one task visit (`task_index` is None when probing a task outside the pool)."""

    @abstractmethod
    def _observe(self, new: Transitions) -> None:
        """Merge freshly collected transitions into the normalisers."""

    @abstractmethod
    def _learn(self, task_ids: Sequence[int], results: Sequence[WorkResult]) -> dict[str, float]:
        """The outer update of one meta-iteration; returns ``losses/...`` scalars."""

    @abstractmethod
    def _models(self) -> dict[str, nn.Module]:
        """Every module whose state is checkpointed (including target networks)."""

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser whose state is checkpointed."""
        return {}

    def _store(self, task_id: int, result: WorkResult) -> None:
        """Keep what a task visit returned (its transitions go to the task's replay buffer)."""
        self.replay[task_id].add(result.transitions)

    def _extra_state(self) -> dict[str, Any]:
        """Algorithm-specific checkpoint entries (tensors and containers only)."""
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore `_extra_state` output."""

    @abstractmethod
    def policy_modules(self) -> dict[str, nn.Module]:
        """The deployable modules: ``{"policy": QNetwork}`` plus ``"encoder"`` for ContextDQN."""

    def run_info(self) -> dict[str, Any]:
        """Extra entries of ``config.json`` (architecture, adaptation rule) for export and evaluation."""
        return {}

    # -- what evaluation, export and the CLI ask the algorithm (the registry's plug-in interface) ----------
    @classmethod
    def head_rule(cls, config: ConfigT) -> GradientRule | None:
        """The device's head rule of a run of `config` (None: the algorithm adapts no head)."""
        return None

    @property
    def adaptation(self) -> GradientRule | None:
        """`head_rule` of this trainer's config."""
        return type(self).head_rule(self.config)

    @classmethod
    def device_rule(cls, run: TrainedRun[ConfigT]) -> DeviceRule:
        """What export writes about the adaptation rule (the manifest's ``adaptation``): the run's head rule."""
        if run.adaptation is None:
            raise ValueError(f"the {run.algo} run {run.run_dir} has no head rule to export")
        return run.adaptation

    @classmethod
    @abstractmethod
    def eval_adapters(cls, run: TrainedRun[ConfigT]) -> dict[str, Callable[[int], Adapter]]:
        """The K-shot evaluation methods of a trained run: ``{method name: adapter per evaluation seed}``."""

    # -- one meta-iteration -----------------------------------------------------------------------------
    def epsilon(self) -> float:
        """Exploration rate of the current iteration."""
        return float(self.epsilon_schedule(self.iteration))

    def run_iteration(self) -> dict[str, float]:
        """Collect on a batch of tasks, store, update. Returns the iteration's scalars."""
        cfg = self.config
        k = min(cfg.meta_batch_size, len(self.task_pool))
        task_ids = [int(t) for t in self.rng.choice(len(self.task_pool), size=k, replace=False)]
        seeds = [int(s) for s in self.rng.integers(0, 2**31 - 1, size=k)]
        eps = self.epsilon()
        items = [
            self._work_item(self.task_pool[t], s, eps, task_index=t)
            for t, s in zip(task_ids, seeds, strict=True)
        ]
        results = self._map_work(items)
        for t, res in zip(task_ids, results, strict=True):
            self._store(t, res)
        new = Transitions.concat([r.transitions for r in results])
        self._observe(new)
        self.env_steps += len(new)
        metrics = summarize_episodes([r.episodes[0] for r in results], [r.episodes[-1] for r in results])
        for key in sorted({k for r in results for k in r.metrics}):
            vals = [r.metrics[key] for r in results if key in r.metrics]
            metrics[key] = float(np.mean(vals))
        if self.env_steps >= cfg.learning_starts:
            metrics.update(self._learn(task_ids, results))
        metrics["charts/epsilon"] = eps
        metrics["charts/env_steps"] = float(self.env_steps)
        metrics["charts/updates"] = float(self.updates)
        return metrics

    def _map_work(self, items: list[Any]) -> list[WorkResult]:
        """``backend.map`` of the iteration's work items, repeated once if a physics client died.

        The items are pure functions of their inputs and every visit starts with a seeded reset (which
        reconnects a dead PyBullet client and rebuilds the world), so the repeat returns exactly what
        an undisturbed map would have: training goes on bitwise as if nothing had happened.
        """
        from robot_meta.envs.sim import PhysicsDisconnectedError

        try:
            return list(self.backend.map(self._worker(), items))
        except PhysicsDisconnectedError as exc:
            log.warning(
                "iteration %d: the physics client disconnected (%s); repeating the iteration's %d work items",
                self.iteration + 1,
                exc,
                len(items),
            )
        try:
            return list(self.backend.map(self._worker(), items))
        except PhysicsDisconnectedError as exc:
            raise PhysicsDisconnectedError(
                f"the physics client disconnected twice in iteration {self.iteration + 1} ({exc}); "
                "the run directory holds the last checkpoint: run the same command again to resume"
            ) from exc

    def probe(self, tasks: Sequence[Any] | None = None, *, seed: int = 12345) -> dict[str, float]:
        """Greedy (epsilon 0) visits of `tasks` (default: the whole training pool) with the algorithm's
        own adaptation, without storing anything: the ``meta/return_pre|post`` and
        ``meta/success_pre|post`` scalars of the current meta-parameters. Uses its own RNG, so it
        does not perturb training."""
        tasks = list(self.task_pool if tasks is None else tasks)
        seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(tasks))]
        items = [self._work_item(t, s, 0.0, task_index=None) for t, s in zip(tasks, seeds, strict=True)]
        results = self.backend.map(self._worker(), items)
        return summarize_episodes([r.episodes[0] for r in results], [r.episodes[-1] for r in results])

    # -- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors/containers loadable with ``weights_only=True``."""
        return {
            "algo": self.algo,
            "config": self.config.to_dict(),
            "counters": {"iteration": self.iteration, "env_steps": self.env_steps, "updates": self.updates},
            "models": {name: m.state_dict() for name, m in self._models().items()},
            "optimizers": {name: o.state_dict() for name, o in self._optimizers().items()},
            "replay": [b.state_dict() for b in self.replay],
            "extra": self._extra_state(),
            "rng": {
                "python": random.getstate(),
                "numpy": self.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
            },
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore `state_dict` output; mismatches raise `CheckpointError` naming `source`."""
        try:
            counters = state["counters"]
            models, optims = self._models(), self._optimizers()
            if set(state["models"]) != set(models) or set(state["optimizers"]) != set(optims):
                raise KeyError(f"models {sorted(state['models'])}, optimisers {sorted(state['optimizers'])}")
            if len(state["replay"]) != len(self.replay):
                raise KeyError(f"{len(state['replay'])} replay buffers for {len(self.replay)} tasks")
            for name, module in models.items():
                module.load_state_dict(state["models"][name])
            for name, opt in optims.items():
                opt.load_state_dict(state["optimizers"][name])
            for buf, buf_state in zip(self.replay, state["replay"], strict=True):
                buf.load_state_dict(buf_state)
            self._load_extra_state(state["extra"])
            py_state = state["rng"]["python"]
            random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
            self.rng.bit_generator.state = state["rng"]["numpy"]
            torch.set_rng_state(state["rng"]["torch"])
            self.iteration = int(counters["iteration"])
            self.env_steps = int(counters["env_steps"])
            self.updates = int(counters["updates"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            detail = " ".join(str(exc).split())  # torch's messages span lines: keep the error one line
            detail = detail if len(detail) <= 300 else detail[:297] + "..."
            raise CheckpointError(
                f"{source} does not match this {self.algo} configuration ({type(exc).__name__}: {detail}); "
                "delete it to restart the run or train into a new --out directory"
            ) from exc

    def _config_json(self) -> dict[str, Any]:
        dist = self.task_distribution
        return {
            "format": RUN_FORMAT,
            "algo": self.algo,
            "config": self.config.to_dict(),
            "env": {"env_id": self.config.env_id, "obs_dim": self.obs_dim, "n_actions": self.n_actions},
            "task_distribution": task_to_dict(dist) if hasattr(dist, "to_dict") else None,
            "task_pool": [task_to_dict(t) for t in self.task_pool],
            **self.run_info(),
            "versions": {
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": sys.version.split()[0],
            },
        }

    def _open_run(self, run_dir: Path) -> bool:
        """Create or check ``config.json``; load ``checkpoint.pt`` if present. True if resumed."""
        run_dir.mkdir(parents=True, exist_ok=True)
        stale = remove_stale_temp_files(run_dir)
        if stale:
            log.info("removed %d half-written temp file(s) of an interrupted run: %s", len(stale), stale)
        if (run_dir / CONFIG_FILE).exists():
            check_run_config(run_dir, self.algo, self.config.to_dict())
        else:
            write_json_atomic(run_dir / CONFIG_FILE, self._config_json())
        ckpt = run_dir / CHECKPOINT_FILE
        if not ckpt.exists():
            return False
        state = load_checkpoint(ckpt, self.algo)
        check_checkpoint_config(state, self.config.to_dict(), ckpt)
        self.load_state_dict(state, source=str(ckpt))
        log.info(
            "resuming %s from %s at iteration %d/%d",
            self.algo,
            ckpt,
            self.iteration,
            self.config.meta_iterations,
        )
        return True

    def save(self, run_dir: Path) -> None:
        """Write ``checkpoint.pt`` atomically."""
        save_checkpoint(run_dir / CHECKPOINT_FILE, self.state_dict())

    # -- the loop ----------------------------------------------------------------------------------------
    def train(
        self,
        out: str | Path | None = None,
        *,
        callback: TrainCallback | None = None,
        progress: bool | None = None,
    ) -> TrainResult:
        """Meta-train until ``config.meta_iterations``; with `out`, resume from / checkpoint to that run dir.

        Args:
            out: run directory (``config.json``, ``checkpoint.pt``, ``tensorboard/``). If it holds a
                checkpoint of the same configuration, training resumes exactly where it stopped.
            callback: called after every iteration (after its checkpoint); raising stops training.
            progress: show a tqdm bar (default: only when stderr is a terminal).
        """
        cfg = self.config
        run_dir = Path(out) if out is not None else None
        writer: SummaryWriter | None = None
        resumed = False
        lock = contextlib.ExitStack()
        if run_dir is not None:
            lock.enter_context(lock_run_dir(run_dir))
            try:
                resumed = self._open_run(run_dir)
                if self.iteration < cfg.meta_iterations:
                    from torch.utils.tensorboard import SummaryWriter

                    writer = SummaryWriter(
                        str(run_dir / TENSORBOARD_DIR), purge_step=self.iteration + 1 if resumed else None
                    )
            except BaseException:
                lock.close()
                raise
        if self.iteration >= cfg.meta_iterations:
            log.info("%s run %s is already complete (%d iterations)", self.algo, run_dir, self.iteration)
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(
            total=cfg.meta_iterations,
            initial=self.iteration,
            disable=not show,
            desc=self.algo,
            unit="it",
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        try:
            while self.iteration < cfg.meta_iterations:
                t0, steps0 = time.perf_counter(), self.env_steps
                metrics = self.run_iteration()
                self.iteration += 1
                metrics["charts/sps"] = (self.env_steps - steps0) / max(time.perf_counter() - t0, 1e-9)
                if writer is not None:
                    for key, value in metrics.items():
                        writer.add_scalar(key, value, self.iteration)
                if run_dir is not None and (
                    self.iteration % cfg.checkpoint_interval == 0 or self.iteration == cfg.meta_iterations
                ):
                    self.save(run_dir)
                    log.debug("checkpoint at iteration %d", self.iteration)
                bar.update(1)
                bar.set_postfix(
                    {
                        k.split("/")[-1]: f"{metrics[k]:.3g}"
                        for k in ("meta/return_pre", "meta/return_post")
                        if k in metrics
                    },
                    refresh=False,
                )
                log.debug("iteration %d: %s", self.iteration, {k: round(v, 4) for k, v in metrics.items()})
                if callback is not None:
                    callback(self, metrics)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            lock.close()
        return TrainResult(
            algo=self.algo,
            iterations=self.iteration,
            env_steps=self.env_steps,
            updates=self.updates,
            metrics=metrics,
            run_dir=run_dir,
            wall_time=time.perf_counter() - start,
        )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config)[:4]
        )
        return f"{type(self).__name__}({fields}, ...)"
