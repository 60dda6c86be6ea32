"""Execution backends: same seed, same results on local, a local process pool and Ray; a worker
that dies is retried and the iteration completes with the same result."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from crash import CrashingBackend, CrashOnce
from toy_env import toy_config, toy_trainer

from robot_meta.distributed import BACKENDS, LocalBackend, WorkerLostError, get_backend
from robot_meta.meta import MetaTrainer

ALGOS = ("meta-dqn", "reptile", "context")
#: A few iterations with learning from the second one on, so the outer updates depend on what the workers returned.
SHORT = dict(meta_iterations=4, learning_starts=60, checkpoint_interval=2)


def _square(x: int) -> int:
    return x * x


def _pid(_: int) -> int:
    return os.getpid()


def _fail(x: int) -> int:
    raise ValueError(f"bad item {x}")


def _trained(algo: str, backend: Any) -> MetaTrainer[Any]:
    trainer = toy_trainer(toy_config(algo, **SHORT))
    trainer.backend = backend
    trainer.train()
    return trainer


def _assert_same_state(a: MetaTrainer[Any], b: MetaTrainer[Any]) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["counters"] == sb["counters"]
    assert sa["counters"]["updates"] > 0  # the outer loop did run on what the workers returned
    for name, module_state in sa["models"].items():
        for key, value in module_state.items():
            assert torch.equal(value, sb["models"][name][key]), f"{name}.{key} differs between backends"
    for buf_a, buf_b in zip(sa["replay"], sb["replay"], strict=True):
        assert repr(buf_a) == repr(buf_b)
    assert sa["rng"]["numpy"] == sb["rng"]["numpy"]


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalBackend]:
    """One 2-process pool shared by the pool tests (spawning workers that import torch takes seconds)."""
    with LocalBackend(workers=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def local_results() -> dict[str, MetaTrainer[Any]]:
    """Reference runs of every algorithm on the default in-process backend."""
    return {algo: _trained(algo, get_backend("local")) for algo in ALGOS}


def test_backend_names_and_errors() -> None:
    assert BACKENDS == ("local", "ray")
    assert isinstance(get_backend("local"), LocalBackend)
    assert get_backend("local", workers=None).workers == 1  # None means "default"
    with pytest.raises(ValueError, match="unknown execution backend 'dask'"):
        get_backend("dask")
    with pytest.raises(ValueError, match=r"does not take \['address'\]"):
        get_backend("local", address="10.0.0.1:6379")
    with pytest.raises(ValueError, match="workers=0"):
        get_backend("local", workers=0)
    with pytest.raises(ValueError, match="start_method"):
        LocalBackend(2, start_method="thread")  # type: ignore[arg-type]


def test_ray_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(ImportError, match=r"pip install 'robot_meta\[train,distributed\]'"):
        get_backend("ray")


def test_local_pool_keeps_item_order_and_propagates_errors(pool: LocalBackend) -> None:
    assert pool.map(_square, range(7)) == [x * x for x in range(7)]
    assert os.getpid() not in pool.map(_pid, range(4))  # the work ran in the pool
    with pytest.raises(ValueError, match="bad item"):
        pool.map(_fail, [1, 2])
    assert pool.map(_square, []) == []


@pytest.mark.parametrize("algo", ALGOS)
def test_local_pool_gives_the_same_results(
    algo: str, pool: LocalBackend, local_results: dict[str, MetaTrainer[Any]]
) -> None:
    _assert_same_state(local_results[algo], _trained(algo, pool))


def test_killed_local_worker_is_retried(
    tmp_path: Path, pool: LocalBackend, local_results: dict[str, MetaTrainer[Any]]
) -> None:
    marker = tmp_path / "crashed"
    restarts = pool.restarts
    trainer = _trained("meta-dqn", CrashingBackend(pool, marker))
    assert marker.exists(), "no worker was killed"
    assert pool.restarts == restarts + 1
    _assert_same_state(local_results["meta-dqn"], trainer)


def test_local_pool_gives_up_after_max_retries(tmp_path: Path) -> None:
    crash = CrashOnce(_square, str(tmp_path / "marker"))
    with (
        LocalBackend(workers=2, max_retries=0) as pool,
        pytest.raises(WorkerLostError, match="max_retries=0"),
    ):
        pool.map(crash, [1, 2, 3])


# -- Ray (one local instance shared by the tests below) -------------------------------------------------


def test_ray_keeps_item_order_and_runs_elsewhere(ray_backend: Any) -> None:
    assert ray_backend.name == "ray"
    assert ray_backend.map(_square, range(9)) == [x * x for x in range(9)]
    assert os.getpid() not in ray_backend.map(_pid, range(4))
    with pytest.raises(ValueError, match="bad item 1"):
        ray_backend.map(_fail, [1])


def test_local_ray_instance_listens_on_loopback_only(ray_backend: Any) -> None:
    import ray

    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]


def test_ray_with_a_window_of_one_task_in_flight(ray_backend: Any) -> None:
    ray_backend.workers = 1
    try:
        assert ray_backend.map(_square, range(5)) == [0, 1, 4, 9, 16]
    finally:
        ray_backend.workers = None


@pytest.mark.parametrize("algo", ALGOS)
def test_ray_gives_the_same_results_as_local(
    algo: str, ray_backend: Any, local_results: dict[str, MetaTrainer[Any]]
) -> None:
    _assert_same_state(local_results[algo], _trained(algo, ray_backend))


def test_killed_ray_worker_does_not_lose_the_iteration(
    tmp_path: Path, ray_backend: Any, local_results: dict[str, MetaTrainer[Any]]
) -> None:
    marker = tmp_path / "crashed"
    trainer = _trained("meta-dqn", CrashingBackend(ray_backend, marker))
    assert marker.exists(), "no Ray worker was killed"
    assert int(marker.read_text()) != os.getpid()
    assert trainer.iteration == SHORT["meta_iterations"]
    _assert_same_state(local_results["meta-dqn"], trainer)


def test_unreachable_ray_address_fails_fast_with_advice() -> None:
    from robot_meta.distributed.ray_backend import check_reachable

    with pytest.raises(
        ConnectionError, match=r"cannot reach the Ray head at 127\.0\.0\.1:1 .*ray start --head"
    ):
        check_reachable("127.0.0.1:1", timeout=2.0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        check_reachable("no-port-here")
    check_reachable("auto")  # left to Ray
    check_reachable("ray://head:10001")
