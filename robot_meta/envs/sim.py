"""`PyBulletSim`: one PyBullet physics client in DIRECT mode, owned by one env.

Every pybullet function is reached as an attribute of the sim (``sim.getLinkState(...)``) and is
bound to this sim's client (``physicsClientId``), so several envs in one process never touch each
other's worlds. The bound functions are cached on the instance on first use.

The env's per-step calls (`step`, the end-effector state, IK and motor commands, the object's state)
call pybullet directly with ``sim.client``, positionally where pybullet's argument order allows: a
bound function's keyword merge and pybullet's keyword parsing cost about as much as a small call
(getLinkState with its two flags as keywords: ~12 µs against ~7 µs positionally).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import pybullet
import pybullet_data

__all__ = ["PhysicsDisconnectedError", "PyBulletSim"]

log = logging.getLogger(__name__)


class PhysicsDisconnectedError(RuntimeError):
    """The physics client went away (server crash or `close()`); re-create the env or call `reconnect`."""


class PyBulletSim:
    """One DIRECT-mode physics client with a fixed control period.

    Args:
        timestep: physics substep, s (default 1/500 s, as panda-gym).
        n_substeps: substeps per control step (default 20: a 25 Hz control rate).
        solver_iterations: constraint-solver iterations per substep. PyBullet's default is 50; 20
            tracks end-effector commands as closely (measured in BENCHMARKS.md) at ~1.4x the speed.
    """

    def __init__(
        self, timestep: float = 1.0 / 500.0, n_substeps: int = 20, solver_iterations: int = 20
    ) -> None:
        if not (timestep > 0 and np.isfinite(timestep)):
            raise ValueError(f"PyBulletSim timestep={timestep!r} must be a positive number of seconds")
        if int(n_substeps) < 1:
            raise ValueError(f"PyBulletSim n_substeps={n_substeps!r} must be >= 1")
        self.timestep = float(timestep)
        self.n_substeps = int(n_substeps)
        self.solver_iterations = int(solver_iterations)
        self.client = -1
        self.connects = 0
        self._connect()

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> None:
        self.client = pybullet.connect(pybullet.DIRECT)
        if self.client < 0:
            raise PhysicsDisconnectedError("could not start a PyBullet DIRECT physics client")
        self.connects += 1
        for name in [k for k, v in vars(self).items() if isinstance(v, functools.partial)]:
            delattr(self, name)  # drop functions bound to a previous client
        self._configure()

    def _configure(self) -> None:
        self.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.setGravity(0.0, 0.0, -9.81)
        # One stepSimulation call advances a whole control period in n_substeps fixed substeps.
        self.setPhysicsEngineParameter(
            fixedTimeStep=self.timestep * self.n_substeps,
            numSubSteps=self.n_substeps,
            numSolverIterations=self.solver_iterations,
            deterministicOverlappingPairs=1,
        )

    def set_solver_iterations(self, iterations: int) -> None:
        """Change the solver iterations per substep; kept across `reset_world` and `reconnect`.

        (A bare ``setPhysicsEngineParameter(numSolverIterations=...)`` would be undone by the
        world rebuild of a seeded reset.)
        """
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"solver iterations must be a positive int, got {iterations!r}")
        self.solver_iterations = iterations
        self.setPhysicsEngineParameter(numSolverIterations=iterations)

    @property
    def control_dt(self) -> float:
        """Duration of one control step, s."""
        return self.timestep * self.n_substeps

    @property
    def is_connected(self) -> bool:
        if self.client < 0:
            return False
        try:
            return bool(pybullet.getConnectionInfo(physicsClientId=self.client)["isConnected"])
        except pybullet.error:
            return False

    def reset_world(self) -> None:
        """Empty the world of the same client, dropping every hidden solver cache.

        PyBullet keeps contact manifolds and warm-start impulses across teleports, so only a
        fresh world replays an episode bitwise. Freed memory is returned (no leak, measured).
        """
        try:
            self.resetSimulation()
        except pybullet.error as exc:
            raise PhysicsDisconnectedError(f"physics client {self.client} is not connected: {exc}") from exc
        self._configure()

    def reconnect(self) -> None:
        """Drop the current client (if any) and start a fresh, empty world."""
        self.close()
        self._connect()

    def close(self) -> None:
        """Disconnect; safe to call more than once."""
        if self.client >= 0:
            try:
                pybullet.disconnect(physicsClientId=self.client)
            except pybullet.error:
                pass
            self.client = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    # -- calls --------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        attr = getattr(pybullet, name)  # AttributeError for unknown names, as expected
        if not callable(attr) or not name[:1].islower():
            # A constant (``sim.POSITION_CONTROL``): the same for every client, cached like the functions
            # (the hot path reads one per step).
            object.__setattr__(self, name, attr)
            return attr
        if self.client < 0:
            raise PhysicsDisconnectedError(f"pybullet.{name} called on a closed PyBulletSim")
        bound = functools.partial(attr, physicsClientId=self.client)
        object.__setattr__(self, name, bound)
        return bound

    def step(self) -> None:
        """Advance one control period (n_substeps physics substeps)."""
        try:
            pybullet.stepSimulation(self.client)
        except pybullet.error as exc:
            raise PhysicsDisconnectedError(f"physics client {self.client} is not connected: {exc}") from exc

    # -- rendering ----------------------------------------------------------------------------
    def render(
        self,
        width: int = 480,
        height: int = 360,
        target: tuple[float, float, float] = (0.1, 0.0, 0.0),
        distance: float = 1.3,
        yaw: float = 50.0,
        pitch: float = -30.0,
    ) -> np.ndarray:
        """An RGB image (height, width, 3) uint8 from the headless TinyRenderer."""
        view = self.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=target, distance=distance, yaw=yaw, pitch=pitch, roll=0.0, upAxisIndex=2
        )
        proj = self.computeProjectionMatrixFOV(fov=60.0, aspect=width / height, nearVal=0.05, farVal=5.0)
        _, _, rgba, _, _ = self.getCameraImage(
            width=width,
            height=height,
            viewMatrix=view,
            projectionMatrix=proj,
            renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_NO_SEGMENTATION_MASK,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()
