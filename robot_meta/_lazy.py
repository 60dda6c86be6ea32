"""Lazy package attributes (PEP 562): a package names what it exports, the import happens on first use.

`robot_meta.meta` and `robot_meta.meta.eval` export torch-backed classes; importing one light
submodule of theirs (``robot_meta.meta.eval.kshot``, ``robot_meta.meta.config``) must not load torch,
so a process that only parses arguments or dispatches workers starts in a fraction of a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for `package`, given {submodule: names it provides}."""
    owner = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(importlib.import_module(package))[name] = value  # later look-ups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(owner))

    return __getattr__, __dir__
