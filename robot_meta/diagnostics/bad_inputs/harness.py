"""The harness of the bad-input sweep: real fixtures, how a refusal is captured, how inputs are damaged.

The fixtures are real: a ``meta-dqn`` run directory of the Push env (config.json + an iteration-0
checkpoint, no training needed), its ONNX export (``export_run``), the Push env and the loaded policy.
Each case (`robot_meta.diagnostics.bad_inputs.CASES`) feeds one bad input to the real entry point
(``robot_meta.cli.main`` in this process, the env, `load_checkpoint`, `AdaptivePolicy`) and records the
one line it answers with: for the CLI the ``error: ...`` line of a run that exits with status 2, for
the API ``ExceptionType: message``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PUSH = "robot_meta/PandaPush-v0"
#: The ``where`` of the cases that run ``robot-meta train`` on a new or an existing run directory.
TRAIN = "robot-meta train"
RESUME = "robot-meta train (resume)"
#: ``robot-meta train`` on the Push env, ``--out`` last.
TRAIN_PUSH: tuple[str, ...] = ("train", "--env", PUSH, "--out")


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
def edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(edit(doc), indent=2))


def edit_ckpt(run: Path, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    import torch

    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    torch.save(edit(state), path)


def set_path(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
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


def malicious_resume(ctx: Context) -> str:
    run = ctx.run_copy()
    marker = run.parent / f"{run.name}-PWNED"
    ctx.markers.append(marker)
    malicious_checkpoint(run / "checkpoint.pt", marker)
    line = cli(ctx, *_train_argv(run))
    if marker.exists():
        raise AssertionError(f"the malicious checkpoint was executed: {marker} exists")
    return line


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_onnx_keep_hash(exp: Path) -> None:
    """Truncate policy.onnx and record its new size and sha256: only onnxruntime can tell now."""
    from robot_meta.runtime.manifest import sha256_file

    onnx = exp / "policy.onnx"
    truncate(onnx, 0.3)

    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["files"]["policy.onnx"].update(sha256=sha256_file(onnx), bytes=onnx.stat().st_size)
        return d

    edit_json(exp / "manifest.json", edit)


def traversal(exp: Path, name: str) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["files"] = {name if k == "policy.onnx" else k: v for k, v in d["files"].items()}
        d["graphs"]["policy"] = name
        return d

    edit_json(exp / "manifest.json", edit)


def symlink_out(exp: Path) -> None:
    outside = exp.parent / f"{exp.name}-outside.onnx"
    shutil.copy(exp / "policy.onnx", outside)
    (exp / "policy.onnx").unlink()
    (exp / "policy.onnx").symlink_to(outside)


# -- nothing changed on disk -----------------------------------------------------------------------------
def tree(path: Path) -> dict[str, bytes] | None:
    """Every file under `path` with its bytes (directories as ``b"/"``); None if `path` does not exist.

    ``.lock`` is left out: `robot-meta train` creates it (empty of data) before it reads the run, and the
    kernel releases it when the process exits, so it is not a change to the run.
    """
    from robot_meta.meta.checkpoint import LOCK_FILE

    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_dir():
        return {"": path.read_bytes()}
    return {
        str(p.relative_to(path)): b"/" if p.is_dir() else p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.name != LOCK_FILE
    }


def unchanged(paths: tuple[Path, ...], refuse: Callable[[], str]) -> str:
    """`refuse()`'s error line; every path in `paths` must be as before (still absent if it was absent)."""
    before = [tree(p) for p in paths]
    line = refuse()
    for path, was in zip(paths, before, strict=True):
        now = tree(path)
        if now != was:
            what = "was created" if was is None else "was removed" if now is None else "changed"
            raise AssertionError(f"refused, but {path} {what} on disk: {line}")
    return line


