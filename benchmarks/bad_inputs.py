"""Bad-input sweep: every refused input of the CLI, run files, envs, exports and the runtime, with its error.

Each case feeds one bad input to the real entry point (``robot_meta.cli.main`` in this process, the
env, `load_checkpoint`, `AdaptivePolicy`) and records the one line it answers with: for the CLI the
``error: ...`` line of a run that exits with status 2, for the API ``ExceptionType: message``.
Temporary paths are shown as ``<tmp>``. ``tests/test_bad_inputs.py`` runs the same cases and asserts
each line against the case's expected pattern; this script writes the table into BENCHMARKS.md.

The fixtures are real: a ``meta-dqn`` run directory of the Push env (config.json + an iteration-0
checkpoint, no training needed), its ONNX export (``export_run``), the Push env and the loaded policy.

    .venv/bin/python benchmarks/bad_inputs.py           # all cases (make bench)
    .venv/bin/python benchmarks/bad_inputs.py --quick   # the same cases, results only in bad_inputs_quick.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PUSH = "robot_meta/PandaPush-v0"
NAME = "bad_inputs"


class NotRefused(AssertionError):
    """A bad input was accepted."""


# -- fixtures -------------------------------------------------------------------------------------------
@dataclass
class Context:
    """Pristine fixtures; cases damage copies (`run_copy`, `export_copy`), never these."""

    root: Path
    run: Path
    export: Path
    env: Any
    cenv: Any
    policy: Any
    _n: int = 0
    markers: list[Path] = field(default_factory=list)

    def fresh(self, name: str) -> Path:
        self._n += 1
        return self.root / f"{self._n:02d}-{name}"

    def run_copy(self) -> Path:
        dst = self.fresh("run")
        shutil.copytree(self.run, dst)
        return dst

    def export_copy(self) -> Path:
        dst = self.fresh("export")
        shutil.copytree(self.export, dst)
        return dst

    def close(self) -> None:
        self.env.close()
        self.cenv.close()


@contextlib.contextmanager
def make_context(root: Path | None = None) -> Iterator[Context]:
    """Build the fixtures in `root` (default: a temporary directory removed on exit)."""
    import gymnasium as gym
    import torch

    import robot_meta  # noqa: F401  (registers the ids)
    from robot_meta.export import ExportConfig, export_run
    from robot_meta.meta import make_algorithm, make_config
    from robot_meta.runtime import AdaptivePolicy

    torch.set_num_threads(1)
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bad_inputs_")))
        run, export = root / "run", root / "export"
        trainer = make_algorithm(make_config("meta-dqn", budget="smoke", env_id=PUSH, preset="push"))
        trainer._open_run(run)  # config.json, exactly as `robot-meta train` writes it
        trainer.save(run)  # an iteration-0 checkpoint: a valid, resumable run directory
        export_run(run, export, config=ExportConfig(parity_samples=256))
        env = gym.make(PUSH)
        env.reset(seed=0)
        cenv = gym.make(PUSH, action_mode="continuous")
        cenv.reset(seed=0)
        ctx = Context(root, run, export, env, cenv, AdaptivePolicy.load(export))
        stack.callback(ctx.close)
        yield ctx


# -- how an error is captured --------------------------------------------------------------------------
def cli(ctx: Context, *argv: str | Path) -> str:
    """Run ``robot-meta ARGV`` in this process; it must exit 2 with one ``error:`` line."""
    from robot_meta.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
    if rc == 0 or not lines:
        raise NotRefused(f"robot-meta {' '.join(map(str, argv))} exited {rc} without an error line")
    if rc != 2 or len(lines) != 1 or not text.rstrip("\n").endswith(lines[0]):
        raise AssertionError(f"exit {rc}: the error is not one last line: {text[-500:]!r}")
    return f"exit 2: {lines[0]}"


def api(fn: Callable[[], Any]) -> str:
    """Call `fn`; it must raise. Returns ``ExceptionType: message``."""
    try:
        fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    raise NotRefused("accepted without an error")


def _train_argv(run: Path) -> list[str | Path]:
    return ["train", "--algo", "meta-dqn", "--env", PUSH, "--budget", "smoke", "--out", run]


def resume(ctx: Context, damage: Callable[[Path], object]) -> str:
    """Damage a copy of the run directory, then resume it with the command that created it."""
    run = ctx.run_copy()
    damage(run)
    return cli(ctx, *_train_argv(run))


def exported(ctx: Context, damage: Callable[[Path], object]) -> str:
    """Damage a copy of the export, then load it with the runtime."""
    from robot_meta.runtime import AdaptivePolicy

    exp = ctx.export_copy()
    damage(exp)
    return api(lambda: AdaptivePolicy.load(exp))


# -- damage helpers -------------------------------------------------------------------------------------
def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(edit(doc), indent=2))


def _edit_ckpt(run: Path, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    import torch

    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    torch.save(edit(state), path)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    node[last] = value
    return doc


class _Exploit:
    """Pickles to ``os.system("touch MARKER")``: executed by any unrestricted unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(path: Path, marker: Path) -> None:
    """A checkpoint with the right format tag whose pickle runs a shell command when unpickled."""
    import torch

    torch.save({"format": "robot_meta.checkpoint/1", "algo": "meta-dqn", "payload": _Exploit(marker)}, path)


