"""Statistics and result schema of the K-shot protocol: Student-t intervals, unit/K/method results, ``eval.json``.

For each K, a unit's score is the success rate (and mean return) of its evaluation episodes; the
reported value is the mean over units, with a two-sided 95 % Student-t interval over units,
``mean +- t_{0.975, n-1} s / sqrt(n)`` (``s`` the sample standard deviation, ``n`` the number of
units). Success intervals are clipped to [0, 1]. With one unit the interval is undefined (NaN,
``null`` in JSON). The t interval treats tasks and seeds as the random units (the question is "how
well does it do on a new task"); episodes within a unit are averaged first, so the interval is not
made falsely narrow by many episodes of one task.

Paired no-adaptation control (`robot_meta.meta.eval.protocol`): for an adapting method at K > 0 a
unit also carries the success and return of the *unadapted* policy on the same evaluation episodes
(`UnitResult.control_success`, ``control_ret``). Per K, `ControlStats` reports the control's mean
success with its interval and the **paired gain**: the mean over units of ``success -
control_success`` with the Student-t interval of those differences (clipped to [-1, 1]). It is the
effect of adaptation on the same episodes, free of the episode-to-episode luck that separates the
K = 0 episodes from the K = k ones. Units without a control (methods that do not adapt, K = 0,
results written before the control existed) have ``None`` there and are left out of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ControlStats",
    "EvalResult",
    "KShotStats",
    "MethodResult",
    "UnitResult",
    "aggregate",
    "load_eval",
    "mean_ci",
    "t_quantile_975",
]

#: t_{0.975, df} for df = 1..30 (standard table values).
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom (two-sided 95 % intervals).

    Exact table values for df <= 30; beyond, the Cornish-Fisher expansion around the normal
    quantile (error below 1e-5 for df > 30).
    """
    if df < 1:
        raise ValueError(f"t_quantile_975 needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def mean_ci(values: Sequence[float], bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of `values` and its two-sided 95 % Student-t interval.

    One value gives ``(x, nan, nan)``; `bounds` clips the interval (e.g. ``(0, 1)`` for rates).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = t_quantile_975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return mean, lo, hi


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitResult:
    """One (task, seed) unit after K shots."""

    seed: int
    task_index: int
    k: int
    success: float
    """Success rate of the unit's evaluation episodes."""
    ret: float
    """Mean return of the unit's evaluation episodes."""
    target_transitions: int
    """Transitions of the target task seen before the evaluation episodes."""
    task: Any = None
    """JSON description of the task."""
    control_success: float | None = None
    """Success rate of the unadapted policy on the same evaluation episodes (None: no control)."""
    control_ret: float | None = None
    """Mean return of the unadapted policy on the same evaluation episodes (None: no control)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "seed": self.seed,
            "task_index": self.task_index,
            "k": self.k,
            "success": self.success,
            "return": self.ret,
            "target_transitions": self.target_transitions,
            "task": self.task,
        }
        if self.control_success is not None:  # no keys without a control: old files stay as they were
            out.update(control_success=self.control_success, control_return=self.control_ret)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitResult:
        return cls(
            int(data["seed"]),
            int(data["task_index"]),
            int(data["k"]),
            float(data["success"]),
            float(data["return"]),
            int(data["target_transitions"]),
            data.get("task"),
            _optional_float(data.get("control_success")),
            _optional_float(data.get("control_return")),
        )


def _optional_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class ControlStats:
    """The paired no-adaptation control after K shots: its success and the paired gain, with 95 % t intervals."""

    success: float
    """Mean over units of the unadapted policy's success on the adapted policy's evaluation episodes."""
    ci_low: float
    ci_high: float
    ret: float
    """Mean over units of the unadapted policy's return on those episodes."""
    gain: float
    """Paired gain: mean over units of (adapted success - control success)."""
    gain_ci_low: float
    gain_ci_high: float
    """The Student-t interval over units of those differences (clipped to [-1, 1])."""
    n_units: int
    """Units with a control (the others are left out)."""

    @classmethod
    def from_units(cls, units: Sequence[UnitResult]) -> ControlStats | None:
        """The control of the units that have one; None if none has."""
        paired = [u for u in units if u.control_success is not None]
        if not paired:
            return None
        control = [float(u.control_success or 0.0) for u in paired]
        c, c_lo, c_hi = mean_ci(control, bounds=(0.0, 1.0))
        r = float(np.mean([math.nan if u.control_ret is None else u.control_ret for u in paired]))
        diffs = [u.success - c_u for u, c_u in zip(paired, control, strict=True)]
        g, g_lo, g_hi = mean_ci(diffs, bounds=(-1.0, 1.0))
        return cls(c, c_lo, c_hi, r, g, g_lo, g_hi, len(paired))

    def to_dict(self) -> dict[str, Any]:
        return {
            "control_success": self.success,
            "control_ci_low": _num(self.ci_low),
            "control_ci_high": _num(self.ci_high),
            "control_return": self.ret,
            "paired_gain": self.gain,
            "paired_gain_ci_low": _num(self.gain_ci_low),
            "paired_gain_ci_high": _num(self.gain_ci_high),
            "n_control_units": self.n_units,
        }


@dataclass(frozen=True)
class KShotStats:
    """Success and return after K shots, over units, with 95 % t intervals."""

    k: int
    success: float
    ci_low: float
    ci_high: float
    ret: float
    ret_ci_low: float
    ret_ci_high: float
    target_transitions: int
    """Mean over units of the target-task transitions seen before evaluation (rounded)."""
    n_units: int
    control: ControlStats | None = None
    """The paired no-adaptation control (None: the method does not adapt, K = 0, or control off)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "success": self.success,
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "return": self.ret,
            "return_ci_low": _num(self.ret_ci_low),
            "return_ci_high": _num(self.ret_ci_high),
            "target_transitions": self.target_transitions,
            "n_units": self.n_units,
        }
        return out if self.control is None else {**out, **self.control.to_dict()}


@dataclass(frozen=True)
class MethodResult:
    """One method's per-K statistics and the unit results they come from."""

    name: str
    per_k: dict[int, KShotStats]
    units: tuple[UnitResult, ...]
    wall_time: float
    """Seconds spent evaluating (and, for scratch, training on the target task)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "K": {str(k): s.to_dict() for k, s in sorted(self.per_k.items())},
            "wall_time": self.wall_time,
            "units": [u.to_dict() for u in self.units],
        }


def aggregate(name: str, units: Sequence[UnitResult], wall_time: float = 0.0) -> MethodResult:
    """Per-K means and 95 % t intervals over the (task, seed) units of one method (and the paired control)."""
    per_k: dict[int, KShotStats] = {}
    for k in sorted({u.k for u in units}):
        us = [u for u in units if u.k == k]
        s, s_lo, s_hi = mean_ci([u.success for u in us], bounds=(0.0, 1.0))
        r, r_lo, r_hi = mean_ci([u.ret for u in us])
        tt = round(float(np.mean([u.target_transitions for u in us])))
        per_k[k] = KShotStats(k, s, s_lo, s_hi, r, r_lo, r_hi, tt, len(us), ControlStats.from_units(us))
    return MethodResult(name, per_k, tuple(units), wall_time)


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` returns and writes to ``eval.json``."""

    split: str
    shots: tuple[int, ...]
    episodes: int
    seeds: tuple[int, ...]
    num_tasks: int
    methods: dict[str, MethodResult]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "shots": list(self.shots),
            "episodes": self.episodes,
            "seeds": list(self.seeds),
            "num_tasks": self.num_tasks,
            "protocol": (
                "per (task, seed) unit: shots collected with the policy's own exploration, adapt after "
                "each; greedy evaluation episodes after K shots; mean over units with 95% Student-t CI; "
                "paired control (when on): at K > 0 the unadapted policy on the same evaluation episodes"
            ),
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            **self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the JSON (atomically) and return its path."""
        from robot_meta.meta.checkpoint import write_json_atomic

        out = Path(path)
        write_json_atomic(out, _finite(self.to_dict()))
        return out

    def table(self) -> str:
        """A plain-text table: method x K -> success [CI] (return), and a paired-gain row under each adapting method."""
        ks = list(self.shots)
        lines = ["method".ljust(14) + "".join(f"K={k}".rjust(26) for k in ks)]
        for name, m in self.methods.items():
            cells, gains = [], []
            for k in ks:
                s = m.per_k.get(k)
                cells.append(
                    "-".rjust(26)
                    if s is None
                    else f"{s.success:.2f} [{s.ci_low:.2f},{s.ci_high:.2f}] {s.ret:7.1f}".rjust(26)
                )
                c = None if s is None else s.control
                gains.append(
                    "-".rjust(26)
                    if c is None
                    else f"{c.gain:+.2f} [{c.gain_ci_low:+.2f},{c.gain_ci_high:+.2f}]".rjust(26)
                )
            lines.append(name.ljust(14) + "".join(cells))
            if any(s.control is not None for s in m.per_k.values()):
                lines.append("  paired gain".ljust(14) + "".join(gains))
        return "\n".join(lines)


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_eval(path: str | Path) -> dict[str, Any]:
    """Read an ``eval.json``."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