def nan_weights(run: Path, value: float = float("nan")) -> None:
    """Put `value` (NaN, inf) into the first floating tensor of the checkpoint's models."""
    import torch

    def edit(state: dict[str, Any]) -> dict[str, Any]:
        for module in state["models"].values():
            for key, tensor in module.items():
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                    module[key] = tensor.clone()
                    module[key].view(-1)[0] = value
                    return state
        raise AssertionError("the checkpoint holds no floating tensor")

    edit_ckpt(run, edit)


def run_damaged(ctx: Context, damage: Callable[[Path], object], *argv: str) -> str:
    """Damage a copy of the run, then ``robot-meta COMMAND RUN ARGV``; the run and any --out stay as they were.

    ``argv[0]`` is the command; ``{out}`` in the others is replaced by a fresh path that must not appear.
    """
    run = ctx.run_copy()
    damage(run)
    out = ctx.fresh("out")
    args = [a.replace("{out}", str(out)) for a in argv[1:]]
    return unchanged((run, out), lambda: cli(ctx, argv[0], run, *args))


def new_out(ctx: Context, *argv: str) -> str:
    """``robot-meta ARGV`` with ``{out}`` a fresh path: refused, and the path is never created."""
    out = ctx.fresh("o")
    return unchanged((out,), lambda: cli(ctx, *(a.replace("{out}", str(out)) for a in argv)))


def existing_file(ctx: Context, *argv: str) -> str:
    """``robot-meta ARGV`` with ``{file}`` an existing file: refused, the file left as it was."""
    f = ctx.fresh("file")
    f.write_text("keep me")
    return unchanged((f,), lambda: cli(ctx, *(a.replace("{file}", str(f)) for a in argv)))


def resume_refused(ctx: Context, damage: Callable[[Path], object]) -> str:
    """`resume`, and the damaged run directory is left exactly as it was."""
    run = ctx.run_copy()
    damage(run)
    return unchanged((run,), lambda: cli(ctx, *_train_argv(run)))


def locked_train(ctx: Context, existing: bool) -> str:
    """Hold the lock of a run directory (an existing run, or a new --out) as a running `train` does, then
    train on it: refused, naming the holder; nothing but the holder's ``.lock`` in the directory."""
    from robot_meta.meta.checkpoint import lock_run_dir

    run = ctx.run_copy() if existing else ctx.fresh("o")
    with lock_run_dir(run):
        return unchanged((run,), lambda: cli(ctx, *_train_argv(run)))


def adapt_refused(ctx: Context, damage: Callable[[Path], object]) -> str:
    """Damage a copy of the export, then ``robot-meta adapt`` it: refused, the export left as it was."""
    exp = ctx.export_copy()
    damage(exp)
    return unchanged((exp,), lambda: cli(ctx, "adapt", exp))


def manifest_symlink(exp: Path) -> None:
    """manifest.json moved out of the export directory, a symlink to it left in its place."""
    outside = exp.parent / f"{exp.name}-manifest.json"
    (exp / "manifest.json").rename(outside)
    (exp / "manifest.json").symlink_to(outside)


# -- a case ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    area: str
    where: str
    input: str
    expect: str
    """Regex the error line must match (re.search)."""
    run: Callable[[Context], str]


def bad_kwargs(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments typed as Any: bad values on purpose."""
    return kwargs


def zero_obs(ctx: Context) -> np.ndarray:
    return np.zeros(ctx.policy.obs_dim, np.float32)


def widen(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    for module in state["models"].values():
        for key, value in list(module.items()):
            if isinstance(value, torch.Tensor) and value.ndim == 2:
                module[key] = torch.cat([value, value], dim=0)
    return state


def adapt_damaged(ctx: Context, damage: Callable[[Path], object]) -> str:
    exp = ctx.export_copy()
    damage(exp)
    return cli(ctx, "adapt", exp)


def run_case(case: Case, ctx: Context) -> str:
    """The case's error line, temporary paths shown as ``<tmp>``."""
    line = case.run(ctx)
    return line.replace(str(ctx.root.resolve()), "<tmp>").replace(str(ctx.root), "<tmp>")
