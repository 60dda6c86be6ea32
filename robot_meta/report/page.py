"""The page of a report: `write_report` assembles ``index.html`` from the figures and ``eval.json``."""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from robot_meta.report.figures import (
    plot_fit_curve,
    plot_task_coverage,
    plot_training_curves,
    plot_travel_table,
    write_gif,
)
from robot_meta.report.names import (
    ADAPTATION_GIF,
    COVERAGE_PNG,
    CURVES_PNG,
    EXPORT_SUBDIR,
    FIT_CURVE_PNG,
    REPORT_DIR,
    REPORT_HTML,
    SUCCESS_PNG,
    TRAVEL_PNG,
    ReportError,
)
from robot_meta.report.rollout import TASK_RULE, read_scalars, record_adaptation

log = logging.getLogger("robot_meta.report")

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
            gain = ""
            if v.get("paired_gain") is not None:
                g_lo, g_hi = v.get("paired_gain_ci_low"), v.get("paired_gain_ci_high")
                g_ci = f" [{g_lo:+.2f}, {g_hi:+.2f}]" if g_lo is not None and g_hi is not None else ""
                gain = (
                    f"<br><span class='muted'>not adapted {v['control_success']:.2f}, "
                    f"paired gain <b>{v['paired_gain']:+.2f}</b>{g_ci}</span>"
                )
            cells.append(f"<td>{v['success']:.2f}{ci}{ret}{gain}</td>")
        rows.append(f"<tr><th>{_esc(name)}</th>{''.join(cells)}</tr>")
    protocol = _esc(data.get("protocol", ""))
    details = f"split <b>{_esc(data.get('split', '?'))}</b>, {data.get('num_tasks', '?')} tasks x seeds {_esc(data.get('seeds', '?'))}, {data.get('episodes', '?')} evaluation episodes per unit"
    return (
        f'<img src="{SUCCESS_PNG}" alt="success rate vs K shots">'
        f"<p class='muted'>{details}. {protocol}. Success rate with 95 % interval, mean return below; "
        "<i>not adapted</i>: the same evaluation episodes (same starts and goals) acted by the policy before "
        "any shot, and the <i>paired gain</i> = adapted minus not adapted over units (95 % interval), "
        "adaptation's own effect, without episode-to-episode luck.</p>"
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
    from robot_meta.meta.checkpoint import CONFIG_FILE
    from robot_meta.runtime.strike import is_strike_planner_dir

    run = Path(run_dir)
    if is_strike_planner_dir(run):
        return _write_strike_report(run, out, gif=gif, seed=seed, gif_size=gif_size, progress=progress)
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
    sections: dict[str, str] = {}
    stages = ["curves", "evaluation", "coverage", *(["gif"] if gif else [])]
    with tqdm(total=len(stages), desc="report", unit="part", disable=not show) as bar:
        teacher = algo == "context" and bool(info.get("config", {}).get("teacher", False))
        sections["Training curves"], iterations = _curves_section(
            run, out_dir, f"{algo} on {env_id}", teacher
        )
        bar.update(1)
        sections["Success vs K shots"] = _eval_section(run / "eval.json", out_dir, run)
        bar.update(1)
        sections["Task-parameter coverage"] = _coverage_section(info, out_dir)
        bar.update(1)
        if gif:
            sections["Before and after adaptation"] = _gif_section(run, out_dir, seed, gif_size, show)
            bar.update(1)
    return _write_page(out_dir, _page(run, info, sections, iterations))


def _write_page(out_dir: Path, page: str) -> Path:
    path = out_dir / REPORT_HTML
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    log.info("report written to %s", path)
    return path


def _write_strike_report(
    run: Path,
    out: str | Path | None,
    *,
    gif: bool,
    seed: int,
    gif_size: tuple[int, int],
    progress: bool | None,
) -> Path:
    """The report of a saved strike planner (``robot-meta train --algo strike-planner``): its fit and
    travel table, success vs K (``eval.json`` of ``robot-meta evaluate``), coverage and the GIF."""
    from robot_meta.meta.strike import FIT_FILE
    from robot_meta.runtime.strike import StrikePlanner

    planner = StrikePlanner.load(run)  # sha256 checked, as on a controller
    try:
        fit: dict[str, Any] = json.loads((run / FIT_FILE).read_text())
    except (OSError, ValueError):
        fit = {}
    cfg = dict(fit.get("config", {}))
    info = {"algo": "strike-planner", "env": {"env_id": planner.env_id}, "config": cfg,
            "task_distribution": planner.train_distribution}  # fmt: skip
    out_dir = Path(out) if out is not None else run / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    plot_travel_table(planner, out_dir / TRAVEL_PNG, f"strike planner on {planner.env_id}")
    n_part, n_strikes = planner.travel.shape
    curve = fit.get("fit_curve")
    if curve:
        plot_fit_curve(curve, out_dir / FIT_CURVE_PNG, "travel model fit (the learning curve)")
        learning = (
            f'<img src="{FIT_CURVE_PNG}" alt="learning curve of the travel model">'
            "<p class='muted'>x: Adam steps of the travel model on the collected first strikes (train tasks); "
            "y: squared error of its predicted travel on each batch of strikes, m^2 (log scale; thin: per "
            "batch, thick: moving geometric mean). Lower is better: the table below is this model evaluated on the "
            "particles. There are no episodes here: the planner learns from the shots on the device.</p>"
        )
    else:
        learning = '<p class="note">this fit recorded no learning curve (refit it with this version)</p>'
    sections = {
        "Learning curve of the travel model": learning,
        "The travel model and its particles": (
            f'<img src="{TRAVEL_PNG}" alt="predicted travel of every strike on the particle tasks">'
            f"<p class='muted'>A small MLP fitted on {_esc(fit.get('first_strikes', '?'))} random first strikes on "
            f"train tasks (travel RMSE {fit.get('train_rmse_m', float('nan')):.3f} m, "
            f"{fit.get('fit_cpu_seconds', float('nan')):.0f} CPU-s), tabulated on {n_part} train-task particles "
            f"x {n_strikes} strikes. x: the strike (slowest to fastest), y: the object's predicted travel; the band "
            "holds 80 % of the particles. On the device each shot's observed travel reweights the particles "
            f"(Gaussian likelihood, sigma {planner.sigma:g} m) and the planner plays the strike that lands within "
            f"{planner.window:g} m of the goal on the largest posterior share.</p>"
        ),
        "Success vs K shots": _eval_section(run / "eval.json", out_dir, run),
        "Task-parameter coverage": _coverage_section(info, out_dir),
    }
    if gif:
        sections["Before and after adaptation"] = _gif_section(run, out_dir, seed, gif_size, show)
    summary = (
        f"<code>strike-planner</code> on <code>{_esc(planner.env_id)}</code>, task preset "
        f"<code>{_esc(cfg.get('preset', '?'))}</code>, seed {_esc(cfg.get('seed', '?'))}: {n_part} particles x "
        f"{n_strikes} strikes."
    )
    return _write_page(out_dir, _page(run, info, sections, 0, summary=summary))


def _curves_section(run: Path, out_dir: Path, title: str, teacher: bool = False) -> tuple[str, int]:
    """The training-curve section and the last meta-iteration logged (`teacher`: an RMA-style context run)."""
    scalars = read_scalars(run)
    iterations = int(max((s[-1] for s, _ in scalars.values() if len(s)), default=0))
    if scalars:
        plot_training_curves(scalars, out_dir / CURVES_PNG, title)
        section = (
            f'<img src="{CURVES_PNG}" alt="training curves">'
            "<p class='muted'>From the run's TensorBoard logs (<code>tensorboard --logdir "
            f"{_esc(run)}</code> for every scalar). x: meta-iterations (one = visits of a batch of train "
            "tasks, then the outer update). <i>first episode of a visit</i>: the policy before the visit's "
            "adaptation; <i>last episode</i>: after the algorithm's own few-shot adaptation within the "
            "visit. Both explore (epsilon, bottom right), on <b>train</b> tasks: the held-out success is "
            "in the next section."
            + (
                " For this context run trained RMA-style, most visits act with the embedding of the task's "
                "true parameters (the teacher), so these curves show the policy's learning, not its "
                "adaptation."
                if teacher
                else ""
            )
            + "</p>"
        )
    else:
        section = '<p class="note">no TensorBoard scalars yet (has training started?)</p>'
    return section, iterations


def _coverage_section(info: Mapping[str, Any], out_dir: Path) -> str:
    """Where the splits of the run's task distribution lie, with its training pool."""
    from robot_meta.envs import TaskDistribution

    cfg = info.get("config", {})
    try:
        dist_info = info.get("task_distribution")
        dist = TaskDistribution.from_dict(dist_info) if dist_info else TaskDistribution.preset(cfg["preset"])
        plot_task_coverage(
            dist, [p for p in info.get("task_pool", []) if isinstance(p, dict)], out_dir / COVERAGE_PNG
        )
        return (
            f'<img src="{COVERAGE_PNG}" alt="task-parameter coverage of train, test and ood">'
            "<p class='muted'>Samples of each split of the run's task distribution in the hidden-parameter "
            "space. The test split draws unseen tasks from the train regions (so it is not drawn apart); "
            "interp holds the intervals between them and a held-out shape; ood extrapolates beyond the "
            "train ranges. Black crosses: the training pool this run actually used.</p>"
        )
    except (KeyError, TypeError, ValueError) as exc:
        return f'<p class="note">the task distribution of this run is unknown ({_esc(exc)})</p>'


def _gif_section(run: Path, out_dir: Path, seed: int, gif_size: tuple[int, int], show: bool) -> str:
    """The before/after adaptation GIF on a held-out task (a run with a checkpoint or an export)."""
    from robot_meta.meta.checkpoint import CHECKPOINT_FILE
    from robot_meta.runtime.strike import is_strike_planner_dir

    if not (
        (run / CHECKPOINT_FILE).is_file()
        or (run / EXPORT_SUBDIR / "manifest.json").is_file()
        or is_strike_planner_dir(run)
    ):
        return '<p class="note">no checkpoint yet: train the run first</p>'
    rollout = record_adaptation(run, seed=seed, size=gif_size, progress=show)
    write_gif(rollout, out_dir / ADAPTATION_GIF)
    task = (
        ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in rollout.task.items())
        if isinstance(rollout.task, dict)
        else rollout.task
    )
    acted = {
        "export": "the on-device runtime of the run's export (numpy + onnxruntime)",
        "strike-planner": "the saved strike planner, numpy only, as on a controller",
    }.get(rollout.source, "the run's checkpoint (torch)")
    return (
        f'<img src="{ADAPTATION_GIF}" alt="the robot before and after adaptation">'
        f"<p class='muted'><b>Solved before adaptation: {rollout.solved_before} of {rollout.tried} held-out test "
        f"tasks; after one shot: {rollout.solved_after} of {rollout.tried}</b> (seed {seed}; one greedy episode "
        f"each, from the same start state before and after). Shown: task {rollout.chosen + 1} of "
        f"{rollout.tried} ({_esc(task)}), chosen as {_esc(TASK_RULE)}. Left (<i>before</i>): the meta-trained "
        f"policy, greedy, knowing nothing of the task. Right (<i>after</i>): the same start state after the "
        f"policy adapted on one shot episode ({rollout.shot_transitions} transitions, method "
        f"<code>{_esc(rollout.method)}</code>, acted by {acted}). Return {rollout.before_return:.1f} "
        f"&rarr; {rollout.after_return:.1f}.</p>"
    )


def _page(
    run: Path, info: Mapping[str, Any], sections: Mapping[str, str], iterations: int, summary: str = ""
) -> str:
    """The HTML of the page: the run's summary, its configuration and `sections` (title -> HTML)."""
    algo, env_id = info.get("algo", "?"), info.get("env", {}).get("env_id", "?")
    cfg = info.get("config", {})
    when = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    summary = summary or (
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
    return page
