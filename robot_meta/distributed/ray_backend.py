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

Authentication: Ray (>= 2.52) clusters may require a token (``ray start --head`` turns it on when
the head has one, e.g. ``~/.ray/auth_token``; Ray 2.61 makes it the default). Ray's client takes
the token from ``RAY_AUTH_TOKEN``, else the file named by ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token``, but only sends it with ``RAY_AUTH_MODE=token``. When ``RAY_AUTH_MODE`` is not
set and this process has a token from one of those sources, joining a cluster turns token mode on
for this process, as Ray itself does for ``address="auto"``; an explicit ``RAY_AUTH_MODE`` is always
respected. Before ``ray.init`` the backend asks the head (one gRPC call, milliseconds) whether it
accepts this process, and a refusal fails at once with what to do (copy the head's token, from
`ray get-auth-token` there, into this machine's ``~/.ray/auth_token`` or ``RAY_AUTH_TOKEN``)
instead of Ray's retries.

Ray is an optional dependency: ``pip install "robot_meta[train,distributed]"``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from robot_meta.distributed.local import WorkerLostError, set_worker_threads

__all__ = ["RayAuthError", "RayBackend", "auth_token_source", "check_auth", "check_reachable", "import_ray"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def import_ray(local: bool = False) -> Any:
    """The ``ray`` module, or an ImportError that says how to install it.

    ``local=True`` (a Ray instance of this process's own, no cluster): unless the caller chose
    otherwise, Ray is imported with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` so that the instance and
    its workers bind to loopback. Ray 2.60 otherwise swaps 127.0.0.1 for the machine's first
    interface address. Ray reads the variable when it is first imported, so this holds only if Ray
    was not imported before.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
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


#: Ray's documentation of token authentication (named in the errors).
AUTH_DOCS = "https://docs.ray.io/en/latest/ray-security/token-auth.html"


class RayAuthError(RuntimeError):
    """The Ray cluster refused this process: token authentication is on and the token is missing or wrong."""


def _default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def auth_token_source() -> tuple[str, str] | None:
    """``(where, token)`` of the Ray auth token this process would send, in Ray's order of precedence
    (``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``), or None."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return "RAY_AUTH_TOKEN", token
    path_var = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidates = [(f"RAY_AUTH_TOKEN_PATH={path_var}", Path(path_var))] if path_var else []
    candidates.append((str(_default_token_path()), _default_token_path()))
    for where, path in candidates:
        try:
            token = path.read_text().strip()
        except OSError:
            if path_var and where.startswith("RAY_AUTH_TOKEN_PATH"):
                raise RayAuthError(
                    f"RAY_AUTH_TOKEN_PATH={path_var} cannot be read: point it at the file holding the "
                    f"cluster's token, or unset it (see {AUTH_DOCS})"
                ) from None
            continue
        if token:
            return where, token
    return None


def check_auth(address: str, token: str | None, timeout: float = 5.0) -> bool | None:
    """Does the Ray head at ``HOST:PORT`` accept requests carrying `token` (None: no token)?

    One ``GetClusterId`` call to the head's GCS with Ray's ``authorization: Bearer`` header. True: accepted;
    False: refused as unauthenticated; None: unknown (another error, or this Ray has no such service).
    """
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:
        return None
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        with grpc.insecure_channel(address) as channel:
            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            request = gcs_service_pb2.GetClusterIdRequest()  # type: ignore[attr-defined]
            stub.GetClusterId(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return False
        log.debug("ray backend: authentication probe of %s inconclusive: %s", address, exc)
        return None
    except Exception as exc:  # a probe must never be the reason a join fails
        log.debug("ray backend: authentication probe of %s failed: %s", address, exc)
        return None
    return True


def _auth_advice(address: str, source: tuple[str, str] | None, mode: str | None) -> str:
    """The error message for a head at `address` that refused this process."""
    fix = (
        "run `ray get-auth-token` on the head node and put that token in this machine's ~/.ray/auth_token "
        "(or in RAY_AUTH_TOKEN / a file named by RAY_AUTH_TOKEN_PATH)"
    )
    if source is None:
        why = "this process has no token"
    elif mode is not None and mode.lower() != "token":
        why = f"RAY_AUTH_MODE={mode} here, so the token from {source[0]} is not sent"
        fix = "unset RAY_AUTH_MODE or set RAY_AUTH_MODE=token"
    else:
        why = f"it rejected the token from {source[0]} (not the head's)"
    return (
        f"the Ray cluster at {address} requires token authentication and {why}: {fix}; "
        f"see {AUTH_DOCS}, or use --backend local"
    )


def _prepare_auth(address: str) -> None:
    """Send the token Ray's way when joining `address`; fail fast (RayAuthError) if the head refuses."""
    if address == "auto" or "://" in address:
        return  # Ray enables token mode itself for "auto"; Ray Client addresses authenticate on their own
    mode = os.environ.get("RAY_AUTH_MODE")
    source = auth_token_source()
    if mode is None and source is not None:
        # As ray.init(address="auto") does when a token exists (Ray's _enable_token_auth).
        os.environ["RAY_AUTH_MODE"] = "token"
        mode = "token"
        try:
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")  # let an already imported Ray see the mode
        except (ImportError, AttributeError):  # pragma: no cover - other Ray versions
            pass
        log.info("ray backend: joining %s with token authentication (token from %s)", address, source[0])
    sent = source[1] if source is not None and mode is not None and mode.lower() == "token" else None
    if check_auth(address, sent) is False:
        raise RayAuthError(_auth_advice(address, source, mode))


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
        ray = import_ray(local=address is None)
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
                kwargs["_node_ip_address"] = "127.0.0.1"  # a local instance stays on loopback
                if runtime_env is None:
                    path = os.pathsep.join(p for p in sys.path if p)
                    runtime_env = {"env_vars": {"PYTHONPATH": path}}
            else:
                try:
                    check_reachable(address)
                except ConnectionError as exc:
                    raise RuntimeError(str(exc)) from exc
                _prepare_auth(address)
                kwargs["address"] = address
            if runtime_env is not None:
                kwargs["runtime_env"] = runtime_env
            try:
                ray.init(**kwargs)
            except ray.exceptions.AuthenticationError as exc:
                raise RayAuthError(
                    _auth_advice(str(address), auth_token_source(), os.environ.get("RAY_AUTH_MODE"))
                ) from exc
            except (ConnectionError, RuntimeError) as exc:
                if address and "auth" in str(exc).lower():
                    raise RayAuthError(
                        _auth_advice(address, auth_token_source(), os.environ.get("RAY_AUTH_MODE"))
                    ) from exc
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
