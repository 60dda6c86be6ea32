"""Gymnasium ids of the package, registered with string entry points (no heavy imports here)."""

from __future__ import annotations

__all__ = ["ENV_FAMILIES", "ENV_IDS", "MAX_EPISODE_STEPS", "register_envs"]

#: Gymnasium id -> task family.
ENV_FAMILIES: dict[str, str] = {
    "robot_meta/PandaReach-v0": "reach",
    "robot_meta/PandaPush-v0": "push",
    "robot_meta/PandaSlide-v0": "slide",
    "robot_meta/PandaPickPlace-v0": "pick_place",
}
ENV_IDS: tuple[str, ...] = tuple(ENV_FAMILIES)
MAX_EPISODE_STEPS = 50


def register_envs() -> None:
    """Register every id with Gymnasium (idempotent; a no-op where Gymnasium is not installed)."""
    try:
        import gymnasium as gym
    except ImportError:  # the on-device runtime does not need Gymnasium
        return
    for env_id, family in ENV_FAMILIES.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="robot_meta.envs.core:RobotTaskEnv",
                kwargs={"family": family},
                max_episode_steps=MAX_EPISODE_STEPS,
            )
