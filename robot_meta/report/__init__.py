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
- a saved strike planner (``robot-meta train --algo strike-planner``) gets ``fit_curve.png`` (its
  travel model's learning curve) and ``travel_table.png`` (its predicted travel per strike over the
  particles) instead of the training curves, and a GIF acted by
  the planner (numpy) before and after one shot;
- ``index.html`` - the page, with relative links only (open it from disk or serve the folder).

`screenshot` takes a PNG of the page with a headless Chromium/Chrome if one is installed
(`find_browser`); `check_page` loads it the same way and reports broken images.
"""

from __future__ import annotations

from robot_meta.report.browser import BROWSERS, PageCheck, check_page, find_browser, screenshot
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
    FIT_CURVE_PNG,
    REPORT_DIR,
    REPORT_HTML,
    SUCCESS_PNG,
    TRAVEL_PNG,
    ReportError,
)
from robot_meta.report.page import write_report
from robot_meta.report.rollout import AdaptationRollout, read_scalars, record_adaptation

__all__ = [
    "ADAPTATION_GIF",
    "COVERAGE_PNG",
    "CURVES_PNG",
    "FIT_CURVE_PNG",
    "REPORT_DIR",
    "REPORT_HTML",
    "SUCCESS_PNG",
    "TRAVEL_PNG",
    "BROWSERS",
    "AdaptationRollout",
    "PageCheck",
    "ReportError",
    "check_page",
    "find_browser",
    "plot_fit_curve",
    "plot_task_coverage",
    "plot_training_curves",
    "plot_travel_table",
    "read_scalars",
    "record_adaptation",
    "screenshot",
    "write_gif",
    "write_report",
]
