"""``robot-meta report RUN``: one HTML page (plus PNGs and a GIF) that shows what a run learned.

`write_report` writes into ``RUN/report/`` (or `out`):

- ``training_curves.png`` - the TensorBoard scalars of the run (``meta/`` returns and success before
  and after the in-visit adaptation, ``losses/``, exploration) against the meta-iteration;
- ``success_vs_k.png`` - success rate vs K shots for every method in ``RUN/eval.json`` (written by
  ``robot-meta evaluate RUN``), with 95 % intervals; if the run was not evaluated yet the page says so;
- ``task_coverage.png`` - where the train / test / ood splits of the run's task distribution lie in
  the hidden-parameter space (mass, friction, size, slope, shapes), with the run's training pool;
- ``adaptation.gif`` - the robot on a held-out test task, before adaptation (the meta-policy,
  greedy) and after adapting on one shot episode (the run's own rule: head TD steps for meta-dqn and
  reptile, the context encoder for context), from the same start state, side by side. Rendered
  headless with PyBullet's TinyRenderer (no display needed);
- ``index.html`` - the page, with relative links only (open it from disk or serve the folder).

`screenshot` takes a PNG of the page with a headless Chromium/Chrome if one is installed
(`find_browser`); `check_page` loads it the same way and reports broken images.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "ADAPTATION_GIF",
    "COVERAGE_PNG",
    "CURVES_PNG",
    "REPORT_DIR",
    "REPORT_HTML",
    "SUCCESS_PNG",
    "AdaptationRollout",
    "PageCheck",
    "ReportError",
    "check_page",
    "find_browser",
    "read_scalars",
    "record_adaptation",
    "screenshot",
    "write_report",
]

log = logging.getLogger(__name__)

REPORT_DIR = "report"
REPORT_HTML = "index.html"
CURVES_PNG = "training_curves.png"
SUCCESS_PNG = "success_vs_k.png"
COVERAGE_PNG = "task_coverage.png"
ADAPTATION_GIF = "adaptation.gif"

#: Browser executables tried by `find_browser`, in order.
BROWSERS = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "headless_shell",
)


class ReportError(RuntimeError):
    """The run directory cannot be reported on (the message says what to do)."""


# -- data ---------------------------------------------------------------------------------------------


def read_scalars(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every TensorBoard scalar of ``RUN/tensorboard``: ``{tag: (steps, values)}`` (last write per step wins)."""
    from robot_meta.meta.checkpoint import TENSORBOARD_DIR

    tb = Path(run_dir) / TENSORBOARD_DIR
    if not tb.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for events in sorted(tb.glob("events.out.tfevents.*")):  # resumed runs have several files
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                series.setdefault(tag, {})[int(ev.step)] = float(ev.value)
    return {
        tag: (np.array(sorted(points)), np.array([points[s] for s in sorted(points)]))
        for tag, points in sorted(series.items())
    }


@dataclass
class AdaptationRollout:
    """The before/after episodes of `record_adaptation` (frames are ``(H, W, 3)`` uint8)."""

    method: str
    task: dict[str, Any]
    before_frames: list[np.ndarray] = field(default_factory=list)
    after_frames: list[np.ndarray] = field(default_factory=list)
    before_return: float = 0.0
    after_return: float = 0.0
    before_success: bool = False
    after_success: bool = False
    shot_transitions: int = 0


def _episode(
    env: Any, task: Any, seed: int | None, act: Any, frames: list[np.ndarray] | None, every: int, bar: Any
) -> tuple[list[tuple[np.ndarray, int, float, np.ndarray, bool]], float, bool]:
    obs, _ = env.reset(seed=seed, options={"task": task})
    if frames is not None:
        frames.append(env.render())
    steps: list[tuple[np.ndarray, int, float, np.ndarray, bool]] = []
    ret, success, t = 0.0, False, 0
    while True:
        a = int(act(obs))
        next_obs, reward, terminated, truncated, info = env.step(a)
        steps.append((obs, a, float(reward), next_obs, bool(terminated)))
        ret += float(reward)
        success = bool(info.get("is_success", False))
        t += 1
        if frames is not None and (t % every == 0 or terminated or truncated):
            frames.append(env.render())
        bar.update(1)
        obs = next_obs
        if terminated or truncated:
            return steps, ret, success


