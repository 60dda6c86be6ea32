"""`make demo`'s job end to end on the smoke budget: train (the strike planner) -> adapt on the device
(adaptation on and off) -> the K-shot protocol -> report; the printed figures are the computed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_prints_the_figures_it_computed(tmp_path: Path) -> None:
    from robot_meta.demo import run_demo

    lines: list[str] = []
    results = run_demo(
        out=tmp_path / "out", seed=0, n_tasks=2, episodes=3, budget="smoke", rate_hz=0, protocol_tasks=2,
        echo=lines.append,
    )  # fmt: skip
    assert [line[:5] for line in lines if line.startswith("[")] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    saved = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert saved["train"]["first_strikes"] == results["train"]["first_strikes"] == 40  # the smoke fit
    assert saved["commands"]["train"].startswith("robot-meta train --algo strike-planner")
    got = saved["adapt"]
    (summary,) = [line for line in lines if "held-out tasks: before adaptation" in line]
    m = re.search(
        r"before adaptation .* (\d+)%; after adaptation .* (\d+)%; not adapted .* (\d+)%; gain ([+-]\d+) points",
        summary,
    )
    assert m is not None, summary
    assert int(m[1]) == round(100 * got["success_before"])
    assert int(m[2]) == round(100 * got["success_after"])
    assert int(m[3]) == round(100 * got["success_not_adapted"])
    assert int(m[4]) == round(100 * got["gain"])
    per = [a - b for a, b in zip(got["per_task_after"], got["per_task_not_adapted"], strict=True)]
    assert got["gain"] == pytest.approx(sum(per) / len(per))
    assert got["tasks"] == 2 and len(got["success_by_shots"]) == 2
    # every episode strikes once and the puck rests: one posterior update per episode end (not the last)
    assert got["adaptations"] == 2 * 2
    (by_k,) = [line for line in lines if line.strip().startswith("success by K:")]
    for k, v in saved["protocol"]["success"].items():
        assert f"K={k} {100 * v:.0f} %" in by_k
    oracle = saved["protocol"]["privileged_oracle_success"]  # the fit's travel model at the true parameters
    assert 0.0 <= oracle <= 1.0
    assert f"true parameters (no shots): {100 * oracle:.0f} %" in "\n".join(lines)
    page = Path(saved["report"]["path"])
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html")
    assert "the saved strike planner, numpy only" in text and "Solved before adaptation:" in text
    assert (page.parent / "travel_table.png").stat().st_size > 1000
    assert (page.parent / "success_vs_k.png").stat().st_size > 1000
