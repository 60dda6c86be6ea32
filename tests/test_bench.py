"""``robot-meta bench``: discovery order, selection, one process per script, a summary and the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_meta.bench import ORDER, discover
from robot_meta.cli import main

REPO_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_checkouts_benchmarks_are_found_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names[: len(ORDER)] == list(ORDER) and "bad_inputs" in names
    assert "common" not in names and "run_all" not in names
    assert names == discover(REPO_BENCHMARKS)


def test_bench_runs_each_script_in_its_own_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    marker = tmp_path / "ran.txt"
    (bench / "alpha.py").write_text(
        "import sys\n"
        f"def main():\n    open({str(marker)!r}, 'a').write('alpha ' + ' '.join(sys.argv[1:]) + '\\n')\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    (bench / "beta.py").write_text(
        "def main():\n    raise SystemExit(3)\nif __name__ == '__main__':\n    main()\n"
    )
    (bench / "helper.py").write_text("X = 1\n")  # no main(): not a benchmark
    assert main(["bench", "--dir", str(bench), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["alpha", "beta"]
    assert main(["bench", "alpha", "--quick", "--dir", str(bench)]) == 0
    assert marker.read_text() == "alpha --quick\n"
    assert main(["bench", "--dir", str(bench)]) == 1
    captured = capsys.readouterr()
    assert "FAILED (exit 3)" in captured.out and "1 benchmark(s) failed: beta" in captured.err
    assert main(["bench", "gamma", "--dir", str(bench)]) == 2
    assert "unknown benchmark(s) ['gamma']" in capsys.readouterr().err
    assert main(["bench", "--dir", str(tmp_path / "none")]) == 2


def test_kshot_footer_lists_the_command_of_every_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that adds one cell keeps where the other cells came from (each cell file keeps its command)."""
    import json
    import sys

    monkeypatch.syspath_prepend(str(REPO_BENCHMARKS))
    monkeypatch.delitem(sys.modules, "common", raising=False)
    import kshot  # type: ignore[import-not-found]
    from common import update_markdown_section  # type: ignore[import-not-found]

    from robot_meta.meta.eval.kshot import KShotStore

    store = KShotStore(tmp_path / "cells", tmp_path / "runs")
    first = "python benchmarks/kshot.py --families slide --seeds 0 --cells context"
    cells = {("context", 0): first, ("oracle", 0): None, ("context", 1): first.replace("0", "1")}
    for (cell, seed), cmd in cells.items():
        path = store.cell_path("full", "slide", cell, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"date": "2026-12-03T10:00:00+00:00", **({"command": cmd} if cmd else {})}
        path.write_text(json.dumps(doc))
    text = kshot.cell_provenance(store, "full", ["slide", "push"], (0, 1, 2))
    assert f"`{first}`: slide context seed 0 (2026-12-03)" in text
    assert "slide context seed 1" in text and text.count("`python") == 2
    assert "before cell files kept their command" in text and "slide oracle seed 0" in text
    md = tmp_path / "BENCH.md"
    update_markdown_section("kshot", "body", "ignored", "2026-12-03", path=md, provenance=text)
    footer = md.read_text()
    assert text in footer and "Command: `ignored`" not in footer
    update_markdown_section("other", "body", "one command", "2026-12-03", path=md)
    assert "Command: `one command`" in md.read_text()
