"""Diagnostics that exercise the package from outside: `robot_meta.diagnostics.bad_inputs`, the sweep of
refused inputs shared by the tests and the benchmarks (needs the ``train`` extra)."""
