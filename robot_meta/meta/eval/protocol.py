r"""The Meta-World-style K-shot protocol on held-out tasks (`evaluate`, `run_methods`).

For every evaluation seed ``s`` and every task ``i`` of the ``num_tasks`` tasks drawn from the split
with that seed (one *unit* = one (task, seed) pair):

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
one its training worker uses between the episodes of a task visit: each algorithm class names its
adapters (`MetaTrainer.eval_adapters`, `robot_meta.meta.eval.adapters`); an export directory is
run through the on-device runtime (`ExportAdapter`).

A method whose policy does not adapt (``uses_shots = False``: domain randomisation, the oracle) is
evaluated once per unit and the same numbers are reported for every K (``target_transitions`` 0).
Statistics: `robot_meta.meta.eval.stats`.

**Paired no-adaptation control** (on by default; ``evaluate(..., control=False)``, ``robot-meta
evaluate --no-control`` turn it off). The K = 0 and the K = k numbers come from different
evaluation episodes (other start states and goals), so "K = k minus K = 0" mixes adaptation's
effect with episode-to-episode luck. So for an adapting method, at every requested K > 0, the
unit's evaluation episodes are run a second time with the policy as it was before any shot
(`Adapter.act_unadapted`: the meta-trained head, the meta-initialisation, the prior z, the
runtime's meta-trained state), and the unit records that control's success and return next to
the adapted ones (`UnitResult.control_success`); `aggregate` reports the control and the *paired
gain*, adapted minus control over units, with its t interval. How the episodes are the same: the
env's resets draw start states and goals from the env's own RNG (``env.unwrapped.np_random``).
Its state is read just before the adapted evaluation episodes; the control runs on a second env
of the same factory (`cached_env` slot ``"control"``), which is first reset with the unit's env
seed (a freshly built world, whatever ran before) and then given that RNG state, so its
unseeded resets draw the same starts and goals. The control touches neither the main env (a
PyBullet world keeps solver state across unseeded resets, so episodes run in it in between would
change the later shots) nor the exploration stream (`act_unadapted` draws nothing): the adapted
numbers, the shots and every RNG stream are bitwise the same with the control on or off. Only the
start states and goals are shared (bitwise): the second world has its own solver history, so even
an identical policy's return can differ slightly (measured with one policy as both: 1e-8 on
reach, up to 2 % on push and slide; the success rates of all 12 units matched). Cost: one more set of ``episodes`` evaluation episodes (and one world rebuild) per unit and K > 0;
no control for K = 0 (it would be the K = 0 numbers) nor for methods that do not adapt.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from robot_meta.envs.params import SPLITS, Split, TaskDistribution
from robot_meta.meta.eval.adapters import Adapter, ExportAdapter
from robot_meta.meta.eval.plots import plot_success
from robot_meta.meta.eval.stats import EvalResult, MethodResult, UnitResult, aggregate
from robot_meta.meta.eval.units import evaluation_tasks, unit_seeds
from robot_meta.meta.rollout import EnvFactory, GymEnvFactory, TaskSampler, cached_env, run_episode
from robot_meta.meta.work import task_to_dict

if TYPE_CHECKING:
    from robot_meta.meta.run import TrainedRun
    from robot_meta.meta.trainer import MetaTrainer
    from robot_meta.runtime.strike import StrikePlanner

__all__ = [
    "DEFAULT_SHOTS",
    "EVAL_FILE",
    "PLOT_FILE",
    "SPLITS",
    "AdapterMethod",
    "EvalSplit",
    "Method",
    "control_episodes",
    "evaluate",
    "evaluate_episodes",
    "evaluation_tasks",
    "methods_for_export",
    "methods_for_run",
    "methods_for_strike_planner",
    "run_methods",
    "unit_seeds",
]

log = logging.getLogger(__name__)

#: The task splits an evaluation can draw from (the task distribution owns them).
EvalSplit = Split
DEFAULT_SHOTS: tuple[int, ...] = (0, 1, 5, 10)
EVAL_FILE = "eval.json"
PLOT_FILE = "eval.png"


class Method(ABC):
    """Something the protocol scores: it turns one unit into `UnitResult`s for one or more method names."""

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """The method names this method reports (scratch reports one per budget multiplier)."""

    @abstractmethod
    def run_unit(
        self,
        task: Any,
        seed: int,
        task_index: int,
        shots: Sequence[int],
        episodes: int,
        *,
        control: bool = True,
    ) -> dict[str, list[UnitResult]]:
        """All K of one unit; ``{name: [UnitResult per K]}`` (`control`: the paired control, if it applies)."""


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


def control_episodes(
    env_factory: EnvFactory,
    task: Any,
    env_seed: int,
    starts: Mapping[str, Any],
    act: Callable[[np.ndarray], int],
    episodes: int,
) -> tuple[float, float]:
    """Success rate and mean return of `act` on the evaluation episodes whose env RNG state was `starts`.

    The paired control of the module docstring: on the second env of `env_factory` (slot
    ``"control"``), a seeded reset builds a fresh world, then the env's RNG gets the state `starts`
    (``env.unwrapped.np_random.bit_generator.state`` read before the adapted episodes) and the
    `episodes` unseeded resets draw the same start states and goals as the adapted ones did.
    """
    env = cached_env(env_factory, slot="control")
    env.reset(seed=int(env_seed), options={"task": task})
    env.unwrapped.np_random.bit_generator.state = starts
    return evaluate_episodes(env, task, None, act, episodes)


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
        self,
        task: Any,
        seed: int,
        task_index: int,
        shots: Sequence[int],
        episodes: int,
        *,
        control: bool = True,
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
                eval_seed = next_seed()  # None for k > 0: the first shot took the unit's seed
                paired = control and eval_seed is None
                starts = copy.deepcopy(env.unwrapped.np_random.bit_generator.state) if paired else None
                succ, ret = evaluate_episodes(env, task, eval_seed, greedy, episodes)
                c_succ = c_ret = None
                if starts is not None:
                    c_succ, c_ret = control_episodes(
                        self.env_factory, task, env_seed, starts, adapter.act_unadapted, episodes
                    )
                out.append(UnitResult(seed, task_index, k, succ, ret, seen, desc, c_succ, c_ret))
            if k < max(shots):
                tr, _ = run_episode(env, task, next_seed(), lambda o: adapter.act(o, False), adapter.observe)
                seen += len(tr)
                adapter.adapt()
        return {self.name: out}


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
    control: bool = True,
) -> dict[str, MethodResult]:
    """Score every method on the same units; ``{method name: MethodResult}``.

    `control`: the paired no-adaptation control at every K > 0 of the adapting methods (module
    docstring; one more set of evaluation episodes per unit and K > 0).
    """
    ks = _check_protocol(shots, episodes, seeds, num_tasks)

    show = sys.stderr.isatty() if progress is None else progress
    units = [(s, i, t) for s in seeds for i, t in enumerate(evaluation_tasks(tasks, int(s), num_tasks))]
    results: dict[str, MethodResult] = {}
    for method in methods:
        collected: dict[str, list[UnitResult]] = {n: [] for n in method.names}
        t0 = time.perf_counter()
        for s, i, task in tqdm(units, desc="/".join(method.names), disable=not show, unit="task"):
            for name, rows in method.run_unit(task, int(s), i, ks, episodes, control=control).items():
                collected[name].extend(rows)
        wall = time.perf_counter() - t0
        for name, rows in collected.items():
            results[name] = aggregate(name, rows, wall / len(collected))
            log.info("%s: %s", name, {k: round(v.success, 3) for k, v in results[name].per_k.items()})
    return results


# -- what is evaluated ----------------------------------------------------------------------------------


def methods_for_run(
    run: TrainedRun[Any], env_factory: EnvFactory | None = None, *, name_suffix: str = ""
) -> list[AdapterMethod]:
    """The evaluation methods of a trained run: its algorithm's adapters (`MetaTrainer.eval_adapters`)."""
    factory = env_factory if env_factory is not None else GymEnvFactory(run.config.env_id)
    return [
        AdapterMethod(name + name_suffix, make, factory)
        for name, make in run.algorithm.eval_adapters(run).items()
    ]


