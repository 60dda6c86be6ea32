"""Transitions, per-task replay buffers and torch batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from robot_meta.meta.hindsight import HindsightGoals

__all__ = ["Batch", "ReplayBuffer", "SupportBank", "Transitions", "stack_batches"]


class Batch(NamedTuple):
    """A torch batch; leading dimensions ``(..., N)`` (``(B, N)`` for a batch of tasks)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminated: Tensor

    def to(self, dtype: torch.dtype) -> Batch:
        """The same batch with float fields cast to `dtype` (actions stay int64)."""
        return Batch(
            self.obs.to(dtype),
            self.actions,
            self.rewards.to(dtype),
            self.next_obs.to(dtype),
            self.terminated.to(dtype),
        )


class Transitions(NamedTuple):
    """Numpy transitions, the unit that workers return and buffers store.

    ``obs``/``next_obs`` float32 ``(N, obs_dim)``, ``actions`` int64 ``(N,)``, ``rewards`` float32
    ``(N,)``, ``terminated`` float32 ``(N,)`` (1.0 only for true termination, not time limits).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @staticmethod
    def empty(obs_dim: int) -> Transitions:
        return Transitions(
            np.zeros((0, obs_dim), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
            np.zeros((0, obs_dim), np.float32),
            np.zeros(0, np.float32),
        )

    @staticmethod
    def concat(parts: Sequence[Transitions]) -> Transitions:
        if not parts:
            raise ValueError("Transitions.concat needs at least one part")
        return Transitions(*(np.concatenate([getattr(p, f) for p in parts]) for f in Transitions._fields))

    def tail(self, n: int) -> Transitions:
        """The last `n` transitions."""
        return Transitions(*(getattr(self, f)[max(0, len(self) - n) :] for f in Transitions._fields))

    def to_batch(self) -> Batch:
        return Batch(*(torch.from_numpy(np.ascontiguousarray(getattr(self, f))) for f in Transitions._fields))


def stack_batches(parts: Sequence[Transitions]) -> Batch:
    """Stack equally sized per-task transitions into a ``(B, N, ...)`` batch."""
    return Batch(*(torch.from_numpy(np.stack([getattr(p, f) for p in parts])) for f in Transitions._fields))


class ReplayBuffer:
    """A fixed-capacity ring buffer of transitions for one task (numpy storage, uniform sampling).

    Storage is allocated on the first `add`. `state_dict` holds torch tensors of the filled part
    only, so it can go into a checkpoint loaded with ``torch.load(weights_only=True)``.
    """

    def __init__(self, capacity: int, obs_dim: int) -> None:
        if capacity <= 0 or obs_dim <= 0:
            raise ValueError(
                f"ReplayBuffer needs a positive capacity and obs_dim, got {capacity} and {obs_dim}"
            )
        self.capacity = int(capacity)
        self.obs_dim = int(obs_dim)
        self._data: Transitions | None = None
        self._pos = 0
        self._size = 0
        self._last: np.ndarray | None = None  # cached `_episode_last`, cleared by every change

    def __len__(self) -> int:
        return self._size

    def _storage(self) -> Transitions:
        if self._data is None:
            c, d = self.capacity, self.obs_dim
            self._data = Transitions(
                np.zeros((c, d), np.float32),
                np.zeros(c, np.int64),
                np.zeros(c, np.float32),
                np.zeros((c, d), np.float32),
                np.zeros(c, np.float32),
            )
        return self._data

    def add(self, tr: Transitions) -> None:
        """Append transitions (the oldest are overwritten once the buffer is full)."""
        n = len(tr)
        if n == 0:
            return
        if tr.obs.shape[1:] != (self.obs_dim,):
            raise ValueError(
                f"ReplayBuffer for obs_dim={self.obs_dim} got observations of shape {tr.obs.shape}"
            )
        if n > self.capacity:
            tr = tr.tail(self.capacity)
            n = self.capacity
        data = self._storage()
        idx = (self._pos + np.arange(n)) % self.capacity
        for f in Transitions._fields:
            getattr(data, f)[idx] = getattr(tr, f)
        self._pos = int((self._pos + n) % self.capacity)
        self._size = min(self.capacity, self._size + n)
        self._last = None

    def sample(self, n: int, rng: np.random.Generator) -> Transitions:
        """`n` transitions drawn uniformly with replacement (the buffer must not be empty)."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer: collect transitions first")
        idx = rng.integers(0, self._size, size=n)
        data = self._storage()
        return Transitions(*(getattr(data, f)[idx] for f in Transitions._fields))

    def sample_nstep(
        self,
        n: int,
        n_step: int,
        gamma: float,
        rng: np.random.Generator,
        hindsight: tuple[HindsightGoals, float] | None = None,
        start_fraction: float = 0.0,
    ) -> tuple[Transitions, np.ndarray]:
        """`n` n-step transitions drawn uniformly with replacement, and their bootstrap discounts.

        From a drawn transition ``i`` the window runs over its successors in the buffer while the
        episode goes on (``next_obs[j] == obs[j + 1]`` exactly and ``j`` not terminal) for at most
        `n_step` transitions, never past the newest one. Returned: ``obs``/``actions`` of ``i``,
        ``rewards`` = ``sum_k gamma^k r_(i+k)`` over the window, ``next_obs``/``terminated`` of its
        last transition, and float32 discounts ``gamma^len`` (the factor of the bootstrap value).
        With ``n_step = 1`` it is one-step sampling with discounts ``gamma``; like `sample`, it takes
        one draw of `n` integers from `rng`.

        ``hindsight=(goals, fraction)``: each drawn transition, with probability `fraction`, has its
        goal replaced by the goal its episode achieved at a uniformly drawn later step of the same
        episode (from ``i`` itself to the episode's last stored transition; HER's ``future``): its
        observations, every reward of the window and the terminations (a relabelled success ends the
        window) are those of the new goal (`HindsightGoals`). Two more draws of `n` floats from `rng`.

        ``start_fraction``: each drawn transition, with this probability, is replaced by the first
        stored transition of its episode (its decision step: in slide, the first strike), so that
        the rare decisions of an episode take a larger share of the batch. One more draw of `n`
        floats from `rng` when it is > 0 (none at 0: the default draws are unchanged).
        """
        if not 0.0 <= start_fraction <= 1.0:
            raise ValueError(f"start_fraction must be in [0, 1], got {start_fraction}")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if self._size == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer: collect transitions first")
        data, cap = self._storage(), self.capacity
        logical = rng.integers(0, self._size, size=n)  # 0 = oldest
        if start_fraction > 0:
            last = self._episode_last()
            starts = np.flatnonzero(np.r_[True, last[:-1] != last[1:]])  # first of each stored episode
            first = starts[np.searchsorted(starts, logical, side="right") - 1]
            logical = np.where(rng.random(n) < start_fraction, first, logical)
        start = self._pos - self._size
        phys = (start + logical) % cap
        # the window: from i over its episode's successors, at most n_step (cached episode ends)
        length = np.minimum(n_step, self._episode_last()[logical] - logical + 1)
        steps = np.arange(n_step)
        window = (start + logical[:, None] + np.minimum(steps, (length - 1)[:, None])) % cap
        rewards_k = data.rewards[window].astype(np.float64)
        terminated = data.terminated[window[np.arange(n), length - 1]]
        obs, next_obs = data.obs[phys], data.next_obs[window[np.arange(n), length - 1]]
        if hindsight is not None:
            goals, fraction = hindsight
            rows, new = self._hindsight_goals(logical, goals, fraction, rng)
            if rows.size:
                win = window[rows]
                after = data.next_obs[win]  # (rows, n_step, obs_dim)
                old = data.obs[phys[rows]][:, None, goals.goal]
                goal = new[:, None, :]
                rewards_k[rows], ended = goals.outcome(
                    rewards_k[rows], data.terminated[win], after, old, goal
                )
                hit = (ended != 0) & (steps < length[rows, None])  # a relabelled success ends the window
                length[rows] = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, length[rows])
                last = length[rows] - 1
                terminated = terminated.copy()
                terminated[rows] = ended[np.arange(rows.size), last]
                obs, next_obs = obs.copy(), next_obs.copy()
                obs[rows] = goals.with_goal(obs[rows], new)
                next_obs[rows] = goals.with_goal(after[np.arange(rows.size), last], new)
        rewards = rewards_k[:, 0].copy()
        for k in range(1, int(length.max(initial=1))):  # summed in step order (bitwise as a running sum)
            rewards += np.where(k < length, gamma**k * rewards_k[:, k], 0.0)
        out = Transitions(obs, data.actions[phys], rewards.astype(np.float32), next_obs, terminated)
        return out, np.power(gamma, length).astype(np.float32)

    def sample_outcome(
        self, n: int, horizon: int, rng: np.random.Generator
    ) -> tuple[Transitions, np.ndarray]:
        """`n` transitions drawn uniformly with replacement, each with the observation its episode reached
        `horizon` steps later: ``next_obs`` of the transition ``min(i + horizon - 1, episode's last stored
        one)`` (`horizon` = 1 gives the transition's own ``next_obs``). One draw of `n` integers from `rng`.
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if self._size == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer: collect transitions first")
        data, cap = self._storage(), self.capacity
        logical = rng.integers(0, self._size, size=n)
        later = np.minimum(logical + horizon - 1, self._episode_last()[logical])
        start = self._pos - self._size
        phys = (start + logical) % cap
        drawn = Transitions(*(getattr(data, f)[phys] for f in Transitions._fields))
        return drawn, data.next_obs[(start + later) % cap]

    def _episode_last(self) -> np.ndarray:
        """Per stored transition (logical index, 0 = oldest), the logical index of its episode's last one."""
        if self._last is None:
            data, size = self._storage(), self._size
            order = (self._pos - size + np.arange(size)) % self.capacity
            cont = np.zeros(size, bool)
            cont[:-1] = (data.terminated[order[:-1]] == 0.0) & np.all(
                data.next_obs[order[:-1]] == data.obs[order[1:]], axis=-1
            )
            ends = np.flatnonzero(~cont)  # always holds size - 1
            self._last = ends[np.searchsorted(ends, np.arange(size))]
        return self._last

    def _hindsight_goals(
        self, logical: np.ndarray, goals: HindsightGoals, fraction: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which samples are relabelled (indices) and their goals: the goal achieved after a uniformly
        drawn step of the sample's episode, from its own step to the episode's last (two draws of n floats)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"the hindsight fraction must be in [0, 1], got {fraction}")
        n = len(logical)
        chosen = rng.random(n) < fraction
        span = self._episode_last()[logical] - logical + 1
        future = logical + np.minimum((rng.random(n) * span).astype(np.int64), span - 1)
        rows = np.flatnonzero(chosen)
        at = (self._pos - self._size + future[rows]) % self.capacity
        return rows, goals.achieved_goal(self._storage().next_obs[at])

    def all(self) -> Transitions:
        """Every stored transition, oldest first."""
        if self._data is None or self._size == 0:
            return Transitions.empty(self.obs_dim)
        order = np.arange(self._pos - self._size, self._pos) % self.capacity
        return Transitions(*(getattr(self._data, f)[order] for f in Transitions._fields))

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the storage in its ring layout (so sampling continues identically) plus the sizes."""
        state: dict[str, Any] = {
            "capacity": self.capacity,
            "obs_dim": self.obs_dim,
            "pos": self._pos,
            "size": self._size,
        }
        data = self._storage()
        state.update(
            {f: torch.from_numpy(getattr(data, f)[: self._size].copy()) for f in Transitions._fields}
        )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity or int(state["obs_dim"]) != self.obs_dim:
            raise ValueError(
                f"replay state is for capacity={state['capacity']}, obs_dim={state['obs_dim']}; "
                f"this buffer has capacity={self.capacity}, obs_dim={self.obs_dim}"
            )
        size, pos = int(state["size"]), int(state["pos"])
        if not (
            0 <= size <= self.capacity
            and 0 <= pos < self.capacity
            and (size == self.capacity or pos == size % self.capacity)
        ):
            raise ValueError(
                f"replay state has inconsistent pos={pos}, size={size} for capacity={self.capacity}"
            )
        self._data = None
        data = self._storage()
        for f in Transitions._fields:
            getattr(data, f)[:size] = state[f].numpy()
        self._pos, self._size = pos, size
        self._last = None


class SupportBank:
    """The latest `capacity` support sets of one task, each its last `set_size` transitions, zero-padded.

    MetaDQN stores here the support sets its collection actually adapted on (the beginning of a
    task visit, acted by the meta-policy) and draws the inner-loop support of the outer loss from
    them, so that meta-training adapts on the same kind of data as the device.
    """

    def __init__(self, capacity: int, set_size: int, obs_dim: int) -> None:
        if capacity <= 0 or set_size <= 0 or obs_dim <= 0:
            raise ValueError(
                f"SupportBank needs positive sizes, got capacity={capacity}, set_size={set_size}, obs_dim={obs_dim}"
            )
        self.capacity, self.set_size, self.obs_dim = int(capacity), int(set_size), int(obs_dim)
        c, n, d = self.capacity, self.set_size, self.obs_dim
        self._sets = Transitions(
            np.zeros((c, n, d), np.float32),
            np.zeros((c, n), np.int64),
            np.zeros((c, n), np.float32),
            np.zeros((c, n, d), np.float32),
            np.zeros((c, n), np.float32),
        )
        self._lengths = np.zeros(c, np.int64)
        self._pos = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, tr: Transitions) -> None:
        """Store the last `set_size` transitions of `tr` as one set (empty sets are ignored)."""
        tr = tr.tail(self.set_size)
        n = len(tr)
        if n == 0:
            return
        slot = self._pos
        for f in Transitions._fields:
            arr = getattr(self._sets, f)
            arr[slot] = 0
            arr[slot, :n] = getattr(tr, f)
        self._lengths[slot] = n
        self._pos = (self._pos + 1) % self.capacity
        self._size = min(self.capacity, self._size + 1)

    def sample(self, rng: np.random.Generator) -> tuple[Transitions, np.ndarray]:
        """One stored set, uniformly: padded transitions ``(set_size, ...)`` and its float32 mask."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty SupportBank")
        slot = int(rng.integers(self._size))
        mask = (np.arange(self.set_size) < self._lengths[slot]).astype(np.float32)
        return Transitions(*(getattr(self._sets, f)[slot].copy() for f in Transitions._fields)), mask

    def state_dict(self) -> dict[str, Any]:
        """The stored sets in their ring layout (so sampling continues identically) plus the sizes."""
        n = self._size
        state: dict[str, Any] = {
            "capacity": self.capacity,
            "set_size": self.set_size,
            "obs_dim": self.obs_dim,
            "pos": self._pos,
            "size": n,
        }
        state.update({f: torch.from_numpy(getattr(self._sets, f)[:n].copy()) for f in Transitions._fields})
        state["lengths"] = torch.from_numpy(self._lengths[:n].copy())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (int(state["capacity"]), int(state["set_size"]), int(state["obs_dim"])) != (
            self.capacity,
            self.set_size,
            self.obs_dim,
        ):
            raise ValueError(
                f"support-bank state is for capacity={state['capacity']}, set_size={state['set_size']}, "
                f"obs_dim={state['obs_dim']}; this bank has {self.capacity}, {self.set_size}, {self.obs_dim}"
            )
        n, pos = int(state["size"]), int(state["pos"])
        if not (0 <= n <= self.capacity and 0 <= pos < self.capacity):
            raise ValueError(f"support-bank state has inconsistent pos={pos}, size={n}")
        for f in Transitions._fields:
            arr = getattr(self._sets, f)
            arr[:] = 0
            arr[:n] = state[f].numpy()
        self._lengths[:] = 0
        self._lengths[:n] = state["lengths"].numpy()
        self._pos, self._size = pos, n
