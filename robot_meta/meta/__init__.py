"""Meta-learning of discrete-action Q-networks: `MetaDQN`, `Reptile` and `ContextDQN`.

Each algorithm is a `MetaTrainer` with a typed frozen config (`MetaDQNConfig`, `ReptileConfig`,
`ContextDQNConfig`) and the same ``train(out)`` loop: sample a batch of tasks, collect on them
(through an execution backend), store in per-task replay buffers, outer update, log, checkpoint.
Algorithms are listed in one registry (`robot_meta.meta.registry`); the K-shot evaluation is
`robot_meta.meta.eval`. The device's head rule is `adapt_head` (documented formula in
`robot_meta.meta.adaptation`) with the hyper-parameters of the runtime's `HeadRule`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robot_meta._lazy import lazy_exports

if TYPE_CHECKING:
    from robot_meta.meta.adaptation import (
        ContextHeadRule,
        HeadAdaptation,
        HeadRule,
        adapt_context,
        adapt_context_head,
        adapt_head,
        adapt_with_rule,
        head_td_loss,
        head_td_step,
        head_td_targets,
    )
    from robot_meta.meta.baselines import BASELINE_NAMES, SB3DQNConfig, train_policy_baseline
    from robot_meta.meta.checkpoint import (
        CHECKPOINT_FILE,
        CONFIG_FILE,
        TENSORBOARD_DIR,
        CheckpointError,
        RunConfigMismatchError,
        RunLockedError,
        load_checkpoint,
        read_run_config,
    )
    from robot_meta.meta.config import (
        BUDGETS,
        AlgoName,
        Budget,
        ContextDQNConfig,
        MetaConfig,
        MetaDQNConfig,
        ReptileConfig,
        config_class,
        make_config,
        parse_override,
    )
    from robot_meta.meta.context import ContextDQN
    from robot_meta.meta.dqn import (
        InnerDQN,
        LinearSchedule,
        double_dqn_targets,
        epsilon_greedy,
        hard_update,
        td_loss,
    )
    from robot_meta.meta.eval import (
        Adapter,
        EvalResult,
        KShotStats,
        MethodResult,
        UnitResult,
        evaluate,
        mean_ci,
        plot_success,
        run_methods,
    )
    from robot_meta.meta.eval.baseline_methods import ScratchMethod
    from robot_meta.meta.meta_dqn import MetaDQN, meta_td_loss
    from robot_meta.meta.registry import ALGO_NAMES, ALGORITHMS, algorithm
    from robot_meta.meta.replay import Batch, ReplayBuffer, Transitions
    from robot_meta.meta.reptile import Reptile
    from robot_meta.meta.rollout import EnvFactory, GymEnvFactory, TaskSampler
    from robot_meta.meta.run import TrainedRun, config_from_options, load_run, make_algorithm, train_run
    from robot_meta.meta.trainer import MetaTrainer, ResourceError, TrainCallback, TrainResult

# Imported on first use (robot_meta._lazy reads the TYPE_CHECKING imports above), so that a light
# submodule (e.g. robot_meta.meta.eval.kshot) does not load torch.
__getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "ALGORITHMS",
    "ALGO_NAMES",
    "BUDGETS",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "TENSORBOARD_DIR",
    "AlgoName",
    "Batch",
    "Budget",
    "CheckpointError",
    "ContextDQN",
    "ContextDQNConfig",
    "Adapter",
    "BASELINE_NAMES",
    "EvalResult",
    "KShotStats",
    "MethodResult",
    "SB3DQNConfig",
    "ScratchMethod",
    "UnitResult",
    "EnvFactory",
    "GymEnvFactory",
    "ContextHeadRule",
    "HeadAdaptation",
    "HeadRule",
    "InnerDQN",
    "LinearSchedule",
    "MetaConfig",
    "MetaDQN",
    "MetaDQNConfig",
    "MetaTrainer",
    "ReplayBuffer",
    "Reptile",
    "ReptileConfig",
    "RunConfigMismatchError",
    "RunLockedError",
    "ResourceError",
    "TaskSampler",
    "TrainCallback",
    "TrainResult",
    "TrainedRun",
    "Transitions",
    "adapt_context",
    "adapt_context_head",
    "adapt_head",
    "adapt_with_rule",
    "algorithm",
    "config_class",
    "config_from_options",
    "double_dqn_targets",
    "epsilon_greedy",
    "evaluate",
    "mean_ci",
    "plot_success",
    "run_methods",
    "train_policy_baseline",
    "hard_update",
    "head_td_loss",
    "head_td_step",
    "head_td_targets",
    "load_checkpoint",
    "load_run",
    "make_algorithm",
    "make_config",
    "meta_td_loss",
    "parse_override",
    "read_run_config",
    "td_loss",
    "train_run",
]
