"""Fixtures of the backend tests: one torch thread, the toy env importable, one shared local Ray instance."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

# The toy task family of the meta tests (tests/meta/toy_env.py). On sys.path before Ray starts, so
# that the workers of the local Ray instance (which get this process's sys.path) can import it too.
_META_TESTS = str(Path(__file__).resolve().parent.parent / "meta")
if _META_TESTS not in sys.path:
    sys.path.insert(0, _META_TESTS)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_backend() -> Iterator[Any]:
    """A `RayBackend` on one local Ray instance (2 CPUs) shared by every test, shut down at the end."""
    from robot_meta.distributed.ray_backend import import_ray

    try:
        import_ray(local=True)
    except ImportError:
        pytest.skip(
            "ray is not installed: `pip install 'robot_meta[train,distributed]'` to run the ray backend tests"
        )
    from robot_meta.distributed import get_backend

    backend = get_backend("ray", num_cpus=2, max_retries=3)
    yield backend
    backend.close()
