"""Execution backends for meta-training: where the per-task work of a meta-iteration runs.

A meta-iteration hands its batch of per-task work items to ``backend.map(fn, items)``; ``fn`` is a
module-level (picklable) pure function of its item (meta-parameters, task, seed, ...) and the
results come back in the order of the items, so every backend gives the same results for the
same seed.

- ``get_backend("local")`` (the default): a plain loop in this process; ``workers=N`` (N > 1)
  runs the items on a pool of N local processes (`LocalBackend`). No services.
- ``get_backend("ray")``: Ray tasks on a local Ray instance (``num_cpus=...``) or, with
  ``address=...``, on an existing cluster (`RayBackend`). Needs ``pip install "robot_meta[train,distributed]"``.

A worker process that dies is replaced and its items are re-run (``max_retries``), so an
iteration completes and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, get_args

from robot_meta.distributed.local import LocalBackend, WorkerLostError

if TYPE_CHECKING:
    from robot_meta.distributed.ray_backend import RayBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendName",
    "LocalBackend",
    "RayBackend",
    "WorkerLostError",
    "get_backend",
]

T = TypeVar("T")
R = TypeVar("R")

BackendName = Literal["local", "ray"]
#: Names accepted by `get_backend` (and ``robot-meta train --backend``).
BACKENDS: tuple[str, ...] = get_args(BackendName)


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
    """The execution backend called `name` (see `BACKENDS`), built with `options`.

    ``local`` takes ``workers``, ``start_method``, ``max_retries``, ``torch_threads`` (`LocalBackend`);
    ``ray`` takes ``address``, ``num_cpus``, ``workers``, ``max_retries``, ``torch_threads``,
    ``runtime_env``, ``log_to_driver`` (`RayBackend`). Options set to None are ignored.
    """
    opts = {k: v for k, v in options.items() if v is not None}
    if name == "local":
        unknown = sorted(set(opts) - {"workers", "start_method", "max_retries", "torch_threads"})
        if unknown:
            raise ValueError(f"the local backend does not take {unknown} (did you mean --backend ray?)")
        return LocalBackend(**opts)
    if name == "ray":
        from robot_meta.distributed.ray_backend import RayBackend

        return RayBackend(**opts)
    raise ValueError(f"unknown execution backend {name!r}: choose one of {list(BACKENDS)}")


def __getattr__(name: str) -> Any:
    if name == "RayBackend":  # imported lazily: ray is an optional dependency
        from robot_meta.distributed.ray_backend import RayBackend

        return RayBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_from_cli(
    backend: str | None, workers: int | None = None, ray_address: str | None = None
) -> Backend:
    """The backend of ``robot-meta train --backend NAME --workers N --ray-address ADDR``.

    ``--ray-address`` implies ``--backend ray``. ``--workers``: local, the process-pool size
    (default 1, in process); ray, the CPUs of the local instance and the most tasks in flight
    (default: every CPU of this machine, or of the cluster). Raises ValueError on bad combinations,
    ImportError without Ray, RuntimeError when Ray cannot start or join.
    """
    name = backend if backend is not None else ("ray" if ray_address else "local")
    if name not in BACKENDS:
        raise ValueError(f"unknown execution backend {name!r}: choose one of {list(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"--workers {workers} is invalid: must be >= 1")
    if name == "local":
        if ray_address:
            raise ValueError("--ray-address needs --backend ray (or leave --backend out)")
        return get_backend("local", workers=workers)
    return get_backend("ray", address=ray_address, workers=workers)
