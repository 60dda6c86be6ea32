"""One JSON line per research run: the success columns of a K-shot result, appended to its results file.

Shared by the quick loops and diagnoses in this folder (run as scripts, so this folder is on the path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def success_columns(methods: Mapping[str, Any]) -> dict[str, object]:
    """``{name}_k{K}`` success in %, its 95 % interval, and the paired no-adaptation control when measured."""
    row: dict[str, object] = {}
    for name, m in methods.items():
        for k, st in sorted(m.per_k.items()):
            row[f"{name}_k{k}"] = round(100 * st.success, 1)
            row[f"{name}_k{k}_ci"] = [round(100 * st.ci_low, 1), round(100 * st.ci_high, 1)]
            if st.control is not None:  # the paired no-adaptation control on the same episodes
                row[f"{name}_k{k}_not_adapted"] = round(100 * st.control.success, 1)
                row[f"{name}_k{k}_paired_gain"] = round(100 * st.control.gain, 1)
                row[f"{name}_k{k}_paired_gain_ci"] = [
                    round(100 * st.control.gain_ci_low, 1),
                    round(100 * st.control.gain_ci_high, 1),
                ]
    return row


def append_row(name: str, row: Mapping[str, object]) -> Path:
    """Print ``row`` and append it to ``benchmarks/results/{name}.jsonl``; returns that path."""
    line = json.dumps(row)
    print(line, flush=True)
    out = RESULTS_DIR / f"{name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(line + "\n")
    return out
