"""Bad-input sweep: every refused input of the CLI, run files, envs, exports and the runtime, with its error.

The cases are a data table in the package (`robot_meta.diagnostics.bad_inputs`: `CASES`, the real
fixtures, `run_case`); ``tests/test_bad_inputs.py`` asserts each row's line against its expected pattern
and this script writes the table into BENCHMARKS.md. Temporary paths are shown as ``<tmp>``.

    .venv/bin/python benchmarks/bad_inputs.py           # all cases (make bench)
    .venv/bin/python benchmarks/bad_inputs.py --quick   # the same cases, results only in bad_inputs_quick.json
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from robot_meta.diagnostics.bad_inputs import CASES, make_context, run_case

NAME = "bad_inputs"


def main(argv: list[str] | None = None) -> int:
    import re

    from common import command_line, markdown_table, update_markdown_section, write_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="same cases (the sweep takes under a minute); results go to bad_inputs_quick.json only",
    )
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with make_context() as ctx:
        for case in CASES:
            try:
                line = run_case(case, ctx)
                ok = re.search(case.expect, line) is not None and "\n" not in line
            except Exception as exc:  # a case that was accepted, or crashed the harness
                line, ok = f"NOT REFUSED / HARNESS ERROR: {type(exc).__name__}: {exc}", False
            rows.append(
                {
                    **{k: getattr(case, k) for k in ("id", "area", "where", "input", "expect")},
                    "error": line,
                    "ok": ok,
                }
            )
            print(f"{'ok  ' if ok else 'FAIL'} {case.id}: {line}", flush=True)
    wall = time.perf_counter() - t0
    failed = [r["id"] for r in rows if not r["ok"]]
    cmd = command_line()
    write_results(
        NAME + ("_quick" if args.quick else ""),
        {"cases": rows, "failed": failed, "wall_s": wall},
        command=cmd,
    )
    table = markdown_table(
        ["#", "area", "where", "bad input", "error it gets (exact line)"],
        [
            [i + 1, r["area"], r["where"], r["input"], f"`{r['error']}`" if r["ok"] else f"**{r['error']}**"]
            for i, r in enumerate(rows)
        ],
    )
    body = (
        f"{len(rows)} distinct bad inputs, each fed to the real entry point; {len(rows) - len(failed)} refused with "
        "the expected one-line error"
        + (f", **{len(failed)} not: {', '.join(failed)}**" if failed else "")
        + ". CLI rows are `robot-meta ...` runs that exit with status 2 and print exactly one `error:` line; "
        "API rows show `ExceptionType: message`. `<tmp>` is the temporary fixture directory. Every row is "
        "asserted by `tests/test_bad_inputs.py`.\n\n" + table
    )
    if not args.quick:  # quick runs write bad_inputs_quick.json and leave BENCHMARKS.md alone
        update_markdown_section(NAME, body, command=cmd)
    print(f"{len(rows)} cases, {len(failed)} failed, {wall:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
