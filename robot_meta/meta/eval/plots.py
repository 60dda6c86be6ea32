"""The success-vs-K plot of an evaluation (one line per method, the 95 % interval as a band).

A method with the paired no-adaptation control also gets the control's success as a thin dashed
line of the same colour (from its K = 0 point, where the two coincide, to every K > 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.meta.eval.stats import MethodResult

__all__ = ["plot_success"]

#: Baselines that do not adapt or adapt by plain fine-tuning (dashed in the plot).
_FIXED_STYLE = frozenset({"domain-rand", "oracle", "finetune"})


def plot_success(
    methods: Mapping[str, MethodResult] | Mapping[str, Mapping[int, Mapping[str, float]]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Success rate vs K (with the 95 % interval as a band) for every method; writes a PNG.

    `methods` is ``{name: MethodResult}`` or the JSON form ``{name: {K: {"success", "ci_low", "ci_high"}}}``
    (with ``"control_success"`` where the K has the paired control).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.6, 4.2), dpi=110)
    entries: list[tuple[str, Any]] = list(methods.items())
    for i, (name, m) in enumerate(entries):
        if isinstance(m, MethodResult):
            rows = {k: (s.success, s.ci_low, s.ci_high) for k, s in m.per_k.items()}
            control = {k: s.control.success for k, s in m.per_k.items() if s.control is not None}
        else:
            control = {
                int(k): float(v["control_success"])
                for k, v in m.items()
                if v.get("control_success") is not None
            }
            rows = {
                int(k): (
                    float(v["success"]),
                    math.nan if v.get("ci_low") is None else float(v["ci_low"]),
                    math.nan if v.get("ci_high") is None else float(v["ci_high"]),
                )
                for k, v in m.items()
            }
        ks = sorted(rows)
        y = np.array([rows[k][0] for k in ks])
        lo = np.array([rows[k][1] for k in ks])
        hi = np.array([rows[k][2] for k in ks])
        style = ":" if name.startswith("scratch") else "--" if name in _FIXED_STYLE else "-"
        # a small horizontal offset keeps overlapping lines (e.g. several at 0 %) apart
        xs = np.asarray(ks, dtype=float) + 0.04 * (i - (len(methods) - 1) / 2) * (max(ks) - min(ks) or 1) / 10
        (line,) = ax.plot(xs, y, marker="o", linestyle=style, label=name)
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.07)
        if control:
            at = {k: (x, rows[k][0]) for k, x in zip(ks, xs, strict=True)}
            ck = [k for k in ks if k in control or (k == 0 and k in at)]
            ax.plot(
                [at[k][0] for k in ck],
                [control.get(k, at[k][1]) for k in ck],
                linestyle="--",
                linewidth=1.0,
                marker="x",
                color=line.get_color(),
                alpha=0.8,
                label=f"{name}: unadapted, same episodes",
            )
    ax.set_xlabel("K (shot episodes on the target task)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.set_xticks(
        sorted({int(k) for m in methods.values() for k in (m.per_k if isinstance(m, MethodResult) else m)})
    )
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
