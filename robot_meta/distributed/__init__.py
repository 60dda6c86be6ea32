"""Execution backends for meta-training: where the per-task work of a meta-iteration runs.

A meta-iteration hands its batch of per-task work items to ``backend.map(fn, items)``; ``fn`` is a
module-level (picklable) pure function of its item (meta-parameters, task, seed, ...) and the
results come back in the order of the items, so every backend gives the same results for the
same seed. ``get_backend("local")`` (the default) is a plain loop in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from robot_meta.distributed.local import LocalBackend

__all__ = ["BACKENDS", "Backend", "LocalBackend", "get_backend"]

T = TypeVar("T")
R = TypeVar("R")

#: Names accepted by `get_backend` (and ``robot-meta train --backend``).
BACKENDS: tuple[str, ...] = ("local",)


class Backend(Protocol):
    """What the trainers need from an execution backend."""

    name: str

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Apply `fn` to every item; results in item order."""
        ...

    def close(self) -> None:
        """Release workers/connections (idempotent)."""
        ...


def get_backend(name: str = "local", **options: Any) -> Backend:
    """The execution backend called `name` (see `BACKENDS`)."""
    if name == "local":
        if options:
            raise ValueError(f"the local backend takes no options, got {sorted(options)}")
        return LocalBackend()
    raise ValueError(f"unknown execution backend {name!r}: choose one of {list(BACKENDS)}")
