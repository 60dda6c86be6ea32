"""The simulator side of ``robot-meta adapt``: the env and the held-out tasks an export is tried on.

The device side is `robot_meta.runtime` (`AdaptivePolicy`, `run_trials`); this module needs
Gymnasium and the PyBullet envs, which a controller does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["simulator_for", "trials_on_and_off"]


def simulator_for(
    env_id: str,
    split: str,
    num_tasks: int,
    seed: int,
    *,
    train_distribution: Mapping[str, Any] | None,
    n_actions: int,
    obs_dim: int | None = None,
) -> tuple[Any, list[Any]]:
    """``(env, tasks)``: the discrete-action env `env_id` and `num_tasks` tasks of `split` for `seed`.

    The tasks come from the policy's train distribution (``TaskDistribution.to_dict()``; else the
    env's preset), drawn by the K-shot
    protocol's rule (`robot_meta.meta.eval.units.evaluation_tasks`): evaluation seed `seed` meets the
    same held-out tasks here as in ``robot-meta evaluate --seeds``. ValueError, naming
    what is wrong, if they cannot be set up or the env does not match the export's observations and
    actions.
    """
    import gymnasium as gym

    from robot_meta._registration import ENV_FAMILIES
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.eval.units import evaluation_tasks

    dist_doc = train_distribution
    try:
        if isinstance(dist_doc, dict) and "train" in dist_doc:
            dist = TaskDistribution.from_dict(dist_doc)
        elif env_id in ENV_FAMILIES:
            dist = TaskDistribution.preset(ENV_FAMILIES[env_id])
        else:
            raise ValueError(f"the manifest has no task distribution and {env_id!r} has no preset")
        tasks = evaluation_tasks(dist.split(split), seed, num_tasks)  # type: ignore[arg-type]
        env = gym.make(env_id, action_mode="discrete")
    except (ValueError, KeyError, gym.error.Error) as exc:
        raise ValueError(f"cannot set up {env_id} / split {split!r}: {exc}") from None
    if (obs_dim is not None and env.observation_space.shape != (obs_dim,)) or getattr(
        env.action_space, "n", None
    ) != n_actions:
        env.close()
        raise ValueError(
            f"{env_id} has observations {env.observation_space.shape} and {getattr(env.action_space, 'n', '?')} "
            f"actions but the policy expects ({obs_dim or '?'},) and {n_actions}: pass the env it was trained on"
        )
    return env, list(tasks)


def trials_on_and_off(
    policy: Any,
    env_id: str,
    num_tasks: int,
    seed: int,
    episodes: int,
    *,
    train_distribution: Mapping[str, Any] | None,
    rate_hz: float = 0.0,
    split: str = "test",
    on_task: Any = None,
) -> tuple[Any, Any]:
    """``(adapted, not_adapted)`` `TrialsReport` s: ``robot-meta adapt`` and ``robot-meta adapt
    --no-adapt`` on the same tasks and first resets (evaluation seed `seed`); `on_task` sees the
    adapted run's tasks."""
    from robot_meta.meta.eval.units import unit_seeds
    from robot_meta.runtime import device_controller_config, run_trials, without_adaptation

    env, tasks = simulator_for(
        env_id, split, num_tasks, seed, train_distribution=train_distribution, n_actions=policy.n_actions
    )
    firsts = [unit_seeds(seed, i)[0] for i in range(len(tasks))]
    try:
        adapted = run_trials(
            policy, env, tasks, episodes=episodes, seed=firsts, config=device_controller_config(policy, rate_hz),
            on_task=on_task,
        )  # fmt: skip
        off = run_trials(
            without_adaptation(policy), env, tasks, episodes=episodes, seed=firsts,
            config=device_controller_config(policy, rate_hz, adapt=False),
        )  # fmt: skip
    finally:
        env.close()
    return adapted, off
