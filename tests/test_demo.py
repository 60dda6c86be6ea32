"""`make demo`'s job end to end on the smoke budget: train -> export -> adapt (pretrained and short run) -> report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_prints_the_figures_it_computed(tmp_path: Path) -> None:
    from robot_meta.demo import run_demo
    from robot_meta.pretrained.build import QUICK, build

    pretrained = tmp_path / "pretrained" / "slide-context"
    build(pretrained, QUICK)  # the shipped run's steps on the smoke budget
    lines: list[str] = []
    results = run_demo(
        out=tmp_path / "out", seed=0, n_tasks=2, episodes=3, budget="smoke", rate_hz=0,
        pretrained=pretrained, echo=lines.append,
    )  # fmt: skip
    assert [line[:5] for line in lines if line.startswith("[")] == [
        "[1/5]",
        "[2/5]",
        "[3/5]",
        "[4/5]",
        "[5/5]",
    ]
    saved = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert saved["train"]["iterations"] == results["train"]["iterations"] > 0
    assert saved["export"]["parity"]["policy_default_head"]["max_abs_diff_q"] <= 1e-5
    assert saved["pretrained"]["commands"][0] == QUICK[0]
    # The summary lines print exactly the computed figures (pretrained first, then the short run).
    summaries = [line for line in lines if "held-out tasks (episodes 2-3" in line]
    assert len(summaries) == 2
    for line, key in zip(summaries, ("adapt", "adapt_short_run"), strict=True):
        got = saved[key]
        m = re.search(r"adapted (\d+)%, not adapted (\d+)% .* gain ([+-]\d+) points", line)
        assert m is not None, line
        assert int(m[1]) == round(100 * got["success_after"]) and int(m[2]) == round(
            100 * got["success_not_adapted"]
        )
        assert int(m[3]) == round(100 * got["gain"])
        per = [a - b for a, b in zip(got["per_task_after"], got["per_task_not_adapted"], strict=True)]
        assert got["gain"] == pytest.approx(sum(per) / len(per))
        assert got["tasks"] == 2
    page = Path(saved["report"]["path"])
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html")
    assert "acted by the on-device runtime" in text and "Solved before adaptation:" in text
