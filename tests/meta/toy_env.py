"""A tiny, fast parametric task family for the meta-learning tests (no PyBullet).

A point on a line must reach a goal. The hidden task parameter ``gain`` (sign and magnitude)
decides what each action does: ``x += 0.15 * gain * u`` with ``u in {-1, 0, +1}``, so on half of
the tasks "right" moves left. The observation ``[x, goal, goal - x]`` does not reveal the gain:
a policy can only act well on every task after seeing a few transitions of it (adaptation).
Reward ``-|x - goal|`` per step; the episode terminates (success) within 0.08 of the goal (0.3-0.5 away at reset) and is
truncated after 20 steps. One step costs a few microseconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot_meta.meta import MetaConfig, MetaTrainer, config_class, make_algorithm

__all__ = ["TOY_ALGO", "TOY_COMMON", "ToyEnv", "ToyTask", "ToyTasks", "toy_config", "toy_trainer"]


@dataclass(frozen=True)
class ToyTask:
    gain: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_vector(self) -> np.ndarray:
        """The true parameters (ContextDQN's teacher reads them)."""
        return np.array([self.gain], dtype=np.float32)


class ToyTasks:
    """Duck-typed TaskDistribution: gains uniform in [low, high], with a random sign if `signed`.

    The signed family needs real adaptation (the best action flips with the hidden sign); the
    unsigned one only varies the magnitude, like mass or friction in the Panda families.
    """

    def __init__(self, low: float = 0.7, high: float = 1.3, signed: bool = True) -> None:
        self.low, self.high, self.signed = low, high, signed

    def sample(self, n: int, rng: np.random.Generator) -> list[ToyTask]:
        mags = rng.uniform(self.low, self.high, size=n)
        signs = np.where(rng.random(n) < 0.5, -1.0, 1.0) if self.signed else np.ones(n)
        return [ToyTask(float(m * s)) for m, s in zip(mags, signs, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {"name": "toy", "low": self.low, "high": self.high, "signed": self.signed}


class ToyEnv(gym.Env[np.ndarray, int]):
    max_steps = 20

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.action_space: spaces.Space[int] = spaces.Discrete(3)  # type: ignore[assignment]
        self.task = ToyTask()
        self.x = self.goal = 0.0
        self.t = 0

    def set_task(self, task: ToyTask) -> None:
        self.task = task

    def get_task(self) -> ToyTask:
        return self.task

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.goal, self.goal - self.x], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and options.get("task") is not None:
            self.task = options["task"]
        self.x = float(self.np_random.uniform(-0.4, 0.4))
        self.goal = self.x + float(self.np_random.choice([-1.0, 1.0]) * self.np_random.uniform(0.3, 0.5))
        self.t = 0
        return self._obs(), {"is_success": False, "task": self.task}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        u = int(action) - 1
        self.x = float(np.clip(self.x + 0.15 * self.task.gain * u, -1.0, 1.0))
        self.t += 1
        dist = abs(self.x - self.goal)
        success = dist < 0.08
        return (
            self._obs(),
            -dist,
            success,
            self.t >= self.max_steps and not success,
            {"is_success": success, "task": self.task},
        )


#: Small sizes that make every algorithm learn on the toy family in seconds.
TOY_COMMON: dict[str, Any] = dict(
    env_id="toy/PointGain-v0",
    preset="toy",
    num_tasks=8,
    meta_batch_size=4,
    episodes_per_task=2,
    learning_starts=200,
    hidden=(32, 32),
    epsilon_fraction=0.5,
    gamma=0.9,
    buffer_capacity=2_000,
    checkpoint_interval=5,
)
TOY_ALGO: dict[str, dict[str, Any]] = {
    "meta-dqn": dict(
        updates_per_iteration=8,
        update_batch_tasks=4,
        support_size=32,
        query_size=32,
        support_bank_size=8,
        inner_lr=0.05,
        lr=3e-3,
        target_update_interval=50,
    ),
    "reptile": dict(inner_updates_per_episode=10, inner_pool_size=200, inner_batch_size=32, inner_lr=3e-3),
    "context": dict(
        updates_per_iteration=8,
        update_batch_tasks=4,
        context_size=16,
        batch_size=32,
        lr=3e-3,
        target_update_interval=50,
    ),
}


def toy_config(algo: str, **overrides: Any) -> MetaConfig:
    return config_class(algo)(**{**TOY_COMMON, **TOY_ALGO[algo], **overrides})


def toy_trainer(config: MetaConfig, signed: bool = True) -> MetaTrainer[Any]:
    return make_algorithm(config, env_factory=ToyEnv, tasks=ToyTasks(signed=signed))
