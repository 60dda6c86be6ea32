"""An export directory's own files: symlinks refused, every manifest number bounded at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from robot_meta.meta import TrainedRun
from robot_meta.runtime import AdaptivePolicy, ManifestError, load_manifest
from robot_meta.runtime.manifest import INT_BOUNDS, MANIFEST_FILE


@pytest.fixture
def export_copy(mdqn_export: tuple[TrainedRun, Path], tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(mdqn_export[1], out)
    return out


def _edit(export: Path, path: str, value: Any) -> None:
    doc = json.loads((export / MANIFEST_FILE).read_text())
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    (export / MANIFEST_FILE).write_text(json.dumps(doc))


def test_manifest_that_is_a_symlink_is_refused(export_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    (export_copy / MANIFEST_FILE).rename(outside)
    (export_copy / MANIFEST_FILE).symlink_to(outside)
    with pytest.raises(ManifestError, match="is a symlink"):
        AdaptivePolicy.load(export_copy)


def test_listed_file_that_is_a_symlink_inside_the_directory_is_refused(export_copy: Path) -> None:
    doc = json.loads((export_copy / MANIFEST_FILE).read_text())
    name = doc["graphs"]["policy"]
    (export_copy / name).rename(export_copy / "real.onnx")
    (export_copy / name).symlink_to("real.onnx")
    with pytest.raises(ManifestError, match="symlink"):
        load_manifest(export_copy)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("adaptation.steps", 1_000_000_000),
        ("adaptation.steps", 0),
        ("adaptation.support_size", 10**12),
        ("adaptation.n_step", 10**6),
        ("adaptation.lr", 1e9),
        ("adaptation.lr", 0.0),
        ("adaptation.huber_delta", 1e30),
        ("adaptation.gamma", 1.5),
        ("observation.dim", 10**9),
        ("head.feature_dim", 10**9),
        ("actions.n", 10**7),
        ("adaptation.steps", True),
        ("adaptation.steps", "5"),
    ],
)
def test_absurd_manifest_numbers_are_refused_at_load(export_copy: Path, field: str, value: Any) -> None:
    _edit(export_copy, field, value)
    with pytest.raises(ManifestError) as exc:
        AdaptivePolicy.load(export_copy)
    key = field.split(".")[-1]
    assert key in str(exc.value) or "observation" in str(exc.value) or "actions" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bounds_allow_what_the_exporter_writes(mdqn_export: tuple[TrainedRun, Path]) -> None:
    m = load_manifest(mdqn_export[1])
    assert m.head_rule is not None and m.head_rule.steps <= INT_BOUNDS["adaptation.steps"]


def test_malformed_layout_is_a_manifest_error(export_copy: Path) -> None:
    _edit(export_copy, "observation.layout", [["x", "seven"]])
    with pytest.raises(ManifestError, match="layout"):
        load_manifest(export_copy)
