"""The files of a report and its error type."""

from __future__ import annotations

REPORT_DIR = "report"
REPORT_HTML = "index.html"
CURVES_PNG = "training_curves.png"
SUCCESS_PNG = "success_vs_k.png"
COVERAGE_PNG = "task_coverage.png"
ADAPTATION_GIF = "adaptation.gif"


class ReportError(RuntimeError):
    """The run directory cannot be reported on (the message says what to do)."""
