"""The algorithm registry: an algorithm is one module plus one line in `_REGISTERED`.

Each registered class (a `MetaTrainer`) supplies everything the rest of the package needs to know
about it, so evaluation, export and the CLI ask this registry and never branch on algorithm names:

- ``algo``: its name (``--algo`` of the CLI, ``algo`` of config.json and of the manifest);
- ``config_cls``: its typed frozen config (budgets, ``--set`` overrides, config.json);
- ``head_rule(config)`` / ``device_rule(run)``: what export writes about its adaptation rule;
- ``eval_adapters(run)``: its K-shot evaluation adapters (`robot_meta.meta.eval.adapters`);
- ``trained_with``: a note for the manifest on how training relates to the device rule.

To add an algorithm: write ``robot_meta/meta/<name>.py`` with its config class and its trainer
class, import the trainer here and add one line to `_REGISTERED`.
"""

from __future__ import annotations

from typing import Any

from robot_meta.meta.context import ContextDQN
from robot_meta.meta.meta_dqn import MetaDQN
from robot_meta.meta.reptile import Reptile
from robot_meta.meta.trainer import MetaTrainer

__all__ = ["ALGORITHMS", "ALGO_NAMES", "algorithm"]

_REGISTERED: tuple[type[MetaTrainer[Any]], ...] = (
    MetaDQN,
    Reptile,
    ContextDQN,
)

#: Algorithm name -> trainer class, in registration order.
ALGORITHMS: dict[str, type[MetaTrainer[Any]]] = {cls.algo: cls for cls in _REGISTERED}
#: The registered names (the CLI's ``--algo`` choices).
ALGO_NAMES: tuple[str, ...] = tuple(ALGORITHMS)

for _cls in _REGISTERED:
    if _cls.config_cls.algo != _cls.algo:
        raise TypeError(f"{_cls.__name__}.config_cls.algo is {_cls.config_cls.algo!r}, not {_cls.algo!r}")


def algorithm(name: str) -> type[MetaTrainer[Any]]:
    """The trainer class registered as `name`; ValueError naming the registered ones otherwise."""
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise ValueError(f"unknown algorithm {name!r}: choose one of {list(ALGO_NAMES)}")
    return cls
