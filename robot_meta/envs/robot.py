"""`PandaRobot`: the Franka Panda from pybullet_data, driven by end-effector position targets.

The arm uses the URDF's real torque limits: 87 N m on joints 1-4, 12 N m on joints 5-7 and 20 N per
finger, so a heavy object really slows the arm and a heavy, slippery one really slips out of the
grasp. (PyBullet's `changeDynamics(maxJointVelocity=...)` is deliberately not used: it throttles the
joints far below the rated speed and left the end effector 19 mm behind a 25 mm command.)
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from robot_meta.envs.sim import PyBulletSim

__all__ = ["PandaRobot"]

ARM_JOINTS = (0, 1, 2, 3, 4, 5, 6)
FINGER_JOINTS = (9, 10)
EE_LINK = 11  # panda_grasptarget: the point between the fingertips
HAND_LINKS = (7, 8, 9, 10, 11)
NEUTRAL_ARM = (0.0, 0.41, 0.0, -1.85, 0.0, 2.26, 0.79)
#: Gripper pointing straight down (quaternion x, y, z, w).
EE_DOWN = (1.0, 0.0, 0.0, 0.0)
#: Finger joint travel used by the controller; targets stay off the joint limits (0, 0.04), which
#: the solver otherwise fights every substep at a ~35 % speed cost.
FINGER_OPEN = 0.039
FINGER_CLOSED = 0.0005
#: Position gain of PyBullet's joint motors (default 0.1): 0.3 tracks a 25 mm step to ~2 mm.
POSITION_GAIN = 0.3
#: The gufunc behind ``np.linalg.svd(a, full_matrices=False)`` (numpy >= 2.0; numpy 1.x names it by shape).
_SVD_GUFUNC: np.ufunc | None = getattr(importlib.import_module("numpy.linalg._umath_linalg"), "svd_s", None)
#: IK iterations per command: the target is at most a few cm from the current pose, and 5
#: iterations track as well as the default 20 at a fraction of the cost.
IK_ITERATIONS = 5


#: Left-finger fingertip pad (size, centre) in the finger frame, added to the finger's own collision
#: hull: a flat pad whose inner face (y = 0) is parallel to the other finger's, as on the real
#: gripper. The hull alone is tapered by ~2.6 degrees, and squeezing pushed slippery objects out
#: along the taper before any lift. The hull is kept for the rest of the finger, so pushing with
#: the closed gripper touches the same geometry as before.
FINGER_PAD = ((0.0176, 0.012, 0.024), (0.0, 0.006, 0.042))


def _finger_collisions(mirrored: bool, hull: str) -> str:
    sign = -1.0 if mirrored else 1.0
    rpy = "0 0 3.14159265359" if mirrored else "0 0 0"
    size, c = FINGER_PAD
    pad = (
        f'<collision><origin rpy="{rpy}" xyz="{c[0]} {sign * c[1]} {c[2]}"/>'
        f'<geometry><box size="{size[0]} {size[1]} {size[2]}"/></geometry></collision>'
    )
    return pad + hull


def panda_urdf() -> str:
    """Path of the Panda URDF the envs load: pybullet_data's, with parallel fingertip pads.

    Generated from the installed pybullet_data (mesh paths made absolute) and written once,
    atomically, to a content-addressed file in the temp directory.
    """
    src = Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"
    text = src.read_text().replace("package://meshes/", f"{src.parent / 'meshes'}/")
    finger_collision = re.compile(
        r"<collision>\s*(<origin rpy=\"0 0 3.14159265359\" xyz=\"0 0 0\"/>)?\s*<geometry>\s*"
        r"<mesh filename=\"[^\"]*collision/finger.obj\"/>\s*</geometry>.*?</collision>",
        re.S,
    )
    text, n = finger_collision.subn(
        lambda m: _finger_collisions(mirrored=m.group(1) is not None, hull=m.group(0)), text
    )
    if n != 2:
        raise RuntimeError(
            f"{src}: expected 2 finger collision elements, found {n}; unsupported pybullet_data"
        )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"robot_meta_panda_{digest}.urdf"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return str(out)


def _svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.linalg.svd(a, full_matrices=False)`` of a real 2-D float64 matrix: numpy's own LAPACK gufunc
    (bitwise the same result), without the wrapper's type dispatch and error-state context, which cost more
    than the decomposition on 3 x 7 after a physics step. LAPACK's non-convergence (NaN singular values)
    raises `LinAlgError`, as in numpy; numpy versions without the gufunc use the wrapper."""
    if _SVD_GUFUNC is None:
        return np.linalg.svd(a, full_matrices=False)
    u, s, vt = _SVD_GUFUNC(a, signature="d->ddd")
    if not all(map(math.isfinite, s.tolist())):
        raise np.linalg.LinAlgError("SVD did not converge")
    return u, s, vt