def _malicious_resume(ctx: Context) -> str:
    run = ctx.run_copy()
    marker = run.parent / f"{run.name}-PWNED"
    ctx.markers.append(marker)
    malicious_checkpoint(run / "checkpoint.pt", marker)
    line = cli(ctx, *_train_argv(run))
    if marker.exists():
        raise AssertionError(f"the malicious checkpoint was executed: {marker} exists")
    return line


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_onnx_keep_hash(exp: Path) -> None:
    """Truncate policy.onnx and record its new size and sha256: only onnxruntime can tell now."""
    from robot_meta.runtime.manifest import sha256_file

    onnx = exp / "policy.onnx"
    _truncate(onnx, 0.3)

    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["files"]["policy.onnx"].update(sha256=sha256_file(onnx), bytes=onnx.stat().st_size)
        return d

    _edit_json(exp / "manifest.json", edit)


def _traversal(exp: Path, name: str) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["files"] = {name if k == "policy.onnx" else k: v for k, v in d["files"].items()}
        d["graphs"]["policy"] = name
        return d

    _edit_json(exp / "manifest.json", edit)


def _symlink_out(exp: Path) -> None:
    outside = exp.parent / f"{exp.name}-outside.onnx"
    shutil.copy(exp / "policy.onnx", outside)
    (exp / "policy.onnx").unlink()
    (exp / "policy.onnx").symlink_to(outside)


# -- the cases ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    area: str
    where: str
    input: str
    expect: str
    """Regex the error line must match (re.search)."""
    run: Callable[[Context], str]