def methods_for_export(
    adapter: ExportAdapter, env_factory: EnvFactory | None = None, *, name_suffix: str = ""
) -> list[AdapterMethod]:
    """The method of an export directory: ``<algo>-export``, the runtime's own adaptation (`ExportAdapter`)."""
    manifest = adapter.policy.manifest
    factory = env_factory if env_factory is not None else GymEnvFactory(manifest.env_id)
    return [AdapterMethod(f"{manifest.algo}-export{name_suffix}", lambda _s: adapter, factory)]


def methods_for_strike_planner(
    planner: StrikePlanner, directory: str | Path, env_factory: EnvFactory, *, oracle: bool | None = None
) -> list[AdapterMethod]:
    """The methods of a strike planner fitted into `directory`: ``strike-planner`` (`StrikeAdapter`, a
    fresh copy per unit: no posterior is shared between units) and its privileged oracle
    ``strike-oracle`` (`StrikeOracleAdapter`, from the travel model saved beside it). `oracle`: True
    demands the model (`TravelModel.load`'s error for a fit made before it was saved), None adds the
    oracle when the file is there, False leaves it out."""
    from robot_meta.meta.eval.adapters import StrikeAdapter, StrikeOracleAdapter
    from robot_meta.meta.strike import STRIKE_ALGO, STRIKE_ORACLE, TRAVEL_MODEL_FILE, TravelModel

    methods = [AdapterMethod(STRIKE_ALGO, lambda _s: StrikeAdapter(planner), env_factory)]
    if oracle or (oracle is None and (Path(directory) / TRAVEL_MODEL_FILE).is_file()):
        model = TravelModel.load(directory)
        methods.append(
            AdapterMethod(STRIKE_ORACLE, lambda _s: StrikeOracleAdapter(planner, model), env_factory)
        )
    return methods


