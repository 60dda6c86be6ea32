"""Lazy package attributes (PEP 562): a package's re-exports are imported on first use.

`robot_meta.meta` and `robot_meta.meta.eval` re-export torch-backed classes; importing one light
submodule of theirs (``robot_meta.meta.eval.kshot``, ``robot_meta.meta.config``) must not load torch,
so that a process that only parses arguments or dispatches workers starts in a fraction of a second.

The table of what comes from where is the package's own ``if TYPE_CHECKING:`` block of
``from MODULE import NAME`` statements (what type checkers and readers see), read once with `ast`:
there is no second list to keep in step.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports"]


def _type_checking_imports(init_file: str) -> dict[str, tuple[str, str]]:
    """{exported name: (module, attribute)} of the ``if TYPE_CHECKING:`` imports of `init_file`."""
    owner: dict[str, tuple[str, str]] = {}
    for node in ast.parse(Path(init_file).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                    for alias in stmt.names:
                        owner[alias.asname or alias.name] = (stmt.module, alias.name)
    return owner


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for `package` (whose ``__init__.py`` is `init_file`)."""
    owner = _type_checking_imports(init_file)

    def __getattr__(name: str) -> Any:
        if name not in owner:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = owner[name]
        value = getattr(importlib.import_module(module), attr)
        vars(importlib.import_module(package))[name] = value  # later look-ups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(owner))

    return __getattr__, __dir__