def _any(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments typed as Any: bad values on purpose."""
    return kwargs


def _obs(ctx: Context) -> np.ndarray:
    return np.zeros(ctx.policy.obs_dim, np.float32)


def _cases() -> list[Case]:
    from robot_meta.envs import TaskDistribution, TaskParams

    T = "robot-meta train"
    R = "robot-meta train (resume)"
    C: list[Case] = []

    def add(id: str, area: str, where: str, inp: str, expect: str, run: Callable[[Context], str]) -> None:
        C.append(Case(id, area, where, inp, expect, run))

    base = ["train", "--env", PUSH, "--out"]
    # CLI -------------------------------------------------------------------------------------------------
    add(
        "cli-unknown-algo",
        "CLI",
        T,
        "`--algo dqn`",
        r"argument --algo: invalid choice: 'dqn'",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "dqn"),
    )
    add(
        "cli-unknown-budget",
        "CLI",
        T,
        "`--budget huge`",
        r"argument --budget: invalid choice: 'huge'",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "reptile", "--budget", "huge"),
    )
    add(
        "cli-unknown-env",
        "CLI",
        T,
        "`--env robot_meta/PandaFly-v0` (no --preset)",
        r"cannot guess the task preset of env 'robot_meta/PandaFly-v0': pass --preset",
        lambda c: cli(
            c, "train", "--algo", "reptile", "--env", "robot_meta/PandaFly-v0", "--out", c.fresh("o")
        ),
    )
    add(
        "cli-unregistered-env",
        "CLI",
        T,
        "`--env robot_meta/PandaFly-v0 --preset push`",
        r"unknown environment id 'robot_meta/PandaFly-v0'",
        lambda c: cli(
            c,
            "train",
            "--algo",
            "reptile",
            "--env",
            "robot_meta/PandaFly-v0",
            "--preset",
            "push",
            "--budget",
            "smoke",
            "--out",
            c.fresh("o"),
        ),
    )
    add(
        "cli-unknown-preset",
        "CLI",
        T,
        "`--preset pushy`",
        r"unknown task distribution preset 'pushy'",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "reptile", "--preset", "pushy"),
    )
    add(
        "cli-set-unknown-key",
        "CLI",
        T,
        "`--set learning_rate=0.1`",
        r"has no field 'learning_rate'",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--set", "learning_rate=0.1"),
    )
    add(
        "cli-set-bad-value",
        "CLI",
        T,
        "`--set lr=-1`",
        r"lr.*-1",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--set", "lr=-1"),
    )
    add(
        "cli-set-no-equals",
        "CLI",
        T,
        "`--set lr`",
        r"must look like KEY=VALUE",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--set", "lr"),
    )
    add(
        "cli-set-wrong-type",
        "CLI",
        T,
        "`--set hidden=wide`",
        r"hidden",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--set", "hidden=wide"),
    )
    add(
        "cli-seed-not-int",
        "CLI",
        T,
        "`--seed one`",
        r"argument --seed: invalid int value: 'one'",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--seed", "one"),
    )
    add(
        "cli-missing-out",
        "CLI",
        T,
        "no `--out`",
        r"the following arguments are required: --out",
        lambda c: cli(c, "train", "--algo", "meta-dqn", "--env", PUSH),
    )
    add(
        "cli-unknown-flag",
        "CLI",
        T,
        "`--lr 0.1` (not a flag)",
        r"unrecognized arguments: --lr 0.1",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--lr", "0.1"),
    )
    add(
        "cli-workers-zero",
        "CLI",
        T,
        "`--workers 0`",
        r"--workers 0 is invalid: must be >= 1",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--workers", "0"),
    )
    add(
        "cli-unknown-backend",
        "CLI",
        T,
        "`--backend spark`",
        r"unknown execution backend 'spark'",
        lambda c: cli(c, *base, c.fresh("o"), "--algo", "meta-dqn", "--backend", "spark"),
    )
    add(
        "cli-unknown-command",
        "CLI",
        "robot-meta",
        "`robot-meta fly`",
        r"invalid choice: 'fly'",
        lambda c: cli(c, "fly"),
    )
    # config.json --------------------------------------------------------------------------------------
    add(
        "config-not-json",
        "config.json",
        R,
        "config.json is not JSON",
        r"config\.json is unreadable",
        lambda c: resume(c, lambda r: (r / "config.json").write_text("{not json")),
    )
    add(
        "config-edited-field",
        "config.json",
        R,
        "config.json: `lr` edited to 0.5",
        r"was created with a different configuration \(lr: 0\.5 in the run vs 0\.001 now\)",
        lambda c: resume(c, lambda r: _edit_json(r / "config.json", lambda d: _set(d, "config.lr", 0.5))),
    )
    add(
        "config-other-algo",
        "config.json",
        R,
        "config.json: `algo` changed to reptile",
        r"holds a 'reptile' run, not 'meta-dqn'",
        lambda c: resume(c, lambda r: _edit_json(r / "config.json", lambda d: _set(d, "algo", "reptile"))),
    )
    add(
        "config-no-format",
        "config.json",
        R,
        "config.json without its `format` tag",
        r"was not written by robot-meta train",
        lambda c: resume(
            c,
            lambda r: _edit_json(r / "config.json", lambda d: {k: v for k, v in d.items() if k != "format"}),
        ),
    )
    add(
        "config-list",
        "config.json",
        R,
        "config.json is a JSON list",
        r"was not written by robot-meta train",
        lambda c: resume(c, lambda r: (r / "config.json").write_text("[1, 2]")),
    )
    # checkpoint.pt ------------------------------------------------------------------------------------
    add(
        "ckpt-truncated",
        "checkpoint",
        R,
        "checkpoint.pt truncated to half",
        r"is not a readable robot_meta checkpoint .*delete .* to restart",
        lambda c: resume(c, lambda r: _truncate(r / "checkpoint.pt")),
    )
    add(
        "ckpt-empty",
        "checkpoint",
        R,
        "checkpoint.pt of zero bytes",
        r"is not a readable robot_meta checkpoint",
        lambda c: resume(c, lambda r: (r / "checkpoint.pt").write_bytes(b"")),
    )
    add(
        "ckpt-garbage",
        "checkpoint",
        R,
        "checkpoint.pt of random bytes",
        r"refused it \(Unsupported operand \d+\)",
        lambda c: resume(
            c, lambda r: (r / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(4096))
        ),
    )
    add(
        "ckpt-foreign-pickle",
        "checkpoint",
        R,
        "a plain pickle of a dict (not torch.save)",
        r"weights_only=True\) refused it \(Unsupported operand \d+\)",
        lambda c: resume(
            c, lambda r: (r / "checkpoint.pt").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
        ),
    )
    add(
        "ckpt-foreign-torch",
        "checkpoint",
        R,
        "another program's torch.save (a bare state_dict)",
        r"is not a robot_meta checkpoint \(format None",
        lambda c: resume(
            c,
            lambda r: __import__("torch").save(
                {"fc.weight": __import__("torch").zeros(2)}, r / "checkpoint.pt"
            ),
        ),
    )
    add(
        "ckpt-malicious-pickle",
        "checkpoint",
        R,
        "pickle whose `__reduce__` runs `os.system` (never executed)",
        r"refused it \(Trying to load unsupported GLOBAL posix\.system.*will not unpickle it",
        _malicious_resume,
    )
    add(
        "ckpt-wrong-algo",
        "checkpoint",
        R,
        "checkpoint of a reptile run",
        r"holds a 'reptile' checkpoint, not 'meta-dqn'",
        lambda c: resume(c, lambda r: _edit_ckpt(r, lambda s: _set(s, "algo", "reptile"))),
    )
    add(
        "ckpt-missing-keys",
        "checkpoint",
        R,
        "checkpoint without `models`/`replay`",
        r"does not match this meta-dqn configuration \(KeyError",
        lambda c: resume(
            c,
            lambda r: _edit_ckpt(r, lambda s: {k: v for k, v in s.items() if k not in ("models", "replay")}),
        ),
    )
    add(
        "ckpt-wrong-shapes",
        "checkpoint",
        R,
        "checkpoint of a wider network (weights 2x)",
        r"does not match this meta-dqn configuration \(RuntimeError: Error\(s\) in loading state_dict for QNetwork: size mismatch",
        lambda c: resume(c, lambda r: _edit_ckpt(r, _widen)),
    )
    # env -------------------------------------------------------------------------------------------------
    add(
        "env-action-range",
        "env",
        "env.step",
        "discrete action 99 (9 actions)",
        r"action 99 is out of range: valid actions are 0\.\.",
        lambda c: api(lambda: c.env.step(99)),
    )
    add(
        "env-action-float",
        "env",
        "env.step",
        "discrete action 1.5",
        r"action 1\.5 is not an integer",
        lambda c: api(lambda: c.env.step(1.5)),
    )
    add(
        "env-action-nan",
        "env",
        "env.step (continuous)",
        "action [nan, 0, 0, 0]",
        r"contains NaN or inf: refused",
        lambda c: api(lambda: c.cenv.step(np.array([np.nan] + [0.0] * (c.cenv.action_space.shape[0] - 1)))),
    )
    add(
        "env-action-shape",
        "env",
        "env.step (continuous)",
        "action of shape (7,)",
        r"action has shape \(7,\)",
        lambda c: api(lambda: c.cenv.step(np.zeros(7))),
    )
    add(
        "env-action-outside",
        "env",
        "env.step (continuous)",
        "action 3.0 (outside [-1, 1])",
        r"is outside \[-1, 1\]",
        lambda c: api(lambda: c.cenv.step(np.full(c.cenv.action_space.shape, 3.0))),
    )
    add(
        "env-reset-option",
        "env",
        "env.reset",
        "`options={'tsk': ...}` (typo)",
        r"unknown key\(s\) \['tsk'\]",
        lambda c: api(lambda: c.env.reset(options={"tsk": TaskParams()})),
    )
    add(
        "env-reset-task-type",
        "env",
        "env.reset",
        "`options={'task': 'heavy'}`",
        r"task must be a TaskParams or a dict",
        lambda c: api(lambda: c.env.reset(options={"task": "heavy"})),
    )
    add(
        "task-mass-negative",
        "TaskParams",
        "TaskParams(...)",
        "`object_mass=-1`",
        r"TaskParams\.object_mass=-1\.0 is out of range: allowed \[0\.01, 10\.0\]",
        lambda c: api(lambda: TaskParams(object_mass=-1)),
    )
    add(
        "task-friction-nan",
        "TaskParams",
        "TaskParams(...)",
        "`lateral_friction=nan`",
        r"TaskParams\.lateral_friction=nan is out of range",
        lambda c: api(lambda: TaskParams(lateral_friction=float("nan"))),
    )
    add(
        "task-shape-unknown",
        "TaskParams",
        "TaskParams(...)",
        "`object_shape='banana'`",
        r"object_shape='banana' is unknown",
        lambda c: api(lambda: TaskParams(**_any(object_shape="banana"))),
    )
    add(
        "task-slope-flat",
        "TaskParams",
        "TaskParams(...)",
        "`terrain='flat', terrain_slope_deg=5`",
        r"terrain_slope_deg=5\.0 needs terrain='tilted'",
        lambda c: api(lambda: TaskParams(terrain_slope_deg=5)),
    )
    add(
        "task-size-string",
        "TaskParams",
        "TaskParams(...)",
        "`object_size='4cm'`",
        r"TaskParams\.object_size must be a number",
        lambda c: api(lambda: TaskParams(**_any(object_size="4cm"))),
    )
    add(
        "task-unknown-field",
        "TaskParams",
        "TaskParams.from_dict",
        "`{'mass': 1.0}`",
        r"unknown field\(s\) \['mass'\]",
        lambda c: api(lambda: TaskParams.from_dict({"mass": 1.0})),
    )
    add(
        "dist-unknown-preset",
        "TaskDistribution",
        "TaskDistribution.preset",
        "`'shove'`",
        r"unknown task distribution preset 'shove'",
        lambda c: api(lambda: TaskDistribution.preset("shove")),
    )
    add(
        "dist-unknown-split",
        "TaskDistribution",
        "TaskDistribution.split",
        "`'validation'`",
        r"unknown split 'validation'",
        lambda c: api(lambda: TaskDistribution.preset("push").split(_any(s="validation")["s"])),
    )
    # export / manifest -----------------------------------------------------------------------------
    add(
        "export-hash-mismatch",
        "export",
        "robot-meta adapt",
        "one byte of policy.onnx flipped",
        r"sha256 of .*policy\.onnx is .* but the manifest records",
        lambda c: _adapt_damaged(c, lambda e: _flip_byte(e / "policy.onnx")),
    )
    add(
        "export-truncated-onnx",
        "export",
        "robot-meta adapt",
        "policy.onnx truncated (manifest unchanged)",
        r"has \d+ bytes but the manifest records \d+: the file is truncated",
        lambda c: _adapt_damaged(c, lambda e: _truncate(e / "policy.onnx", 0.3)),
    )
    add(
        "export-truncated-onnx-rehashed",
        "export",
        "AdaptivePolicy.load",
        "policy.onnx truncated and its hash updated in the manifest",
        r"RuntimeLoadError: ",
        lambda c: exported(c, _truncate_onnx_keep_hash),
    )
    add(
        "manifest-traversal",
        "export",
        "AdaptivePolicy.load",
        "manifest names `../policy.onnx`",
        r"points outside the export directory",
        lambda c: exported(c, lambda e: _traversal(e, "../policy.onnx")),
    )
    add(
        "manifest-absolute",
        "export",
        "AdaptivePolicy.load",
        "manifest names `/etc/passwd`",
        r"points outside the export directory",
        lambda c: exported(c, lambda e: _traversal(e, "/etc/passwd")),
    )
    add(
        "manifest-symlink",
        "export",
        "AdaptivePolicy.load",
        "policy.onnx is a symlink out of the directory",
        r"outside .* \(symlink\?\): refusing it",
        lambda c: exported(c, _symlink_out),
    )
    add(
        "manifest-not-json",
        "export",
        "robot-meta adapt",
        "manifest.json is not JSON",
        r"manifest\.json is not valid JSON",
        lambda c: _adapt_damaged(c, lambda e: (e / "manifest.json").write_text("{")),
    )
    add(
        "manifest-missing",
        "export",
        "robot-meta adapt",
        "a directory without manifest.json",
        r"manifest",
        lambda c: _adapt_damaged(c, lambda e: (e / "manifest.json").unlink()),
    )
    add(
        "manifest-no-files",
        "export",
        "AdaptivePolicy.load",
        "manifest without `files`",
        r"manifest field 'files' is missing",
        lambda c: exported(
            c,
            lambda e: _edit_json(e / "manifest.json", lambda d: {k: v for k, v in d.items() if k != "files"}),
        ),
    )
    # runtime observations and transitions -----------------------------------------------------------------
    add(
        "obs-wrong-shape",
        "runtime",
        "AdaptivePolicy.act",
        "observation of shape (3,)",
        r"observation shape \(3,\) does not match",
        lambda c: api(lambda: c.policy.act(np.zeros(3, np.float32))),
    )
    add(
        "obs-wrong-dtype",
        "runtime",
        "AdaptivePolicy.act",
        "observation of dtype <U1 (strings)",
        r"observation dtype <U1 is not a float type",
        lambda c: api(lambda: c.policy.act(np.array(["a"] * c.policy.obs_dim))),
    )
    add(
        "obs-nan",
        "runtime",
        "AdaptivePolicy.act",
        "observation with a NaN",
        r"non-finite values \(NaN/inf\): refusing to act",
        lambda c: api(
            lambda: c.policy.act(np.where(np.arange(c.policy.obs_dim) == 0, np.nan, 0.0).astype(np.float32))
        ),
    )
    add(
        "obs-inf",
        "runtime",
        "AdaptivePolicy.act",
        "float64 observation with an inf",
        r"non-finite values",
        lambda c: api(lambda: c.policy.act(np.full(c.policy.obs_dim, np.inf))),
    )
    add(
        "transition-nan-reward",
        "runtime",
        "AdaptivePolicy.observe",
        "reward NaN",
        r"transition refused: reward nan is not finite",
        lambda c: api(lambda: c.policy.observe(_obs(c), 0, float("nan"), _obs(c), False)),
    )
    add(
        "transition-bad-action",
        "runtime",
        "AdaptivePolicy.observe",
        "action 99",
        r"transition refused: action 99 is not an int in \[0, \d+\)",
        lambda c: api(lambda: c.policy.observe(_obs(c), 99, 0.0, _obs(c), False)),
    )
    # other commands ------------------------------------------------------------------------------------
    add(
        "evaluate-empty-shots",
        "CLI",
        "robot-meta evaluate",
        "`--shots ''`",
        r"--shots is empty",
        lambda c: cli(c, "evaluate", c.run, "--shots", ""),
    )
    add(
        "evaluate-negative-shots",
        "CLI",
        "robot-meta evaluate",
        "`--shots 0,-1`",
        r"--shots must be >= 0",
        lambda c: cli(c, "evaluate", c.run, "--shots", "0,-1"),
    )
    add(
        "evaluate-unknown-split",
        "CLI",
        "robot-meta evaluate",
        "`--split validation`",
        r"argument --split: invalid choice: 'validation'",
        lambda c: cli(c, "evaluate", c.run, "--split", "validation"),
    )
    add(
        "evaluate-missing-run",
        "CLI",
        "robot-meta evaluate",
        "a run directory that does not exist",
        r"run directory .* does not exist",
        lambda c: cli(c, "evaluate", c.fresh("missing")),
    )
    add(
        "export-missing-run",
        "CLI",
        "robot-meta export",
        "a run directory that does not exist",
        r"is not a run directory \(no config\.json\)",
        lambda c: cli(c, "export", c.fresh("missing"), "--out", c.fresh("exp")),
    )
    add(
        "adapt-one-episode",
        "CLI",
        "robot-meta adapt",
        "`--episodes 1`",
        r"--episodes 1: need at least 2",
        lambda c: cli(c, "adapt", c.export, "--episodes", "1"),
    )
    add(
        "adapt-unknown-split",
        "CLI",
        "robot-meta adapt",
        "`--split val`",
        r"argument --split: invalid choice: 'val'",
        lambda c: cli(c, "adapt", c.export, "--split", "val"),
    )
    return C  # fmt: skip


def _widen(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    for module in state["models"].values():
        for key, value in list(module.items()):
            if isinstance(value, torch.Tensor) and value.ndim == 2:
                module[key] = torch.cat([value, value], dim=0)
    return state


def _adapt_damaged(ctx: Context, damage: Callable[[Path], object]) -> str:
    exp = ctx.export_copy()
    damage(exp)
    return cli(ctx, "adapt", exp)


CASES: list[Case] = _cases()


def run_case(case: Case, ctx: Context) -> str:
    """The case's error line, temporary paths shown as ``<tmp>``."""
    line = case.run(ctx)
    return line.replace(str(ctx.root.resolve()), "<tmp>").replace(str(ctx.root), "<tmp>")


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
