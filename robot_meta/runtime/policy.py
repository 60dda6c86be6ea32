"""`AdaptivePolicy`: an exported policy on the device - act, observe, adapt the head, reset.

Imports only numpy and onnxruntime. Loading checks the manifest (format version, fields, paths
inside the export directory) and builds the sessions from bytes whose sha256 matched the manifest,
so what runs is exactly what was exported. Sessions are single-threaded (one intra-op and one
inter-op thread): the control loop owns one core.

Thread model: `act` (the control thread) reads the current head as one tuple; `adapt` (any thread,
typically `AdaptiveController`'s background thread) computes a new head off the hot path and
publishes it with a single attribute assignment - an atomic swap, so an action is always computed
from one consistent head. `observe` appends to a bounded ring buffer under a short lock.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import onnxruntime as ort

from robot_meta.runtime.adaptation import AdaptMethod, FewShotAdapter, successor_flags
from robot_meta.runtime.buffer import TransitionRing
from robot_meta.runtime.manifest import ContextHeadRule, Manifest, load_manifest, pack_transitions
from robot_meta.runtime.session import RuntimeLoadError, inference_session, read_verified

__all__ = [
    "AdaptConfig",
    "AdaptReport",
    "AdaptivePolicy",
    "OnnxPolicy",
    "ObservationError",
    "TransitionError",
]

log = logging.getLogger(__name__)


class ObservationError(ValueError):
    """An observation has the wrong shape or dtype, or non-finite values."""


class TransitionError(ValueError):
    """A transition handed to `AdaptivePolicy.observe` was refused (it is not stored)."""


#: Largest magnitude of an observation entry or a reward that `AdaptivePolicy.observe` stores. Real
#: sensors and rewards are many orders of magnitude below; larger values are a driver fault.
MAX_ABS_INPUT = 1e6
#: Largest TD loss an adaptation may report and still be applied (rewards are bounded by MAX_ABS_INPUT).
MAX_ADAPT_LOSS = 1e9


@dataclass(frozen=True)
class AdaptConfig:
    """How the device adapts (the rule itself - K, alpha, gamma, kappa - comes from the manifest)."""

    method: AdaptMethod = "td"
    """``td``: the meta-training inner loop (K SGD steps); ``ridge``: closed-form ridge solve per action."""
    support_size: int | None = None
    """Latest transitions adapted on; None = the manifest's (meta-training's support size)."""
    buffer_capacity: int = 1024
    """Transitions kept (ring buffer; the oldest are dropped)."""
    min_transitions: int = 1
    """`adapt` leaves the head alone with fewer transitions than this."""
    trust_region: float = 1.0
    """A step may move the head (W, b) at most ``trust_region * max(1, ||(W0, b0)||)`` (Euclidean) from the meta head."""
    ridge_lambda: float = 1.0
    """Pull towards the meta head of the ridge solve."""
    z_trust_region: float = 100.0
    """A context embedding z is applied only within ``z_trust_region * max(1, ||z0||)`` (Euclidean) of the prior z0."""
    max_abs_input: float = MAX_ABS_INPUT
    """`observe` refuses an observation or reward entry whose magnitude exceeds this (finite but absurd)."""
    max_loss: float = MAX_ADAPT_LOSS
    """An adaptation whose TD loss (before or after) exceeds this is rolled back (the data is not trusted)."""

    def __post_init__(self) -> None:
        if self.method not in ("td", "ridge"):
            raise ValueError(f"AdaptConfig.method={self.method!r}: choose 'td' or 'ridge'")
        if self.support_size is not None and self.support_size < 1:
            raise ValueError(f"AdaptConfig.support_size={self.support_size} must be >= 1 (or None)")
        if self.buffer_capacity < 1:
            raise ValueError(f"AdaptConfig.buffer_capacity={self.buffer_capacity} must be >= 1")
        if self.min_transitions < 1:
            raise ValueError(f"AdaptConfig.min_transitions={self.min_transitions} must be >= 1")
        if not (self.trust_region > 0):
            raise ValueError(f"AdaptConfig.trust_region={self.trust_region} must be > 0")
        if not (math.isfinite(self.ridge_lambda) and self.ridge_lambda > 0):
            raise ValueError(f"AdaptConfig.ridge_lambda={self.ridge_lambda} must be > 0")
        for name in ("z_trust_region", "max_abs_input", "max_loss"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"AdaptConfig.{name}={value} must be a finite number > 0")


@dataclass(frozen=True)
class AdaptReport:
    """What one `AdaptivePolicy.adapt` call did."""

    method: str
    """``td``, ``ridge`` or ``context`` (re-inferring z)."""
    transitions: int
    """Transitions adapted on."""
    steps: int
    """Steps applied (a rolled-back step is not counted)."""
    loss_before: float
    """Mean Huber TD loss of the starting (meta) head on the transitions (NaN for context)."""
    loss_after: float
    """The same loss for the adapted head."""
    rolled_back: bool
    """A step was undone (non-finite, or outside the trust region)."""
    applied: bool
    """The policy now acts with the new head (False: it keeps its last good head)."""
    reason: str
    """Why a step was rolled back or nothing was applied ('' otherwise)."""
    seconds: float
    """Wall time of the call."""
    context: np.ndarray | None = None
    """The adapted context vector c of the context head rule (None for the other rules)."""


class OnnxPolicy:
    """An exported Q-network under single-threaded onnxruntime: greedy actions with the current head.

    Build it with `load` (``robot-meta export`` writes the directory). The head starts as the
    meta-trained one (read from the graph's defaults); `set_head` swaps another in atomically.
    `AdaptivePolicy` adds the transition buffer and the on-device adaptation.
    """

    def __init__(
        self,
        manifest: Manifest,
        policy_session: ort.InferenceSession,
        encoder_session: ort.InferenceSession | None = None,
    ) -> None:
        self.manifest = manifest
        self.obs_dim = manifest.obs_dim
        self.n_actions = manifest.n_actions
        self.feature_dim = manifest.feature_dim
        self._sess = policy_session
        self._enc = encoder_session
        self._context = manifest.context
        self._check_graphs()
        self._z0: np.ndarray | None = self._prior_z() if self._context is not None else None
        feeds: dict[str, np.ndarray] = {"obs": np.zeros((1, self.obs_dim), np.float32)}
        if self._z0 is not None:
            feeds["z"] = self._z0
        w0, b0 = self._sess.run(["head_weight_value", "head_bias_value"], feeds)
        self.meta_weight: np.ndarray = np.array(w0, np.float32)
        self.meta_bias: np.ndarray = np.array(b0, np.float32)
        self.meta_weight.setflags(write=False)
        self.meta_bias.setflags(write=False)
        self.head_basis: tuple[np.ndarray, np.ndarray] | None = None
        """The context head rule's meta-learned basis ``(B (D, A, H), L (D, A))`` read from the graph, else None."""
        if isinstance(manifest.head_rule, ContextHeadRule):
            self.head_basis = self._read_basis(feeds, manifest.head_rule)
        # The state act() reads: one tuple, replaced (never mutated) by set_head/adapt/reset: an atomic swap.
        self._state: tuple[np.ndarray, np.ndarray, np.ndarray | None] = (
            self.meta_weight,
            self.meta_bias,
            self._z0,
        )
        self._q_out = ["q_values"]
        self._obs_shape = (self.obs_dim,)

    def _read_basis(
        self, feeds: dict[str, np.ndarray], rule: ContextHeadRule
    ) -> tuple[np.ndarray, np.ndarray]:
        basis, bias_basis = self._sess.run(["head_basis_value", "head_bias_basis_value"], feeds)
        basis, bias_basis = np.array(basis, np.float32), np.array(bias_basis, np.float32)
        want = (rule.context_dim, self.n_actions, self.feature_dim)
        if basis.shape != want or bias_basis.shape != want[:2]:
            raise RuntimeLoadError(
                f"{self.manifest.directory / self.manifest.policy_file} carries a context basis of shapes "
                f"{basis.shape}, {bias_basis.shape} but the manifest's rule needs {want}, {want[:2]}: re-export the run"
            )
        if not (np.isfinite(basis).all() and np.isfinite(bias_basis).all()):
            raise RuntimeLoadError("the exported context basis has non-finite values: re-export the run")
        basis.setflags(write=False)
        bias_basis.setflags(write=False)
        return basis, bias_basis

    def set_head(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Act with head ``(weight (A, H), bias (A,))`` from now on (checked, copied, swapped atomically)."""
        w = np.array(weight, dtype=np.float32)
        b = np.array(bias, dtype=np.float32)
        if w.shape != (self.n_actions, self.feature_dim) or b.shape != (self.n_actions,):
            raise ValueError(
                f"head shapes {w.shape}, {b.shape} do not match ({self.n_actions}, {self.feature_dim}), ({self.n_actions},)"
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ValueError("refusing a non-finite head: the policy keeps its current one")
        w.setflags(write=False)
        b.setflags(write=False)
        self._state = (w, b, self._state[2])

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path, **kwargs: Any) -> Self:
        """Load an export directory: validate the manifest, verify every file's sha256, build sessions."""
        manifest = load_manifest(directory)
        policy = inference_session(
            read_verified(manifest, manifest.policy_file), str(manifest.directory / manifest.policy_file)
        )
        encoder = None
        if manifest.context is not None:
            encoder = inference_session(
                read_verified(manifest, manifest.context.file),
                str(manifest.directory / manifest.context.file),
            )
        log.info(
            "loaded %s policy for %s from %s (obs %d, %d actions, head %dx%d)",
            manifest.algo,
            manifest.env_id,
            manifest.directory,
            manifest.obs_dim,
            manifest.n_actions,
            manifest.n_actions,
            manifest.feature_dim,
        )
        return cls(manifest, policy, encoder, **kwargs)

    def _check_graphs(self) -> None:
        where = self.manifest.directory / self.manifest.policy_file
        inputs = {i.name: i.shape for i in self._sess.get_inputs()}
        inputs.update({i.name: i.shape for i in self._sess.get_overridable_initializers()})
        outputs = {o.name: o.shape for o in self._sess.get_outputs()}
        need_in = {"obs", "head_weight", "head_bias", *(["z"] if self._context else [])}
        need_out = {"q_values", "features", "head_weight_value", "head_bias_value"}
        if isinstance(self.manifest.head_rule, ContextHeadRule):
            need_out |= {"head_basis_value", "head_bias_basis_value"}
        if not need_in <= set(inputs) or not need_out <= set(outputs):
            raise RuntimeLoadError(
                f"{where} has inputs {sorted(inputs)} and outputs {sorted(outputs)}, expected {sorted(need_in)} "
                f"and {sorted(need_out)}: it was not written by `robot-meta export`; re-export the run"
            )
        if inputs["obs"][-1] != self.obs_dim or list(inputs["head_weight"]) != [
            self.n_actions,
            self.feature_dim,
        ]:
            raise RuntimeLoadError(
                f"{where} takes obs {inputs['obs']} and head {inputs['head_weight']}, but the manifest says obs "
                f"{self.obs_dim} and head {self.n_actions}x{self.feature_dim}: re-export the run"
            )
        if self._context is not None:
            if self._enc is None:
                raise RuntimeLoadError("a context export needs its encoder session")
            enc_in = {i.name: i.shape for i in self._enc.get_inputs()}
            if (
                enc_in.get("transitions", [None, None])[-1] != self._context.transition_dim
                or "mask" not in enc_in
            ):
                raise RuntimeLoadError(
                    f"{self.manifest.directory / self._context.file} does not take transitions of width "
                    f"{self._context.transition_dim} and a mask: re-export the run"
                )

    def _prior_z(self) -> np.ndarray:
        assert self._enc is not None and self._context is not None
        pad = np.zeros((1, self._context.transition_dim), np.float32)
        z = self._enc.run(["z"], {"transitions": pad, "mask": np.zeros(1, np.float32)})[0]
        return np.asarray(z, np.float32).reshape(1, -1)

    # -- acting -----------------------------------------------------------------------------------
    def check_observation(self, obs: Any) -> np.ndarray:
        """`obs` as a ``(1, obs_dim)`` float32 array, or an `ObservationError` saying what is wrong."""
        x = obs if isinstance(obs, np.ndarray) else np.asarray(obs)
        if x.dtype != np.float32:
            if x.dtype.kind != "f":
                raise ObservationError(
                    f"observation dtype {x.dtype} is not a float type: pass a float32 array of shape ({self.obs_dim},)"
                )
            x = x.astype(np.float32)
        if x.shape != (self.obs_dim,) and x.shape != (1, self.obs_dim):
            raise ObservationError(
                f"observation shape {x.shape} does not match the policy's ({self.obs_dim},) "
                f"(layout {[n for n, _ in self.manifest.layout]}): check the robot driver"
            )
        if not np.isfinite(x).all():
            raise ObservationError(
                "observation has non-finite values (NaN/inf): refusing to act on it; check the sensors"
            )
        return x.reshape(1, self.obs_dim)

    def _as_input(self, obs: Any) -> np.ndarray:
        """Fast path of `check_observation` for the common case (a finite float32 ``(obs_dim,)`` array)."""
        if type(obs) is np.ndarray and obs.dtype == np.float32 and obs.shape == self._obs_shape:
            if not np.isfinite(obs).all():
                raise ObservationError(
                    "observation has non-finite values (NaN/inf): refusing to act on it; check the sensors"
                )
            return obs.reshape(1, self.obs_dim)
        return self.check_observation(obs)

    def q_values(self, obs: Any) -> np.ndarray:
        """Q-values ``(n_actions,)`` of one observation with the current head."""
        return self._q(self._as_input(obs), self._state)

    def meta_q_values(self, obs: Any) -> np.ndarray:
        """Q-values ``(n_actions,)`` with the meta-trained head and prior z, whatever was adapted since.

        What the policy acted with before any adaptation (the evaluation's no-adaptation control);
        nothing is changed.
        """
        return self._q(self._as_input(obs), (self.meta_weight, self.meta_bias, self._z0))

    def _q(self, x: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> np.ndarray:
        w, b, z = state
        feeds = {"obs": x, "head_weight": w, "head_bias": b}
        if z is not None:
            feeds["z"] = z
        q: np.ndarray = self._sess.run(self._q_out, feeds)[0][0]
        return q

    def act(self, obs: Any) -> int:
        """Greedy action for one observation ``(obs_dim,)`` (float; ObservationError if malformed or non-finite)."""
        x = self._as_input(obs)
        w, b, z = self._state  # one read: the action comes from one consistent head
        feeds = {"obs": x, "head_weight": w, "head_bias": b}
        if z is not None:
            feeds["z"] = z
        return int(self._sess.run(self._q_out, feeds)[0].argmax())

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """The head ``(W (A, H), b (A,))`` the policy acts with now (read-only arrays)."""
        w, b, _ = self._state
        return w, b

    @property
    def z(self) -> np.ndarray | None:
        """The task embedding in use (ContextDQN), else None."""
        return self._state[2]

    def features(self, obs: np.ndarray) -> np.ndarray:
        """Trunk features ``(N, H)`` of a batch of observations ``(N, obs_dim)`` (the graph's ``features`` output)."""
        x = np.ascontiguousarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        w, b, z = self._state
        feeds = {"obs": x, "head_weight": w, "head_bias": b}
        if z is not None:
            feeds["z"] = np.broadcast_to(z, (len(x), z.shape[-1])).copy()
        f: np.ndarray = self._sess.run(["features"], feeds)[0]
        return f

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.manifest.algo}, {self.manifest.env_id}, obs {self.obs_dim}, {self.n_actions} actions)"


class AdaptivePolicy(OnnxPolicy):
    """An exported policy that acts greedily and adapts on the device (`observe`, `adapt`, `reset_adaptation`).

    ``AdaptivePolicy.load(dir, config=AdaptConfig(...))``. For head-adapting exports (MetaDQN,
    Reptile) `adapt` runs the meta-training inner loop (`FewShotAdapter`) on the latest transitions,
    starting from the meta-trained head each time (as in meta-training); for ContextDQN it re-infers
    the task embedding z from the latest transitions.
    """

    def __init__(
        self,
        manifest: Manifest,
        policy_session: ort.InferenceSession,
        encoder_session: ort.InferenceSession | None = None,
        config: AdaptConfig | None = None,
    ) -> None:
        super().__init__(manifest, policy_session, encoder_session)
        self.config = config or AdaptConfig()
        norm = math.sqrt(
            float(
                np.sum(self.meta_weight.astype(np.float64) ** 2)
                + np.sum(self.meta_bias.astype(np.float64) ** 2)
            )
        )
        self.trust_radius = self.config.trust_region * max(1.0, norm)
        rule = manifest.head_rule
        self.adapter: FewShotAdapter | None = None
        """The guarded head update (None for ContextDQN, whose adaptation is inference)."""
        if rule is not None:
            if self.head_basis is not None and self.config.method != "td":
                raise ValueError(
                    f"this export adapts by the context head rule ({rule.rule}): AdaptConfig.method must be 'td' "
                    f"(the gradient rule of the manifest), not {self.config.method!r}"
                )
            self.adapter = FewShotAdapter(
                steps=rule.steps, lr=rule.lr, gamma=rule.gamma, huber_delta=rule.huber_delta,
                n_step=rule.n_step, method=self.config.method, ridge_lambda=self.config.ridge_lambda,
                trust_radius=self.trust_radius,
                basis=None if self.head_basis is None else self.head_basis[0],
                bias_basis=None if self.head_basis is None else self.head_basis[1],
            )  # fmt: skip
        default_support = (
            rule.support_size if rule is not None else (self._context.context_size if self._context else 64)
        )
        self.support_size = self.config.support_size or default_support
        self._buffer = TransitionRing(max(self.config.buffer_capacity, 1), self.obs_dim)
        self._adapt_lock = threading.Lock()
        self.adaptations = 0
        """Adaptations applied since load (or the last `reset_adaptation`)."""

    # -- adaptation -------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path, config: AdaptConfig | None = None, **kwargs: Any) -> Self:
        """Load an export directory (manifest, sha256 of every file) with adaptation settings `config`."""
        return super().load(directory, config=config, **kwargs)

    def observe(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool) -> None:
        """Store one transition for the next `adapt` (TransitionError, and nothing stored, if it is malformed)."""
        try:
            s = self.check_observation(obs)[0]
            s2 = self.check_observation(next_obs)[0]
        except ObservationError as exc:
            raise TransitionError(f"transition refused: {exc}") from None
        if (
            isinstance(action, bool)
            or not isinstance(action, int | np.integer)
            or not 0 <= int(action) < self.n_actions
        ):
            raise TransitionError(
                f"transition refused: action {action!r} is not an int in [0, {self.n_actions})"
            )
        try:
            r = float(reward)
        except (TypeError, ValueError):
            raise TransitionError(f"transition refused: reward {reward!r} is not a number") from None
        if not math.isfinite(r):
            raise TransitionError(f"transition refused: reward {r} is not finite")
        bound = self.config.max_abs_input
        if abs(r) > bound:
            raise TransitionError(
                f"transition refused: reward {r:g} exceeds the bound |r| <= {bound:g}; check the reward signal"
            )
        for name, x in (("obs", s), ("next_obs", s2)):
            peak = float(np.max(np.abs(x)))
            if peak > bound:
                raise TransitionError(
                    f"transition refused: {name} has an entry of magnitude {peak:g} > {bound:g}; check the sensors"
                )
        if isinstance(terminated, bool | np.bool_):
            done = bool(terminated)
        elif isinstance(terminated, int | np.integer) and int(terminated) in (0, 1):
            done = bool(terminated)
        else:
            raise TransitionError(
                f"transition refused: terminated {terminated!r} must be a bool (or 0/1), e.g. the env's terminated flag"
            )
        self._buffer.add(s, int(action), r, s2, done)

    def end_episode(self) -> None:
        """The episode ended (the `DevicePolicy` hook): nothing to do here, every transition is
        already in the buffer with its own ``terminated`` flag (a time limit is not a terminal state)."""

    @property
    def buffered(self) -> int:
        """Transitions currently in the buffer."""
        return self._buffer.size

    def adapt(self) -> AdaptReport:
        """Adapt on the latest transitions and swap the new head in atomically; see `AdaptReport`."""
        t0 = time.perf_counter()
        with self._adapt_lock:
            if self._context is not None:
                return self._adapt_context(t0)
            obs, actions, rewards, next_obs, terminated = self._buffer.latest(self.support_size)
            n = len(actions)
            if n < self.config.min_transitions:
                return AdaptReport(
                    self.config.method, n, 0, math.nan, math.nan, False, False,
                    f"only {n} transitions observed (need {self.config.min_transitions})",
                    time.perf_counter() - t0,
                )  # fmt: skip
            feats = self.features(np.concatenate([obs, next_obs]))
            phi, phi_next = feats[:n], feats[n:]
            adapter = self.adapter
            assert adapter is not None
            succ = successor_flags(obs, next_obs) if adapter.n_step > 1 else None
            step = adapter.adapt(
                self.meta_weight, self.meta_bias, phi, actions, rewards, phi_next, terminated, successor=succ
            )
            applied = step.steps > 0
            worst = max(abs(step.loss_before), abs(step.loss_after))
            if applied and not (math.isfinite(worst) and worst <= self.config.max_loss):
                step = dataclasses.replace(
                    step,
                    steps=0,
                    rolled_back=True,
                    reason=f"TD loss {worst:g} exceeds {self.config.max_loss:g} (absurd rewards or observations?)",
                )
                applied = False
            if applied:
                self.set_head(step.weight, step.bias)
                self.adaptations += 1
            if step.rolled_back:
                log.warning("adaptation step rolled back: %s", step.reason)
            reason = step.reason if step.rolled_back else ""
            if not applied and not reason:
                reason = "no step was applied"
            elif not applied:
                reason += "; keeping the last good head"
            return AdaptReport(
                self.config.method, n, step.steps, step.loss_before, step.loss_after,
                step.rolled_back, applied, reason, time.perf_counter() - t0,
                step.context if applied else None,
            )  # fmt: skip

    def _adapt_context(self, t0: float) -> AdaptReport:
        assert self._enc is not None and self._context is not None and self._z0 is not None
        obs, actions, rewards, next_obs, _ = self._buffer.latest(self._context.context_size)
        n = len(actions)
        if n == 0:
            return AdaptReport(
                "context",
                0,
                0,
                math.nan,
                math.nan,
                False,
                False,
                "no transitions observed",
                time.perf_counter() - t0,
            )
        rows = pack_transitions(obs, actions, rewards, next_obs, self.n_actions)
        z = np.asarray(
            self._enc.run(["z"], {"transitions": rows, "mask": np.ones(n, np.float32)})[0], np.float32
        )
        if not np.isfinite(z).all():
            log.warning("context inference gave a non-finite z: keeping the last good one")
            return AdaptReport(
                "context",
                n,
                0,
                math.nan,
                math.nan,
                True,
                False,
                "non-finite z; keeping the last good one",
                time.perf_counter() - t0,
            )
        z = z.reshape(1, -1)
        dist = float(np.linalg.norm(z.astype(np.float64) - self._z0.astype(np.float64)))
        radius = self.config.z_trust_region * max(1.0, float(np.linalg.norm(self._z0.astype(np.float64))))
        if dist > radius:
            log.warning(
                "context z is %.3g from the prior (trust radius %.3g): keeping the last good one",
                dist,
                radius,
            )
            return AdaptReport(
                "context", n, 0, math.nan, math.nan, True, False,
                f"z moved {dist:.3g} from the prior, outside the trust radius {radius:.3g}; keeping the last good one",
                time.perf_counter() - t0,
            )  # fmt: skip
        w, b, _ = self._state
        z.setflags(write=False)
        self._state = (w, b, z)
        self.adaptations += 1
        return AdaptReport("context", n, 1, math.nan, math.nan, False, True, "", time.perf_counter() - t0)

    def reset_adaptation(self) -> None:
        """Back to the meta-trained head (and prior z) and an empty transition buffer (a new task)."""
        with self._adapt_lock:
            self._buffer.clear()
            self._state = (self.meta_weight, self.meta_bias, self._z0)
            self.adaptations = 0

    def __repr__(self) -> str:
        return (
            f"AdaptivePolicy({self.manifest.algo}, {self.manifest.env_id}, obs {self.obs_dim}, "
            f"{self.n_actions} actions, adaptations={self.adaptations})"
        )
