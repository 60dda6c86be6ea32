"""What every command of `robot-meta` shares: the error type, the parser class, lazy choices, parsing helpers."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence


class CliError(Exception):
    """A user error: its message is printed as one line and the command exits with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message} (see `{self.prog} --help`)")


Handler = Callable[[argparse.Namespace], int]


class _Registered:
    """Argparse ``choices`` looked up only when used (parsing that option, or printing its help).

    The algorithm registry imports torch and the task splits pybullet; the device's commands
    (``adapt``) and ``--help`` of the others must not pay for that.
    """

    def __init__(self, lookup: Callable[[], Sequence[str]]) -> None:
        self._lookup = lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __contains__(self, value: object) -> bool:
        return value in self._lookup()


def _algo_names() -> Sequence[str]:
    from robot_meta.meta.registry import ALGO_NAMES
    from robot_meta.meta.strike import STRIKE_ALGO

    return (*ALGO_NAMES, STRIKE_ALGO)  # the strike planner trains by `robot-meta train` too (no Q-network)


def _split_names() -> Sequence[str]:
    from robot_meta.envs.params import SPLITS

    return SPLITS


ALGO_CHOICES = _Registered(_algo_names)
SPLIT_CHOICES = _Registered(_split_names)


def _parse_ints(text: str, what: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CliError(f"{what} must be comma-separated integers such as {example}, got {text!r}") from None
    if not values:
        raise CliError(f"{what} is empty: give at least one value, e.g. {example}")
    return values