def record_adaptation(
    run_dir: str | Path,
    *,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    frame_every: int = 2,
    progress: bool | None = None,
) -> AdaptationRollout:
    """Roll out the run's policy on a held-out test task before and after one shot of adaptation.

    Before: the meta-policy, greedy. Shot: one episode with the policy's own exploration, observed by
    the run's adapter (`robot_meta.meta.eval.methods_for_run`; for reptile the head rule
    ``reptile-head``, the one that runs on the device), then ``adapt()``. After: the adapted policy,
    greedy, from the same start state as before. Frames every `frame_every` control steps.
    """
    import gymnasium as gym
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta import load_run
    from robot_meta.meta.eval import methods_for_run
    from robot_meta.meta.work import task_to_dict

    run = load_run(run_dir)
    methods = methods_for_run(run)
    method = next((m for m in methods if m.name.endswith("-head")), methods[0])
    dist_info = run.info.get("task_distribution")
    try:
        dist = (
            TaskDistribution.from_dict(dist_info) if dist_info else TaskDistribution.preset(run.config.preset)
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"cannot rebuild the task distribution of {run_dir} ({exc}); retrain the run"
        ) from exc
    rng = np.random.default_rng([seed, 0x61F])
    task = dist.split("test").sample(1, rng)[0]
    env = gym.make(run.config.env_id, action_mode="discrete", render_mode="rgb_array", render_size=size)
    adapter = method.adapter(seed)
    adapter.begin(task, rng)
    out = AdaptationRollout(method.name, task_to_dict(task))
    before_seed, shot_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    show = sys.stderr.isatty() if progress is None else progress
    limit = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else 50
    try:
        with (
            torch.inference_mode(False),
            tqdm(total=3 * limit, desc="adaptation gif", unit="step", disable=not show, leave=False) as bar,
        ):
            _, out.before_return, out.before_success = _episode(
                env, task, before_seed, lambda o: adapter.act(o, True), out.before_frames, frame_every, bar
            )
            shot, _, _ = _episode(
                env, task, shot_seed, lambda o: adapter.act(o, False), None, frame_every, bar
            )
            for step in shot:
                adapter.observe(*step)
            adapter.adapt()
            out.shot_transitions = len(shot)
            _, out.after_return, out.after_success = _episode(
                env, task, before_seed, lambda o: adapter.act(o, True), out.after_frames, frame_every, bar
            )
    finally:
        env.close()
    return out


