"""`make demo`'s job end to end on the smoke budget: train -> export -> adapt -> report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_every_artefact(tmp_path: Path) -> None:
    from robot_meta.demo import run_demo

    lines: list[str] = []
    results = run_demo(out=tmp_path, seed=0, n_tasks=1, episodes=2, budget="smoke", echo=lines.append)
    assert [line[:5] for line in lines if line.startswith("[")] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["train"]["iterations"] == results["train"]["iterations"] > 0
    assert saved["export"]["parity"]["policy_default_head"]["max_abs_diff_q"] <= 1e-5
    assert (tmp_path / "export" / "manifest.json").is_file()
    assert saved["adapt"]["episodes_per_task"] == 2
    page = Path(saved["report"]["path"])
    assert page.is_file() and page.read_text().lstrip().lower().startswith("<!doctype html")
    assert any("success on 1 held-out tasks" in line for line in lines)
