"""Packaging: the core install is the device runtime (numpy + onnxruntime); everything else is an extra.

The installed metadata (the Requires-Dist of the wheel that `pip install -e` built) and
pyproject.toml must agree, and what `import robot_meta.runtime` loads must come from the standard
library, robot_meta itself, or the distributions that the core requirements pull in.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = {"numpy", "onnxruntime"}
TRAIN = {
    "torch",
    "pybullet",
    "gymnasium",
    "stable-baselines3",
    "onnx",
    "tensorboard",
    "tqdm",
    "matplotlib",
    "imageio",
    "pillow",
    "psutil",
}


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_pyproject_core_is_the_device_runtime_and_train_is_an_extra() -> None:
    project = _pyproject()
    assert {_name(r) for r in project["dependencies"]} == CORE  # type: ignore[attr-defined]
    extras = project["optional-dependencies"]
    assert TRAIN <= {_name(r) for r in extras["train"]}  # type: ignore[index]
    assert {_name(r) for r in extras["distributed"]} == {"ray"}  # type: ignore[index]
    makefile = (REPO / "Makefile").read_text()
    assert '-c constraints.txt -e ".[train,dev,distributed]"' in makefile


def test_installed_metadata_requires_only_numpy_and_onnxruntime() -> None:
    requires = md.requires("robot_meta") or []
    core = {_name(r) for r in requires if "extra ==" not in r}
    assert core == CORE, (
        f"the installed wheel's core Requires-Dist is {sorted(core)}; reinstall (`make install`)"
    )
    by_extra: dict[str, set[str]] = {}
    for r in requires:
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", r)
        if extra:
            by_extra.setdefault(extra.group(1), set()).add(_name(r))
    assert TRAIN <= by_extra["train"]
    assert by_extra["distributed"] == {"ray"}
    assert not by_extra["train"] & CORE  # the core deps are not repeated in the extra


def _closure(roots: set[str]) -> set[str]:
    """Distributions that `roots` pull in (their unconditional requirements, transitively)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in reqs if "extra ==" not in r)
    return seen


# As on a device: Gymnasium absent (the one optional import of `robot_meta/__init__.py`, which
# registers the env ids only where Gymnasium is installed).
_IMPORTED = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "gymnasium":
            raise ImportError(name + " is absent on the device")
sys.meta_path.insert(0, Block())
before = set(sys.modules)
import robot_meta.runtime  # noqa: F401
new = {m.split(".")[0] for m in set(sys.modules) - before}
print(json.dumps(sorted(m for m in new if getattr(sys.modules.get(m), "__file__", None))))
"""


def test_runtime_imports_only_what_the_core_dependencies_bring() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTED], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    top_level = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert {"numpy", "onnxruntime", "robot_meta"} <= top_level
    allowed = _closure(CORE)
    dists = md.packages_distributions()
    foreign = {}
    for mod in sorted(top_level):
        if mod in sys.stdlib_module_names or mod == "robot_meta":
            continue
        owners = {_name(d) for d in dists.get(mod, [])}
        if not owners & allowed:
            foreign[mod] = sorted(owners)
    assert not foreign, f"robot_meta.runtime imports modules outside numpy + onnxruntime's closure: {foreign}"


def test_package_imports_with_training_stack_absent() -> None:
    blocked = ("torch", "pybullet", "pybullet_data", "gymnasium", "stable_baselines3", "onnx")
    code = (
        "import sys, importlib.abc\n"
        f"BLOCKED = {blocked!r}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import robot_meta, robot_meta.runtime\n"
        "assert robot_meta.ENV_IDS and robot_meta.__version__\n"
        "print('OK')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "OK"
