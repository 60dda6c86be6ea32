"""The on-device runtime: numpy + onnxruntime ONLY (never torch, pybullet or gymnasium).

    from robot_meta.runtime import AdaptivePolicy, AdaptiveController, ControllerConfig

    policy = AdaptivePolicy.load("exports/slide")     # verifies manifest + sha256 of every file
    a = policy.act(obs)                                # greedy action, single-threaded onnxruntime
    policy.observe(obs, a, reward, next_obs, terminated)
    policy.end_episode()                               # after an episode's last step (the controller calls it)
    report = policy.adapt()                            # head TD steps (or ridge), guarded, atomic swap
    policy.reset_adaptation()                          # back to the meta-trained head (new task)

    AdaptiveController(policy, robot, ControllerConfig(rate_hz=100)).run(episodes=10)

    policy = load_device_policy("exports/slide-strike")  # an ONNX export or a StrikePlanner

Install on a controller with ``pip install robot_meta`` (its core dependencies are exactly numpy and onnxruntime).
"""

from __future__ import annotations

from robot_meta.runtime.adaptation import (
    AdaptMethod,
    FewShotAdapter,
    HeadStep,
    context_head,
    context_td_adapt,
    huber_loss,
    ridge_adapt,
    successor_flags,
    td_adapt,
    td_targets,
)
from robot_meta.runtime.controller import (
    AdaptiveController,
    ControllerConfig,
    ControllerReport,
    EpisodeRecord,
    StepEnv,
    realtime_scheduling,
)
from robot_meta.runtime.device import DevicePolicy, load_device_policy, without_adaptation
from robot_meta.runtime.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    OLDEST_ONNXRUNTIME,
    ContextHeadRule,
    ContextSpec,
    DeviceRule,
    HeadRule,
    Manifest,
    ManifestError,
    load_manifest,
    pack_transitions,
    sha256_file,
)
from robot_meta.runtime.policy import (
    AdaptConfig,
    AdaptivePolicy,
    AdaptReport,
    ObservationError,
    OnnxPolicy,
    TransitionError,
)
from robot_meta.runtime.session import RuntimeLoadError, inference_session
from robot_meta.runtime.strike import StrikeLayout, StrikePlanner, is_strike_planner_dir
from robot_meta.runtime.trials import TaskTrial, TrialsReport, device_controller_config, run_trials

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "OLDEST_ONNXRUNTIME",
    "AdaptConfig",
    "AdaptMethod",
    "AdaptReport",
    "AdaptiveController",
    "AdaptivePolicy",
    "ContextHeadRule",
    "ContextSpec",
    "DevicePolicy",
    "DeviceRule",
    "ControllerConfig",
    "ControllerReport",
    "EpisodeRecord",
    "FewShotAdapter",
    "HeadRule",
    "HeadStep",
    "Manifest",
    "ManifestError",
    "ObservationError",
    "OnnxPolicy",
    "RuntimeLoadError",
    "StepEnv",
    "StrikeLayout",
    "StrikePlanner",
    "TaskTrial",
    "TransitionError",
    "TrialsReport",
    "context_head",
    "context_td_adapt",
    "device_controller_config",
    "huber_loss",
    "inference_session",
    "is_strike_planner_dir",
    "load_device_policy",
    "load_manifest",
    "pack_transitions",
    "ridge_adapt",
    "realtime_scheduling",
    "run_trials",
    "sha256_file",
    "successor_flags",
    "td_adapt",
    "td_targets",
    "without_adaptation",
]