def _run_from_trainer(trainer: MetaTrainer[Any]) -> TrainedRun[Any]:
    from robot_meta.meta.run import TrainedRun

    mods = trainer.policy_modules()
    info = {"algo": trainer.algo, **trainer.run_info()}
    policy = copy.deepcopy(mods["policy"]).eval()
    encoder = copy.deepcopy(mods["encoder"]).eval() if "encoder" in mods else None
    return TrainedRun(
        Path("."),
        trainer.algo,
        trainer.config,
        policy,  # type: ignore[arg-type]
        encoder,  # type: ignore[arg-type]
        type(trainer).head_rule(trainer.config),
        trainer.iteration,
        info,
    )


@dataclass(frozen=True)
class _Subject:
    """What `evaluate` scores, resolved from its first argument."""

    methods: list[AdapterMethod]
    algo: str
    env_id: str
    preset: str | None
    distribution: TaskDistribution | None
    iteration: int
    directory: Path | None


def _is_export_dir(path: Path) -> bool:
    from robot_meta.runtime.manifest import MANIFEST_FILE

    return (path / MANIFEST_FILE).is_file() and not (path / "config.json").is_file()


def _subject(policy_or_run: Any, env_factory: EnvFactory | None) -> _Subject:
    from robot_meta.meta.run import TrainedRun, load_run
    from robot_meta.runtime.strike import StrikePlanner, is_strike_planner_dir

    if isinstance(policy_or_run, str | Path) and is_strike_planner_dir(policy_or_run):
        from robot_meta.meta.strike import STRIKE_ALGO

        planner = StrikePlanner.load(policy_or_run)  # the files a controller loads, sha256 checked
        if not planner.env_id:
            raise ValueError(
                f"{policy_or_run}: the strike planner records no env id; refit it with this version"
            )
        doc = planner.train_distribution
        dist = TaskDistribution.from_dict(doc) if isinstance(doc, dict) and "train" in doc else None
        factory = env_factory if env_factory is not None else GymEnvFactory(planner.env_id)
        methods = methods_for_strike_planner(planner, policy_or_run, factory)  # its oracle when saved
        return _Subject(methods, STRIKE_ALGO, planner.env_id, None, dist, 0, Path(policy_or_run))
    if isinstance(policy_or_run, str | Path) and _is_export_dir(Path(policy_or_run)):
        adapter = ExportAdapter.load(policy_or_run)
        m = adapter.policy.manifest
        doc = m.train_distribution
        dist = TaskDistribution.from_dict(doc) if isinstance(doc, dict) and "train" in doc else None
        preset = m.train_config.get("preset")
        iteration = int(m.train.get("iteration", 0))
        methods = methods_for_export(adapter, env_factory)
        return _Subject(methods, m.algo, m.env_id, preset, dist, iteration, Path(policy_or_run))
    run_dir: Path | None = None
    if isinstance(policy_or_run, str | Path):
        run_dir = Path(policy_or_run)
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"run directory {run_dir} does not exist: pass the --out of `robot-meta train` "
                "(or of `robot-meta export`, an export directory)"
            )
        run = load_run(run_dir)
    elif isinstance(policy_or_run, TrainedRun):
        run = policy_or_run
        run_dir = run.run_dir
    else:
        run = _run_from_trainer(policy_or_run)
    cfg = run.config
    methods = methods_for_run(run, env_factory)
    return _Subject(methods, run.algo, cfg.env_id, cfg.preset, None, run.iteration, run_dir)


