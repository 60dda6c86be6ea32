"""The default execution backend: a plain in-process loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["LocalBackend"]

T = TypeVar("T")
R = TypeVar("R")


class LocalBackend:
    """Runs ``fn`` on every item, in order, in this process (no extra services, deterministic)."""

    name = "local"

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``."""
        return [fn(item) for item in items]

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "LocalBackend()"
