"""Before/after-adaptation trials of a device policy (`AdaptivePolicy`, `StrikePlanner`) on a set of tasks (``robot-meta adapt``).

The protocol mirrors meta-training's task visits: for each task the policy starts from the
meta-trained head (`AdaptivePolicy.reset_adaptation`), runs its first episode with it ("before"),
then adapts at the end of every episode in the controller's background thread and runs the
remaining episodes with the adapted head ("after"). No simulator import here: the caller passes
any env with Gymnasium's reset/step and the task objects its ``reset(options={"task": ...})`` takes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_meta.runtime.controller import AdaptiveController, ControllerConfig, ControllerReport, StepEnv
from robot_meta.runtime.device import DevicePolicy
from robot_meta.runtime.policy import AdaptivePolicy

__all__ = ["TaskTrial", "TrialsReport", "device_controller_config", "run_trials"]

log = logging.getLogger(__name__)


def device_controller_config(
    policy: DevicePolicy, rate_hz: float = 100.0, adapt: bool = True
) -> ControllerConfig:
    """The `ControllerConfig` that ``robot-meta adapt`` (with `adapt` False: ``--no-adapt``) runs
    `policy` with, and `robot_meta.adapt.trials_on_and_off` too: a context export re-infers its z
    after every tick (``adapt_every=1``), any other policy adapts at each episode's end; with `adapt`
    False the controller never calls `adapt`."""
    if not adapt:
        return ControllerConfig(rate_hz=rate_hz, adapt_every=0, adapt_at_episode_end=False)
    context = isinstance(policy, AdaptivePolicy) and policy.manifest.context is not None
    return ControllerConfig(rate_hz=rate_hz, adapt_every=1 if context else 0)


@dataclass(frozen=True)
class TaskTrial:
    """One task: success of the first (meta head) episode and of the adapted ones."""

    task: Any
    success_before: bool
    success_after: list[bool]
    return_before: float
    return_after: list[float]
    missed_ticks: int
    adaptations: int
    rolled_back: int


@dataclass
class TrialsReport:
    """All tasks of a `run_trials` call."""

    trials: list[TaskTrial] = field(default_factory=list)
    missed_ticks: int = 0
    ticks: int = 0
    interrupted: bool = False

    @property
    def success_before(self) -> float:
        """Fraction of tasks solved by the meta-trained head (first episode)."""
        return float(np.mean([t.success_before for t in self.trials])) if self.trials else math.nan

    @property
    def success_after(self) -> float:
        """Fraction of adapted episodes (episodes 2..N of every task) that succeeded."""
        after = [s for t in self.trials for s in t.success_after]
        return float(np.mean(after)) if after else math.nan

    @property
    def return_before(self) -> float:
        """Mean return of the first (meta head) episodes."""
        return float(np.mean([t.return_before for t in self.trials])) if self.trials else math.nan

    @property
    def return_after(self) -> float:
        """Mean return of the adapted episodes."""
        after = [r for t in self.trials for r in t.return_after]
        return float(np.mean(after)) if after else math.nan

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "tasks": len(self.trials),
            "success_before": self.success_before,
            "success_after": self.success_after,
            "return_before": self.return_before,
            "return_after": self.return_after,
            "ticks": self.ticks,
            "missed_ticks": self.missed_ticks,
            "adaptations": sum(t.adaptations for t in self.trials),
            "rolled_back": sum(t.rolled_back for t in self.trials),
            "interrupted": self.interrupted,
        }


def run_trials(
    policy: DevicePolicy,
    env: StepEnv,
    tasks: Sequence[Any],
    *,
    episodes: int = 2,
    seed: int | Sequence[int] = 0,
    config: ControllerConfig | None = None,
    on_task: Callable[[int, TaskTrial], None] | None = None,
) -> TrialsReport:
    """Run `episodes` (>= 2) episodes per task; the first reset of task i is seeded with ``seed + i``,
    or with ``seed[i]`` when `seed` is a sequence (one per task, e.g. the K-shot protocol's unit
    seeds, `robot_meta.meta.eval.units.unit_seeds`)."""
    if episodes < 2:
        raise ValueError(f"episodes={episodes}: need at least 2 per task (one before, one after adaptation)")
    if isinstance(seed, int):
        seeds = [seed + i for i in range(len(tasks))]
    else:
        seeds = [int(s) for s in seed]
        if len(seeds) != len(tasks):
            raise ValueError(f"{len(seeds)} seeds for {len(tasks)} tasks: give one first-reset seed per task")
    controller = AdaptiveController(policy, env, config or ControllerConfig())
    out = TrialsReport()
    for i, task in enumerate(tasks):
        policy.reset_adaptation()
        rep: ControllerReport = controller.run(episodes=episodes, seed=seeds[i], options={"task": task})
        out.ticks += rep.ticks
        out.missed_ticks += rep.missed_ticks
        if rep.interrupted or len(rep.episodes) < episodes:
            out.interrupted = True
            break
        first, rest = rep.episodes[0], rep.episodes[1:]
        trial = TaskTrial(
            task=task,
            success_before=first.success,
            success_after=[e.success for e in rest],
            return_before=first.ret,
            return_after=[e.ret for e in rest],
            missed_ticks=rep.missed_ticks,
            adaptations=rep.adaptations,
            rolled_back=rep.rolled_back,
        )
        out.trials.append(trial)
        if on_task is not None:
            on_task(i, trial)
    return out
