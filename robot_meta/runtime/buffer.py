"""The device's bounded transition buffer (a numpy ring; one writer, snapshot readers)."""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["TransitionRing"]


class TransitionRing:
    """A bounded transition buffer (numpy ring), thread-safe for one writer and snapshot readers."""

    def __init__(self, capacity: int, obs_dim: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.size = 0
        self.pos = 0
        self.lock = threading.Lock()

    def add(self, obs: np.ndarray, a: int, r: float, nxt: np.ndarray, d: bool) -> None:
        with self.lock:
            i = self.pos
            self.obs[i] = obs
            self.next_obs[i] = nxt
            self.actions[i] = a
            self.rewards[i] = r
            self.terminated[i] = 1.0 if d else 0.0
            self.pos = (i + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the latest `n` transitions, oldest first."""
        with self.lock:
            k = min(n, self.size)
            idx = (self.pos - k + np.arange(k)) % self.capacity
            return (
                self.obs[idx],
                self.actions[idx],
                self.rewards[idx],
                self.next_obs[idx],
                self.terminated[idx],
            )

    def clear(self) -> None:
        with self.lock:
            self.size = 0
            self.pos = 0
