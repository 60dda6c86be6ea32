"""What a per-task work item returns, and the worker side's helpers (module cache, task descriptions).

A work item is a pure function of (meta-parameters, task, seed, epsilon, ...) run by an execution
backend (`robot_meta.distributed`); `worker_module` keeps one module per process and key so a
worker does not rebuild its networks for every item.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from robot_meta.meta.replay import Transitions
from robot_meta.meta.rollout import EpisodeStats

__all__ = ["Spec", "WorkResult", "freeze_spec", "task_to_dict", "worker_module"]

M = TypeVar("M", bound=nn.Module)


@dataclass
class WorkResult:
    """What one per-task work item returns."""

    transitions: Transitions
    episodes: list[EpisodeStats]
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, torch.Tensor] | None = None
    """Adapted parameters (Reptile's phi), None for the other algorithms."""
    supports: list[Transitions] = field(default_factory=list)
    """The support sets the visit adapted on (MetaDQN)."""


_MODULE_CACHE: dict[Hashable, nn.Module] = {}


#: A module's constructor arguments as a hashable tuple (used as a worker-cache key).
Spec = tuple[tuple[str, Any], ...]


def freeze_spec(spec: Mapping[str, Any]) -> Spec:
    """Hashable form of a module's ``spec()`` dict (lists become tuples)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items())


def worker_module(key: Hashable, build: Callable[[], M]) -> M:
    """A per-process cached module for workers (built once, outside the global torch RNG stream)."""
    module = _MODULE_CACHE.get(key)
    if module is None:
        with torch.random.fork_rng(devices=[]):
            module = build()
        _MODULE_CACHE[key] = module
    return module  # type: ignore[return-value]


def task_to_dict(task: Any) -> Any:
    """A JSON-friendly description of a task (``to_dict()`` if it has one, else its repr)."""
    to_dict = getattr(task, "to_dict", None)
    return to_dict() if callable(to_dict) else repr(task)
