"""The figures of a report: training curves, a strike planner's travel table, task-parameter coverage and the
adaptation GIF."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.report.rollout import AdaptationRollout


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Panels of the training-curve figure: (title, tags, y label).
_CURVE_PANELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "return of training episodes (train tasks, exploring)",
        ("meta/return_pre", "meta/return_post"),
        "return per episode (sum of rewards)",
    ),
    (
        "success of training episodes (train tasks, exploring)",
        ("meta/success_pre", "meta/success_post"),
        "success rate (fraction of episodes)",
    ),
    ("losses (mean per outer update)", (), "loss"),
    ("exploration", ("charts/epsilon",), "epsilon (probability of a random action)"),
)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    head = np.cumsum(y[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(y, kernel, mode="valid")])


def plot_training_curves(
    scalars: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str
) -> Path:
    """A 2x2 figure of the run's scalars (thin: raw, thick: moving average over ~5 % of the run)."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), dpi=100)
    n = max((len(s) for s, _ in scalars.values()), default=1)
    window = max(1, n // 20)
    for ax, (panel, tags, ylabel) in zip(axes.flat, _CURVE_PANELS, strict=True):
        chosen = tags or tuple(t for t in scalars if t.startswith("losses/") and not t.endswith("_norm"))
        for tag in chosen:
            if tag not in scalars:
                continue
            x, y = scalars[tag]
            label = (
                tag.split("/", 1)[1]
                .replace("_pre", ": first episode of a visit")
                .replace("_post", ": last episode of a visit")
            )
            (line,) = ax.plot(x, y, alpha=0.25, lw=0.8)
            ax.plot(x, _smooth(y, window), color=line.get_color(), lw=1.8, label=label)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="0.5")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_fit_curve(curve: Sequence[Sequence[float]], path: Path, title: str) -> Path:
    """A strike planner's learning curve: the travel model's batch MSE against the Adam step."""
    plt = _pyplot()
    pts = np.asarray(curve, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    ax.plot(pts[:, 0], pts[:, 1], color="tab:blue", lw=0.8, alpha=0.5, label="batch")
    # averaged in log space, as the axis shows it: a plain mean of ~10 points is the first batch's
    # error (100x the rest) for as long as that batch is in the window, a false plateau
    smooth = np.exp(_smooth(np.log(np.maximum(pts[:, 1], 1e-12)), max(1, len(pts) // 10)))
    ax.plot(pts[:, 0], smooth, color="tab:blue", lw=2, label="moving average (geometric)")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step of the travel model")
    ax.set_ylabel("squared error of predicted travel, m^2")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_travel_table(planner: Any, path: Path, title: str) -> Path:
    """A `StrikePlanner`'s table: predicted travel per strike, median and 10-90 % band over particles,
    with a few particles drawn thin (each is one train task)."""
    plt = _pyplot()
    travel = np.asarray(planner.travel)
    x = np.arange(travel.shape[1])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for row in travel[:: max(1, len(travel) // 12)]:
        ax.plot(x, row, color="0.6", lw=0.7, alpha=0.7)
    lo, mid, hi = np.percentile(travel, [10, 50, 90], axis=0)
    ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.2, label="10-90 % of the particles")
    ax.plot(x, mid, color="tab:blue", lw=2, label="median particle")
    ax.set_xticks(x, [str(a) for a in planner.strikes])
    ax.set_xlabel("strike (discrete action index, slowest to fastest)")
    ax.set_ylabel("predicted travel of the object, m (1.0 = off the table)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


_SPLIT_STYLE = {"train": ("tab:blue", "o"), "interp": ("tab:orange", "s"), "ood": ("tab:red", "^")}


def plot_task_coverage(dist: Any, pool: Sequence[Mapping[str, Any]], path: Path, n: int = 300) -> Path:
    """Samples of each split in the hidden-parameter space, plus the run's training pool (black crosses)."""
    plt = _pyplot()
    rng = np.random.default_rng(0)
    samples = {s: [t.to_dict() for t in dist.split(s).sample(n, rng)] for s in ("train", "interp", "ood")}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), dpi=100)
    everything = [r for rows in samples.values() for r in rows]

    def varies(key: str) -> bool:
        return len({round(float(r[key]), 9) for r in everything}) > 1

    second = next((k for k in ("terrain_slope_deg", "terrain_roughness") if varies(k)), "lateral_friction")
    pairs = (("object_mass", "lateral_friction", True), ("object_size", second, False))
    for ax, (xk, yk, logx) in zip(axes[:2], pairs, strict=True):
        for split, rows in samples.items():
            color, marker = _SPLIT_STYLE[split]
            ax.scatter(
                [r[xk] for r in rows],
                [r[yk] for r in rows],
                s=9,
                alpha=0.45,
                c=color,
                marker=marker,
                label=split,
            )
        if pool:
            ax.scatter([p[xk] for p in pool if xk in p], [p[yk] for p in pool if yk in p], s=40, c="k", marker="x",
                       label="training pool of this run")  # fmt: skip
        if logx:
            ax.set_xscale("log")
        units = {
            "object_mass": "kg",
            "object_size": "m",
            "terrain_slope_deg": "deg",
            "terrain_roughness": "m",
            "lateral_friction": "",
        }
        ax.set_xlabel(f"{xk} ({units[xk]})" if units[xk] else xk)
        ax.set_ylabel(f"{yk} ({units[yk]})" if units[yk] else yk)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    shapes = sorted({r["object_shape"] for rows in samples.values() for r in rows})
    width = 0.8 / len(samples)
    ax = axes[2]
    for i, (split, rows) in enumerate(samples.items()):
        counts = [sum(r["object_shape"] == s for r in rows) / len(rows) for s in shapes]
        ax.bar(
            np.arange(len(shapes)) + (i - 1) * width, counts, width, color=_SPLIT_STYLE[split][0], label=split
        )
    ax.set_xticks(np.arange(len(shapes)), shapes)
    ax.set_ylabel("fraction of tasks")
    ax.set_title("object shapes", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle(
        f"task-parameter coverage of preset '{dist.name}': train / test (held out) / ood", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _label(frame: np.ndarray, lines: Sequence[str]) -> Any:
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    bar_h = 14 * len(lines) + 6
    canvas = Image.new("RGB", (img.width, img.height + bar_h), (255, 255, 255))
    canvas.paste(img, (0, bar_h))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(lines):
        draw.text((4, 3 + 14 * i), text, fill=(0, 0, 0))
    return canvas


def write_gif(rollout: AdaptationRollout, path: Path, fps: float = 12.5) -> Path:
    """Side-by-side GIF: before (left) and after (right) adaptation; the shorter episode holds its last frame."""
    from PIL import Image

    n = max(len(rollout.before_frames), len(rollout.after_frames))
    frames = []
    for i in range(n):
        left = rollout.before_frames[min(i, len(rollout.before_frames) - 1)]
        right = rollout.after_frames[min(i, len(rollout.after_frames) - 1)]
        done_l = "success" if rollout.before_success else "no success"
        done_r = "success" if rollout.after_success else "no success"
        a = _label(left, ["before adaptation (meta-policy)", f"return {rollout.before_return:.1f}, {done_l}"])
        b = _label(
            right, [f"after 1 shot ({rollout.method})", f"return {rollout.after_return:.1f}, {done_r}"]
        )
        canvas = Image.new("RGB", (a.width + b.width + 6, max(a.height, b.height)), (255, 255, 255))
        canvas.paste(a, (0, 0))
        canvas.paste(b, (a.width + 6, 0))
        frames.append(canvas.convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0, optimize=False
    )
    return path