def _pinv(a: np.ndarray) -> np.ndarray:
    """``np.linalg.pinv(a)`` of a real matrix, the same operations (bitwise the same result) without the
    generic wrapper's overhead (stacking, complex and empty-input handling), which dominated on 3 x 7.

    The cutoff and the scaling of ``u.T`` by the inverted singular values are elementwise, so they run on
    plain floats (after a physics step, every small numpy call costs tens of µs of cold caches); the
    SVD (`_svd`) and the product stay numpy's (LAPACK and BLAS, whose summation order a Python loop would
    not match).
    """
    if _SVD_GUFUNC is None:
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        values = s.tolist()
    else:  # `_svd` inlined: its finiteness check on the singular values this function needs anyway
        u, s, vt = _SVD_GUFUNC(a, signature="d->ddd")
        values = s.tolist()
        if not all(map(math.isfinite, values)):
            raise np.linalg.LinAlgError("SVD did not converge")
    cutoff = 1e-15 * max(values)  # pinv's default cutoff, rcond=1e-15
    inv = [1.0 / v if v > cutoff else 0.0 for v in values]
    scaled = np.array([[k * x for x in row] for k, row in zip(inv, u.T.tolist(), strict=True)])
    return np.matmul(vt.T, scaled)


class PandaRobot:
    """A fixed-base Panda whose end effector is commanded in Cartesian position.

    Args:
        sim: the simulation that owns the physics client.
        base_position: world position of the robot base, m.
    """

    def __init__(
        self, sim: PyBulletSim, base_position: tuple[float, float, float] = (-0.6, 0.0, 0.0)
    ) -> None:
        self.sim = sim
        self.base_position = tuple(float(v) for v in base_position)
        self.body = sim.loadURDF(panda_urdf(), basePosition=self.base_position, useFixedBase=True)
        self._joints = ARM_JOINTS + FINGER_JOINTS
        self.joint_forces = [float(sim.getJointInfo(self.body, j)[10]) for j in self._joints]  # URDF efforts
        self._gains = [POSITION_GAIN] * len(self._joints)
        for finger in FINGER_JOINTS:
            sim.changeDynamics(self.body, finger, lateralFriction=1.0, spinningFriction=0.001)
        self._finger_target = FINGER_CLOSED
        self._neutral = (*NEUTRAL_ARM, FINGER_CLOSED, FINGER_CLOSED)
        self._zeros = (0.0,) * len(self._joints)
        # Arm joint torque limits by strike torque scale (1.0: the rated torques), built on first use.
        self._strike_forces: dict[float, list[float]] = {}

    def reset(self, finger_width: float | None = None) -> None:
        """Put the arm in its neutral pose at rest with the given finger opening (total width, m)."""
        half = (
            FINGER_CLOSED
            if finger_width is None
            else float(np.clip(finger_width / 2, FINGER_CLOSED, FINGER_OPEN))
        )
        self._finger_target = half
        for j, q in zip(self._joints, (*NEUTRAL_ARM, half, half), strict=True):
            self.sim.resetJointState(self.body, j, q, 0.0)
        self._command(list(NEUTRAL_ARM))

    def set_joint_positions(self, arm: np.ndarray) -> None:
        """Teleport the arm joints (at rest), keeping the finger opening."""
        for j, q in zip(ARM_JOINTS, arm, strict=True):
            self.sim.resetJointState(self.body, j, float(q), 0.0)
        self._command([float(q) for q in arm])

    def ee_state(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (m) and linear velocity (m/s) in the world frame."""
        pos, vel = self.ee_state_floats()
        return np.array(pos), np.array(vel)

    def ee_state_floats(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """`ee_state` as tuples of plain floats (the env's hot path: no arrays to build)."""
        # computeLinkVelocity=1, computeForwardKinematics=1 and the client, positionally (see `PyBulletSim`).
        s = pybullet.getLinkState(self.body, EE_LINK, 1, 1, self.sim.client)
        return s[4], s[6]

    def finger_width(self) -> float:
        """Distance between the fingers, m."""
        a, b = pybullet.getJointStates(self.body, FINGER_JOINTS, self.sim.client)
        return float(a[0] + b[0])

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in self.sim.getJointStates(self.body, ARM_JOINTS)])

    def ik(self, target: Sequence[float] | np.ndarray, iterations: int = IK_ITERATIONS) -> list[float]:
        """Arm joint angles that put the end effector at `target`, pointing down (seeded at the current pose)."""
        q = self.sim.calculateInverseKinematics(
            self.body, EE_LINK, target, EE_DOWN, maxNumIterations=iterations, residualThreshold=1e-5
        )
        return list(q[:7])

    def teleport_ee(self, target: np.ndarray, tolerance: float = 1e-3) -> float:
        """Put the arm at rest with the end effector at `target`; returns the remaining error, m."""
        err = float("inf")
        for _ in range(20):
            self.set_joint_positions(np.array(self.ik(target, iterations=100)))
            err = float(np.linalg.norm(self.ee_state()[0] - target))
            if err < tolerance:
                break
        return err

    def command(self, ee_target: Sequence[float] | np.ndarray, gripper: float | None = None) -> None:
        """Drive towards an end-effector position target.

        `gripper` in [-1, 1] sets the finger opening (-1 closed, +1 fully open); None keeps it.
        """
        if gripper is not None:
            self._finger_target = FINGER_CLOSED + (gripper + 1.0) * 0.5 * (FINGER_OPEN - FINGER_CLOSED)
        # `ik` and `_command` inlined, pybullet called directly (the env's hot path; see `PyBulletSim`).
        client, finger = self.sim.client, self._finger_target
        q = pybullet.calculateInverseKinematics(
            self.body,
            EE_LINK,
            ee_target,
            EE_DOWN,
            maxNumIterations=IK_ITERATIONS,
            residualThreshold=1e-5,
            physicsClientId=client,
        )
        pybullet.setJointMotorControlArray(
            self.body,
            self._joints,
            pybullet.POSITION_CONTROL,
            targetPositions=(*q[:7], finger, finger),
            forces=self.joint_forces,
            positionGains=self._gains,
            physicsClientId=client,
        )

    def command_velocity(self, ee_velocity: np.ndarray, torque_scale: float = 1.0) -> None:
        """Drive the end effector at `ee_velocity` (m/s) for the next control step.

        Joint velocities come from the translational Jacobian's pseudo-inverse; the joint motors
        keep their torque limits (times `torque_scale`, for a torque-limited strike), so a heavy
        object in the way really slows the arm.
        """
        # pybullet called directly, the client positionally (the env's hot path; see `PyBulletSim`).
        client, zeros = self.sim.client, self._zeros
        q = [s[0] for s in pybullet.getJointStates(self.body, self._joints, client)]
        lin, _ = pybullet.calculateJacobian(self.body, EE_LINK, (0.0, 0.0, 0.0), q, zeros, zeros, client)
        jac = np.array((lin[0][:7], lin[1][:7], lin[2][:7]))  # the arm's 3 x 7 block (the same values)
        qdot = _pinv(jac) @ ee_velocity
        forces = self._strike_forces.get(torque_scale)
        if forces is None:
            forces = self._strike_forces[torque_scale] = [f * torque_scale for f in self.joint_forces[:7]]
        pybullet.setJointMotorControlArray(
            self.body,
            ARM_JOINTS,
            pybullet.VELOCITY_CONTROL,
            targetVelocities=qdot.tolist(),
            forces=forces,
            physicsClientId=client,
        )

    def _command(self, arm: list[float]) -> None:
        self.sim.setJointMotorControlArray(
            self.body,
            self._joints,
            self.sim.POSITION_CONTROL,
            targetPositions=[*arm, self._finger_target, self._finger_target],
            forces=self.joint_forces,
            positionGains=self._gains,
        )
