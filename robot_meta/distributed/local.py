"""The default execution backend: an in-process loop, or a pool of local worker processes.

``LocalBackend()`` runs the work items one after the other in this process (no extra services,
nothing to set up). ``LocalBackend(workers=N)`` with ``N > 1`` runs them on a pool of ``N``
worker processes on this machine. Every worker uses ``torch_threads`` torch threads (1 by
default: the networks are small, and the same thread count as the trainer keeps the float
operations - hence the results - identical to the in-process loop). The pool is started with
``spawn`` by default: PyBullet clients and torch's thread pools do not survive ``fork`` reliably.
A worker process that dies (killed, out of memory, a segfault in the simulator) is replaced and
the items it had not finished are run again, up to ``max_retries`` times per item.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, TypeVar

__all__ = ["LocalBackend", "StartMethod", "WorkerLostError", "set_worker_threads"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

StartMethod = Literal["spawn", "forkserver", "fork"]


class WorkerLostError(RuntimeError):
    """A work item's worker died more often than the backend's ``max_retries`` allows."""


def set_worker_threads(threads: int) -> None:
    """Pin torch (and the BLAS libraries started after this) to `threads` threads in a worker process."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _check(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is invalid: must be an int >= {low}")
    return value


class LocalBackend:
    """Runs ``fn`` on every item in item order: in this process (``workers=1``) or on a process pool.

    Args:
        workers: worker processes; 1 (default) runs the items in this process, one after the other.
        start_method: how pool processes start (``spawn`` by default; ``fork`` is faster to start
            but unsafe once PyBullet or torch threads exist in this process).
        max_retries: how often an item is re-run after its worker process died.
        torch_threads: torch threads in each pool process (match the trainer's for identical results).
    """

    name = "local"

    def __init__(
        self,
        workers: int = 1,
        *,
        start_method: StartMethod = "spawn",
        max_retries: int = 2,
        torch_threads: int = 1,
    ) -> None:
        self.workers = _check("workers", workers, 1)
        if start_method not in ("spawn", "forkserver", "fork"):
            raise ValueError(
                f"start_method={start_method!r} is invalid: choose 'spawn', 'forkserver' or 'fork'"
            )
        self.start_method: StartMethod = start_method
        self.max_retries = _check("max_retries", max_retries, 0)
        self.torch_threads = _check("torch_threads", torch_threads, 1)
        self._pool: ProcessPoolExecutor | None = None
        self.restarts = 0
        """Worker-pool restarts after a worker died (for logs and tests)."""

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=set_worker_threads,
                initargs=(self.torch_threads,),
            )
        return self._pool

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, on the pool when ``workers > 1``."""
        todo = list(items)
        if self.workers == 1:
            return [fn(item) for item in todo]
        results: dict[int, R] = {}
        attempts = [0] * len(todo)
        pending = list(range(len(todo)))
        while pending:
            pool = self._get_pool()
            futures: dict[int, Future[R]] = {i: pool.submit(fn, todo[i]) for i in pending}
            lost: list[int] = []
            for i, fut in futures.items():
                try:
                    results[i] = fut.result()
                except BrokenProcessPool:
                    lost.append(i)
            if lost:
                self._restart(lost, attempts)
            pending = lost
        return [results[i] for i in range(len(todo))]

    def _restart(self, lost: list[int], attempts: list[int]) -> None:
        for i in lost:
            attempts[i] += 1
            if attempts[i] > self.max_retries:
                self.close()
                raise WorkerLostError(
                    f"work item {i} lost its worker process {attempts[i]} times (max_retries={self.max_retries}); "
                    "check the workers' memory (dmesg for the OOM killer) or run with workers=1 to see the error"
                )
        log.warning("a local worker process died: restarting the pool and re-running %d item(s)", len(lost))
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.restarts += 1

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.workers == 1:
            return "LocalBackend()"
        return f"LocalBackend(workers={self.workers}, start_method={self.start_method!r})"
