"""Every row of the bad-input sweep (benchmarks/bad_inputs.py, BENCHMARKS.md) is refused as the table says.

The cases are one table in the package (`robot_meta.diagnostics.bad_inputs`), shared with the benchmark so
that the table and the tests cannot drift apart: each case feeds one bad input to the real entry point,
and here its one-line error must match the pattern.
Plus the checkpoint trust model: a pickle that would run code is refused and never executed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robot_meta.diagnostics.bad_inputs import (
    CASES,
    Case,
    Context,
    make_context,
    malicious_checkpoint,
    run_case,
)
from robot_meta.meta import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    threads = torch.get_num_threads()
    with make_context(tmp_path_factory.mktemp("bad_inputs")) as context:
        yield context
    torch.set_num_threads(threads)


def test_the_sweep_covers_every_area_with_at_least_25_distinct_inputs() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES) and len({c.input + c.where for c in CASES}) == len(CASES)
    areas = {c.area for c in CASES}
    assert {"CLI", "config.json", "checkpoint", "env", "TaskParams", "export", "runtime"} <= areas
    for area in areas:
        assert sum(c.area == area for c in CASES) >= 2, area


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_its_one_line_error(ctx: Context, case: Case) -> None:
    line = run_case(case, ctx)
    assert "\n" not in line, f"the error spans several lines: {line!r}"
    assert re.search(case.expect, line), f"{case.id}: {line!r} does not match {case.expect!r}"
    assert "Traceback" not in line and len(line) < 1200
    if line.startswith("exit 2: "):
        assert line.startswith("exit 2: error: ")
    # Errors say what to do, or name the offending value and what is allowed.
    hints = ("choose", "allowed", "must", "pass", "delete", "re-export", "copy", "use ", "need", "refus",
             "check", "clip", "resume", "restore", "see `", "give", "e.g.", "expects", "valid",
             "space is", "the only", "pick another", "wait for", "trains one of")  # fmt: skip
    assert any(h in line for h in hints), f"{case.id}: the error does not say what to do: {line!r}"


def test_malicious_checkpoint_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    ckpt = tmp_path / "checkpoint.pt"
    malicious_checkpoint(ckpt, marker)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(ckpt, "meta-dqn")
    message = str(err.value)
    assert "weights_only=True) refused it" in message and "posix.system" in message
    assert "will not unpickle it" in message and "weights_only=False" not in message
    assert "\n" not in message
    assert not marker.exists(), "the pickle's payload ran"
    # The same refusal happens through `robot-meta train` resuming a run (case ckpt-malicious-pickle).
    assert any(c.id == "ckpt-malicious-pickle" for c in CASES)
