"""The bad-input sweep as data: every refused input of the CLI, run files, envs, exports and the runtime.

`CASES` is the table (`Case`: id, area, where, the bad input, the regex its one-line error must match,
and how to feed it); `make_context` builds the real fixtures and `run_case` feeds one case, returning
its error line with temporary paths shown as ``<tmp>``. ``tests/test_bad_inputs.py`` asserts every row;
``benchmarks/bad_inputs.py`` writes the table into BENCHMARKS.md. Needs the ``train`` extra (torch,
pybullet): the fixtures are a real run directory, its export and the Push env.
"""

from __future__ import annotations

from robot_meta.diagnostics.bad_inputs.device_cases import DEVICE_CASES
from robot_meta.diagnostics.bad_inputs.harness import (
    Case,
    Context,
    NotRefused,
    make_context,
    malicious_checkpoint,
    run_case,
)
from robot_meta.diagnostics.bad_inputs.run_cases import RUN_CASES

#: Every case, in table order.
CASES: tuple[Case, ...] = (*RUN_CASES, *DEVICE_CASES)

__all__ = ["CASES", "Case", "Context", "NotRefused", "make_context", "malicious_checkpoint", "run_case"]
