"""What the control loop drives: the `DevicePolicy` protocol, and `load_device_policy` for a directory.

Two kinds of device policy implement it: `AdaptivePolicy` (an ONNX export: ``manifest.json``, the
Q-network graph and its head / context rule) and `StrikePlanner` (a one-strike family's travel table
and its particle posterior: ``strike_planner.json`` + ``strike_planner.npz``). `AdaptiveController`,
`run_trials` and ``robot-meta adapt`` take either. numpy (+ onnxruntime for an ONNX export) only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar

from robot_meta.runtime.policy import AdaptConfig, AdaptivePolicy, AdaptReport
from robot_meta.runtime.strike import StrikePlanner, is_strike_planner_dir

__all__ = ["DevicePolicy", "load_device_policy", "without_adaptation"]


class DevicePolicy(Protocol):
    """Greedy actions, transitions in, adaptation on request (the control loop's background thread);
    `end_episode` after an episode's last transition (terminated or out of time), before its `adapt`."""

    n_actions: int
    adaptations: int

    def act(self, obs: Any) -> int: ...

    def observe(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool) -> None: ...

    def end_episode(self) -> None: ...

    def adapt(self) -> AdaptReport: ...

    def reset_adaptation(self) -> None: ...


def load_device_policy(
    directory: str | Path, config: AdaptConfig | None = None
) -> AdaptivePolicy | StrikePlanner:
    """The device policy saved in `directory`: a `StrikePlanner` where ``strike_planner.json`` is,
    otherwise an ONNX export (`AdaptivePolicy.load`, adaptation settings `config`). Every file is
    checked against its recorded sha256 either way."""
    if is_strike_planner_dir(directory):
        if config is not None and config != AdaptConfig():
            raise ValueError(
                f"{directory} holds a strike planner, whose adaptation is its posterior: it takes no AdaptConfig"
            )
        return StrikePlanner.load(directory)
    return AdaptivePolicy.load(directory, config)


_P = TypeVar("_P", bound=DevicePolicy)


def without_adaptation(policy: _P) -> _P:
    """The policy to run with adaptation switched off (``robot-meta adapt --no-adapt``): the policy
    itself for an ONNX export (the controller then never calls its `adapt`), a copy at the prior for a
    strike planner (whose follow-up would otherwise fold the episode's own first travel in)."""
    make = getattr(policy, "without_adaptation", None)
    out: _P = make() if callable(make) else policy
    return out
