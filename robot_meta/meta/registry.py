"""The algorithm registry: an algorithm is one module plus one line in `_REGISTERED`.

Each registered class (a `MetaTrainer`) supplies everything the rest of the package needs to know
about it, so evaluation, export and the CLI ask this registry and never branch on algorithm names:

- ``algo``: its name (``--algo`` of the CLI, ``algo`` of config.json and of the manifest);
- ``config_cls``: its typed frozen config (budgets, ``--set`` overrides, config.json);
- ``head_rule(config)`` / ``device_rule(run)``: what export writes about its adaptation rule;
- ``eval_adapters(run)``: its K-shot evaluation adapters (`robot_meta.meta.eval.adapters`);
- ``trained_with``: a note for the manifest on how training relates to the device rule.

To add an algorithm: write ``robot_meta/meta/<name>.py`` with its config class and its trainer
class and add one line ``"<algo>": "robot_meta.meta.<name>:<Class>"`` to `_REGISTERED` (the class is
imported on first use and must say the same ``algo``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robot_meta.meta.trainer import MetaTrainer

__all__ = ["ALGORITHMS", "ALGO_NAMES", "algorithm"]

#: Algorithm name -> ``module:class`` of its trainer, in registration order. The classes (and torch)
#: are imported on first use of `ALGORITHMS` / `algorithm`, so that the names alone are cheap (a
#: benchmark worker that only parses ``--cells`` starts without torch).
_REGISTERED: dict[str, str] = {
    "meta-dqn": "robot_meta.meta.meta_dqn:MetaDQN",
    "reptile": "robot_meta.meta.reptile:Reptile",
    "context": "robot_meta.meta.context:ContextDQN",
}

#: The registered names (the CLI's ``--algo`` choices).
ALGO_NAMES: tuple[str, ...] = tuple(_REGISTERED)

if TYPE_CHECKING:
    #: Algorithm name -> trainer class, in registration order.
    ALGORITHMS: dict[str, type[MetaTrainer[Any]]]


def _load() -> dict[str, type[MetaTrainer[Any]]]:
    classes: dict[str, type[MetaTrainer[Any]]] = {}
    for name, target in _REGISTERED.items():
        module, _, attr = target.partition(":")
        cls: type[MetaTrainer[Any]] = getattr(importlib.import_module(module), attr)
        if cls.algo != name or cls.config_cls.algo != name:
            raise TypeError(
                f"{cls.__name__} is registered as {name!r} but its algo is {cls.algo!r} "
                f"(config {cls.config_cls.algo!r})"
            )
        classes[name] = cls
    return classes


def _algorithms() -> dict[str, type[MetaTrainer[Any]]]:
    classes: dict[str, type[MetaTrainer[Any]]] | None = globals().get("ALGORITHMS")
    if classes is None:
        classes = globals()["ALGORITHMS"] = _load()  # one dict for the life of the process
    return classes


def __getattr__(name: str) -> Any:
    if name != "ALGORITHMS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _algorithms()


def algorithm(name: str) -> type[MetaTrainer[Any]]:
    """The trainer class registered as `name`; ValueError naming the registered ones otherwise."""
    cls = _algorithms().get(name)
    if cls is None:
        raise ValueError(f"unknown algorithm {name!r}: choose one of {list(ALGO_NAMES)}")
    return cls
