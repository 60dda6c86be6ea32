"""Exports shared by the runtime tests (built once per session from synthetic trained runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

from export_helpers import export_fake

from robot_meta.meta import TrainedRun


@pytest.fixture(scope="session")
def mdqn_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedRun, Path]:
    out = tmp_path_factory.mktemp("exports") / "mdqn"
    run, _ = export_fake(out)
    return run, out


@pytest.fixture(scope="session")
def context_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedRun, Path]:
    out = tmp_path_factory.mktemp("exports") / "context"
    run, _ = export_fake(out, "context")
    return run, out