def evaluate(
    policy_or_run: TrainedRun[Any] | MetaTrainer[Any] | str | Path,
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
    control: bool = True,
) -> EvalResult:
    """The K-shot protocol (module docstring) for a trained run or an export on held-out tasks.

    Args:
        policy_or_run: a run directory, a `TrainedRun` (`load_run`), a trainer in memory, or an
            export directory (``robot-meta export --out``), run through the on-device runtime.
        split: ``test`` (held-out region and shape) or ``ood`` (beyond the train ranges); ``train``
            is allowed for diagnosis (every split of `TaskDistribution`).
        shots: the K values (shot episodes before the evaluation episodes).
        episodes: greedy evaluation episodes per unit and K.
        seeds: evaluation seeds; each draws its own `num_tasks` tasks and env/exploration seeds.
        num_tasks: tasks per seed.
        tasks: the task distribution to draw from (default: the run's preset, or the export's
            train distribution, split `split`).
        env_factory: the environment (default: the run's env id, discrete actions).
        out: directory for ``eval.json`` and ``eval.png`` (default: the run or export directory if
            one was given; a trainer in memory without `out` writes nothing).
        plot: also write the success-vs-K plot.
        progress: tqdm bars (default: when stderr is a terminal).
        control: the paired no-adaptation control (module docstring): at every K > 0, the adapting
            methods' unadapted policy also runs the same evaluation episodes, and each K reports
            the control's success and the paired gain (adapted minus control over units, with its
            t interval). It adds one set of `episodes` evaluation episodes per unit and K > 0 and
            leaves the adapted numbers bitwise unchanged; ``False`` skips it.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {list(SPLITS)}")
    ks = _check_protocol(shots, episodes, seeds, num_tasks)
    subject = _subject(policy_or_run, env_factory)
    if tasks is None:
        if subject.distribution is None and subject.preset is None:
            raise ValueError(f"{subject.directory} records no task distribution: pass tasks=")
        dist = subject.distribution or TaskDistribution.preset(str(subject.preset))
        tasks = dist.split(split)
    t0 = time.perf_counter()
    results = run_methods(
        subject.methods,
        tasks,
        shots=ks,
        episodes=episodes,
        seeds=seeds,
        num_tasks=num_tasks,
        progress=progress,
        control=control,
    )
    result = EvalResult(
        split=split,
        shots=ks,
        episodes=episodes,
        seeds=tuple(int(s) for s in seeds),
        num_tasks=num_tasks,
        methods=results,
        info={
            "algo": subject.algo,
            "env_id": subject.env_id,
            "preset": subject.preset,
            "iteration": subject.iteration,
            "control": control,
            "wall_time": time.perf_counter() - t0,
        },
    )
    target = Path(out) if out is not None else subject.directory
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        path = result.save(target / EVAL_FILE)
        if plot:
            title = f"{subject.algo} on {subject.preset}:{split}"
            plot_success(result.methods, target / PLOT_FILE, title=title)
        log.info("wrote %s", path)
    return result
