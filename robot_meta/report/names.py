"""The files of a report and its error type."""

from __future__ import annotations

REPORT_DIR = "report"
REPORT_HTML = "index.html"
CURVES_PNG = "training_curves.png"
SUCCESS_PNG = "success_vs_k.png"
COVERAGE_PNG = "task_coverage.png"
ADAPTATION_GIF = "adaptation.gif"
TRAVEL_PNG = "travel_table.png"
FIT_CURVE_PNG = "fit_curve.png"
#: A run directory's ``robot-meta export`` output; a run without a checkpoint (a shipped pretrained
#: run) acts through it, on the device's runtime.
EXPORT_SUBDIR = "export"


class ReportError(RuntimeError):
    """The run directory cannot be reported on (the message says what to do)."""
