"""A work-function wrapper whose first call anywhere kills its worker process (for fault-tolerance tests)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CrashOnce:
    """Calls `fn`, except that the very first call (across all processes) ``os._exit``s its process.

    The first caller atomically creates ``marker``; it then dies like a killed worker would (no
    exception, no cleanup). Every later call, including the retry of that item, runs normally.
    """

    fn: Callable[[Any], Any]
    marker: str

    def __call__(self, item: Any) -> Any:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.fn(item)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


class CrashingBackend:
    """Wraps a backend so that the first work item it runs kills its worker process once."""

    def __init__(self, inner: Any, marker: Path) -> None:
        self.inner, self.marker = inner, marker
        self.name = inner.name

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return list(self.inner.map(CrashOnce(fn, str(self.marker)), items))

    def close(self) -> None:
        self.inner.close()