# -- figures ------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Panels of the training-curve figure: (title, tags, y label).
_CURVE_PANELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("return per episode", ("meta/return_pre", "meta/return_post"), "return"),
    ("success", ("meta/success_pre", "meta/success_post"), "success rate"),
    ("losses", (), "loss"),
    ("exploration and data", ("charts/epsilon",), "epsilon"),
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
        chosen = tags or tuple(t for t in scalars if t.startswith("losses/") and "grad_norm" not in t)
        for tag in chosen:
            if tag not in scalars:
                continue
            x, y = scalars[tag]
            label = (
                tag.split("/", 1)[1]
                .replace("_pre", " before adaptation")
                .replace("_post", " after adaptation")
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


# -- the page -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
img { max-width: 100%; border: 1px solid #eee; } .muted { color: #666; } .note { background: #fff8e1;
padding: 0.6rem 0.9rem; border-left: 4px solid #f0b400; }
table { border-collapse: collapse; font-size: 0.9rem; } td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; }
th { background: #f5f5f5; } code { background: #f3f3f3; padding: 0 0.2rem; }
"""

#: Marks the page when images fail to load (read by `check_page`; harmless in a browser).
_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var broken = Array.prototype.filter.call(document.images, function (i) {
    return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute("data-broken-images", String(broken.length));
  if (broken.length) { console.error("report: " + broken.length + " image(s) failed to load"); }
});
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _eval_section(eval_path: Path, out_dir: Path, run_dir: Path) -> str:
    if not eval_path.exists():
        return (
            '<p class="note">not evaluated yet &mdash; run <code>robot-meta evaluate '
            f"{_esc(run_dir)}</code></p>"
        )
    try:
        data = json.loads(eval_path.read_text())
        methods = {name: dict(m.get("K", m)) for name, m in data["methods"].items()}
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        return f'<p class="note">{_esc(eval_path)} could not be read ({_esc(exc)}): re-run <code>robot-meta evaluate {_esc(run_dir)}</code></p>'
    from robot_meta.meta.eval import plot_success

    plot_success(methods, out_dir / SUCCESS_PNG, title=f"success vs K on the {data.get('split', '?')} split")
    ks = sorted({int(k) for m in methods.values() for k in m})
    head = "".join(f"<th>K = {k}</th>" for k in ks)
    rows = []
    for name, per_k in methods.items():
        cells = []
        for k in ks:
            v = per_k.get(str(k), per_k.get(k))
            if not v:
                cells.append("<td>&ndash;</td>")
                continue
            lo, hi = v.get("ci_low"), v.get("ci_high")
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            ret = (
                f"<br><span class='muted'>return {v['return']:.1f}</span>"
                if v.get("return") is not None
                else ""
            )
            cells.append(f"<td>{v['success']:.2f}{ci}{ret}</td>")
        rows.append(f"<tr><th>{_esc(name)}</th>{''.join(cells)}</tr>")
    protocol = _esc(data.get("protocol", ""))
    details = f"split <b>{_esc(data.get('split', '?'))}</b>, {data.get('num_tasks', '?')} tasks x seeds {_esc(data.get('seeds', '?'))}, {data.get('episodes', '?')} evaluation episodes per unit"
    return (
        f'<img src="{SUCCESS_PNG}" alt="success rate vs K shots">'
        f"<p class='muted'>{details}. {protocol}. Success rate with 95 % interval, mean return below.</p>"
        f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"
    )


def _config_table(info: Mapping[str, Any]) -> str:
    cfg = info.get("config", {})
    rows = "".join(
        f"<tr><th>{_esc(k)}</th><td><code>{_esc(json.dumps(v))}</code></td></tr>" for k, v in cfg.items()
    )
    return f"<details><summary>configuration ({len(cfg)} fields)</summary><table>{rows}</table></details>"


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    gif: bool = True,
    seed: int = 0,
    gif_size: tuple[int, int] = (320, 240),
    progress: bool | None = None,
) -> Path:
    """Write the HTML report of a run (and its PNGs and GIF); returns the path of ``index.html``.

    Args:
        run_dir: a run directory of ``robot-meta train`` (``config.json``, ``checkpoint.pt``, ...).
        out: output folder (default ``RUN/report``); created if needed, files overwritten.
        gif: render the before/after adaptation GIF (about 10-30 s of headless rendering).
        seed: picks the held-out task and the episode seeds of the GIF.
        gif_size: (width, height) of each panel of the GIF, pixels.
        progress: show progress bars (default: when stderr is a terminal).
    """
    from robot_meta.meta.checkpoint import CHECKPOINT_FILE, CONFIG_FILE

    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file():
        raise ReportError(
            f"{run} is not a run directory (no {CONFIG_FILE}): train one first, e.g. "
            f"`robot-meta train --algo meta-dqn --env robot_meta/PandaReach-v0 --out {run}`"
        )
    try:
        info: dict[str, Any] = json.loads((run / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(
            f"{run / CONFIG_FILE} cannot be read ({exc}): train into a new --out directory"
        ) from exc
    out_dir = Path(out) if out is not None else run / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    algo, env_id = info.get("algo", "?"), info.get("env", {}).get("env_id", "?")
    cfg = info.get("config", {})
    sections: dict[str, str] = {}
    stages = ["curves", "evaluation", "coverage", *(["gif"] if gif else [])]
    with tqdm(total=len(stages), desc="report", unit="part", disable=not show) as bar:
        # training curves
        scalars = read_scalars(run)
        iterations = int(max((s[-1] for s, _ in scalars.values() if len(s)), default=0))
        if scalars:
            plot_training_curves(scalars, out_dir / CURVES_PNG, f"{algo} on {env_id}")
            sections["Training curves"] = (
                f'<img src="{CURVES_PNG}" alt="training curves">'
                "<p class='muted'>From the run's TensorBoard logs (<code>tensorboard --logdir "
                f"{_esc(run)}</code> for every scalar). <i>before adaptation</i>: the first episode of each "
                "task visit, acting with the meta-policy; <i>after adaptation</i>: the last episode of the "
                "visit, after the algorithm's own few-shot adaptation.</p>"
            )
        else:
            sections["Training curves"] = (
                '<p class="note">no TensorBoard scalars yet (has training started?)</p>'
            )
        bar.update(1)
        # evaluation
        sections["Success vs K shots"] = _eval_section(run / "eval.json", out_dir, run)
        bar.update(1)
        # coverage
        from robot_meta.envs import TaskDistribution

        try:
            dist_info = info.get("task_distribution")
            dist = (
                TaskDistribution.from_dict(dist_info) if dist_info else TaskDistribution.preset(cfg["preset"])
            )
            plot_task_coverage(
                dist, [p for p in info.get("task_pool", []) if isinstance(p, dict)], out_dir / COVERAGE_PNG
            )
            sections["Task-parameter coverage"] = (
                f'<img src="{COVERAGE_PNG}" alt="task-parameter coverage of train, test and ood">'
                "<p class='muted'>Samples of each split of the run's task distribution in the hidden-parameter "
                "space. Test regions are disjoint from train (held-out values and shape); ood extrapolates "
                "beyond the train ranges. Black crosses: the training pool this run actually used.</p>"
            )
        except (KeyError, TypeError, ValueError) as exc:
            sections["Task-parameter coverage"] = (
                f'<p class="note">the task distribution of this run is unknown ({_esc(exc)})</p>'
            )
        bar.update(1)
        # gif
        if gif:
            if (run / CHECKPOINT_FILE).is_file():
                rollout = record_adaptation(run, seed=seed, size=gif_size, progress=show)
                write_gif(rollout, out_dir / ADAPTATION_GIF)
                task = (
                    ", ".join(
                        f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                        for k, v in rollout.task.items()
                    )
                    if isinstance(rollout.task, dict)
                    else rollout.task
                )
                sections["Before and after adaptation"] = (
                    f'<img src="{ADAPTATION_GIF}" alt="the robot before and after adaptation">'
                    f"<p class='muted'>A held-out test task ({_esc(task)}). Left: the meta-policy, greedy. "
                    f"Right: the same start state after adapting on one shot episode ({rollout.shot_transitions} "
                    f"transitions, method <code>{_esc(rollout.method)}</code>). Return "
                    f"{rollout.before_return:.1f} &rarr; {rollout.after_return:.1f}.</p>"
                )
            else:
                sections["Before and after adaptation"] = (
                    '<p class="note">no checkpoint yet: train the run first</p>'
                )
            bar.update(1)
    when = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    summary = (
        f"<code>{_esc(algo)}</code> on <code>{_esc(env_id)}</code>, task preset <code>{_esc(cfg.get('preset', '?'))}</code>, "
        f"seed {_esc(cfg.get('seed', '?'))}, budget <code>{_esc(cfg.get('budget', '?'))}</code>: "
        f"{iterations} of {_esc(cfg.get('meta_iterations', '?'))} meta-iterations logged."
    )
    body = "\n".join(f"<h2>{_esc(title)}</h2>\n{content}" for title, content in sections.items())
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>robot_meta report: {_esc(run.name or run)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>robot_meta report: {_esc(run.name or run)}</h1>
<p class="muted">{summary} Written {when} from <code>{_esc(run.resolve())}</code>.</p>
{_config_table(info)}
{body}
<script>{_CHECK_SCRIPT}</script>
</body>
</html>
"""
    path = out_dir / REPORT_HTML
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    log.info("report written to %s", path)
    return path


# -- headless browser ---------------------------------------------------------------------------------


def find_browser() -> str | None:
    """The path of a Chromium/Chrome executable on PATH (see `BROWSERS`), or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(browser: str | None) -> str:
    exe = browser or find_browser()
    if exe is None:
        raise ReportError(
            "no headless browser found: install Chromium (`apt-get install chromium`) or Chrome, "
            f"or pass its path (tried {', '.join(BROWSERS)})"
        )
    return exe


def _headless(exe: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class PageCheck:
    """What a headless browser saw when it loaded a page."""

    broken_images: int | None
    """Images that failed to load (None if the page's check script did not run)."""
    console_errors: tuple[str, ...]
    """Console errors and uncaught exceptions logged by the page."""

    @property
    def ok(self) -> bool:
        return self.broken_images == 0 and not self.console_errors


def _console_errors(stderr: str) -> Iterator[str]:
    for line in stderr.splitlines():
        if "Uncaught" in line or ("CONSOLE" in line and "error" in line.lower()):
            yield line.strip()


def check_page(page: str | Path, *, browser: str | None = None, timeout: float = 60.0) -> PageCheck:
    """Load `page` in a headless browser; count broken images and collect console errors."""
    exe = _browser(browser)
    url = Path(page).resolve().as_uri()
    res = _headless(exe, "--virtual-time-budget=5000", "--dump-dom", url, timeout=timeout)
    m = re.search(r'data-broken-images="(\d+)"', res.stdout)
    return PageCheck(int(m.group(1)) if m else None, tuple(_console_errors(res.stderr)))


def screenshot(
    page: str | Path,
    png: str | Path,
    *,
    size: tuple[int, int] = (1200, 2600),
    browser: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """A PNG screenshot of `page` (``width x height`` pixels) taken by a headless Chromium/Chrome."""
    exe = _browser(browser)
    out = Path(png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    res = _headless(
        exe,
        f"--screenshot={out}",
        f"--window-size={size[0]},{size[1]}",
        "--virtual-time-budget=5000",
        Path(page).resolve().as_uri(),
        timeout=timeout,
    )
    if not out.is_file():
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        raise ReportError(f"{exe} wrote no screenshot (exit {res.returncode}): {tail}")
    return out
