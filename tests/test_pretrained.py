"""The pretrained run shipped with the package: its files match their recorded hashes, and the command
recorded as its origin still parses and starts."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from robot_meta.cli import build_parser, main
from robot_meta.pretrained import PROVENANCE_FILE, PretrainedError, pretrained_path, verify
from robot_meta.runtime import AdaptivePolicy


def test_shipped_run_matches_its_recorded_hashes_and_loads_on_the_runtime() -> None:
    root = pretrained_path()
    record = verify(root)
    assert {
        "export/manifest.json",
        "export/policy.onnx",
        "export/encoder.onnx",
        "config.json",
        "eval.json",
    } <= set(record["files"])
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 5 * 2**20  # at most 5 MB
    assert (
        record["commands"][0].startswith("robot-meta train --algo context")
        and "--budget full" in record["commands"][0]
    )
    policy = AdaptivePolicy.load(root / "export")
    assert policy.manifest.algo == "context" and policy.manifest.context is not None


def test_a_modified_or_extra_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(pretrained_path(), copy)
    verify(copy)
    (copy / "extra.txt").write_text("x")
    with pytest.raises(PretrainedError, match=r"extra\.txt is not in the provenance record"):
        verify(copy)
    (copy / "extra.txt").unlink()
    cfg = copy / "config.json"
    cfg.write_bytes(cfg.read_bytes() + b" ")
    with pytest.raises(PretrainedError, match=r"config.json has sha256 .* the record says"):
        verify(copy)
    (copy / PROVENANCE_FILE).write_text("{")
    with pytest.raises(PretrainedError, match="cannot be read"):
        verify(copy)
    with pytest.raises(PretrainedError, match="no pretrained run 'nope'"):
        pretrained_path("nope")


def test_recorded_commands_parse_and_the_training_command_starts(tmp_path: Path) -> None:
    record = verify(pretrained_path())
    parser = build_parser()
    run = tmp_path / "run"
    argvs = [shlex.split(c.replace("RUN", str(run)))[1:] for c in record["commands"]]
    for argv in argvs:
        parser.parse_args(argv)  # SystemExit (exit 2) if an option no longer exists
    # The training command starts: one meta-iteration of the recorded configuration.
    assert main([*argvs[0], "--set", "meta_iterations=1"]) == 0
    assert (run / "checkpoint.pt").is_file()
