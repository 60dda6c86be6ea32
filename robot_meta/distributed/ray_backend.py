"""The ``ray`` execution backend: the per-task work of a meta-iteration as Ray tasks.

``RayBackend()`` starts a local Ray instance (``ray.init(num_cpus=...)``, no dashboard);
``RayBackend(address="HOST:6379")`` (or ``"ray://HOST:10001"``, or ``"auto"``) joins an existing
cluster; if Ray is already initialised in this process the backend uses that instance and
leaves it running on `close`. Each work item is one Ray task with ``num_cpus=1``; the results
come back in item order, and since every item is a pure function of its contents (meta-parameters,
task, seed, ...) and every task runs with the same number of torch threads as the trainer (1),
the results are the same as with the local backend.

Fault tolerance: a task whose worker process dies (killed, out of memory, a simulator crash) is
re-run by Ray on another worker, up to ``max_retries`` times, so the meta-iteration completes and
nothing is lost. Exceptions raised by the work function itself are not retried (they would fail
again): they propagate to the trainer.

Workers of a local instance see this process's ``sys.path`` (as a spawned process pool would), so
work functions defined in local modules can be unpickled. Workers on a cluster need ``robot_meta``
installed on every node, or a ``runtime_env`` (``{"py_modules": [...]}``, ``{"pip": [...]}``).

Ray is an optional dependency: ``pip install "robot_meta[train,distributed]"``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from robot_meta.distributed.local import WorkerLostError, set_worker_threads

__all__ = ["RayBackend", "check_reachable", "import_ray"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "the 'ray' backend needs Ray: install it with `pip install 'robot_meta[train,distributed]'` "
            "(or `pip install 'ray[default]'`), or use --backend local"
        ) from exc
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ConnectionError) if a ``HOST:PORT`` Ray address does not accept TCP connections.

    ``ray.init`` itself retries an unreachable head for minutes; ``auto`` and ``ray://`` addresses
    are left to Ray.
    """
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"Ray address {address!r} is invalid: give HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:10001 or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Ray head at {address} ({exc}); start it with `ray start --head` there, "
            "check the address with `ray status` on the head node, or use --backend local"
        ) from exc


def _run_item(threads: int, fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of every Ray task: same torch thread count as the trainer, then the pure work function."""
    set_worker_threads(threads)
    return fn(item)


class RayBackend:
    """Runs the work items as Ray tasks (one CPU each), results in item order.

    Args:
        address: an existing cluster (``"HOST:6379"``, ``"ray://HOST:10001"``, ``"auto"``); None starts
            a local instance (ignored when Ray is already initialised in this process).
        num_cpus: CPUs of a local instance (default: `workers`, else all CPUs of this machine).
        workers: most tasks in flight at once (default: no limit, Ray schedules on every free CPU).
        max_retries: re-runs of a task whose worker process died.
        torch_threads: torch threads in each task (match the trainer's for identical results).
        runtime_env: Ray runtime environment of the job (default for a local instance: this
            process's ``sys.path`` as ``PYTHONPATH``).
        log_to_driver: forward the workers' stdout/stderr here (off: PyBullet is verbose).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        workers: int | None = None,
        max_retries: int = 3,
        torch_threads: int = 1,
        runtime_env: dict[str, Any] | None = None,
        log_to_driver: bool = False,
    ) -> None:
        for name, value, low in (
            ("num_cpus", num_cpus, 1),
            ("workers", workers, 1),
            ("max_retries", max_retries, 0),
            ("torch_threads", torch_threads, 1),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name}={value!r} is invalid: must be an int >= {low}")
        ray = import_ray()
        self._ray = ray
        self.address = address
        self.workers = workers
        self.max_retries = max_retries
        self.torch_threads = torch_threads
        self._owns = False
        if ray.is_initialized():
            log.info("ray backend: using the Ray instance already initialised in this process")
        else:
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": log_to_driver,
                "logging_level": logging.WARNING,
            }
            if address is None:
                kwargs["num_cpus"] = num_cpus or workers or os.cpu_count() or 1
                if runtime_env is None:
                    path = os.pathsep.join(p for p in sys.path if p)
                    runtime_env = {"env_vars": {"PYTHONPATH": path}}
            else:
                try:
                    check_reachable(address)
                except ConnectionError as exc:
                    raise RuntimeError(str(exc)) from exc
                kwargs["address"] = address
            if runtime_env is not None:
                kwargs["runtime_env"] = runtime_env
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError) as exc:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                raise RuntimeError(
                    f"could not start or join {where} ({type(exc).__name__}: {exc}); check the address "
                    "(`ray status` on the head node) or use --backend local"
                ) from exc
            self._owns = True
            log.info(
                "ray backend: %s (%s CPUs)",
                f"joined {address}" if address else "started a local Ray instance",
                ray.cluster_resources().get("CPU", "?"),
            )
        self._task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_run_item)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]`` as Ray tasks (at most `workers` in flight)."""
        ray = self._ray
        todo = list(items)
        if not todo:
            return []
        window = self.workers or len(todo)
        refs: list[Any] = []
        try:
            if window >= len(todo):
                refs = [self._task.remote(self.torch_threads, fn, item) for item in todo]
                out: list[R] = ray.get(refs)
                return out
            results: dict[int, R] = {}
            in_flight: dict[Any, int] = {}
            next_i = 0
            while len(results) < len(todo):
                while next_i < len(todo) and len(in_flight) < window:
                    ref = self._task.remote(self.torch_threads, fn, todo[next_i])
                    in_flight[ref] = next_i
                    refs.append(ref)
                    next_i += 1
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    results[in_flight.pop(ref)] = ray.get(ref)
            return [results[i] for i in range(len(todo))]
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise WorkerLostError(
                f"a Ray worker died {self.max_retries + 1} times on the same work item ({type(exc).__name__}); "
                "check the workers' memory and logs (`ray logs`), or raise max_retries"
            ) from exc

    def close(self) -> None:
        """Shut down the Ray instance if this backend started or joined it (idempotent)."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else "local"
        return f"RayBackend({where}, workers={self.workers}, max_retries={self.max_retries})"
