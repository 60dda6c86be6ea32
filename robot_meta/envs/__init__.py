"""Gymnasium envs of a Franka Panda (PyBullet, DIRECT mode) whose hidden physics vary by task."""

from robot_meta._registration import ENV_FAMILIES, ENV_IDS, MAX_EPISODE_STEPS
from robot_meta.envs.core import ActionMode, GoalConditionedEnv, RobotTaskEnv
from robot_meta.envs.params import (
    OBJECT_SHAPES,
    PARAM_LIMITS,
    PRIVILEGED_DIM,
    SPLITS,
    TERRAINS,
    Region,
    TaskDistribution,
    TaskParams,
    TaskSpace,
)
from robot_meta.envs.robot import PandaRobot
from robot_meta.envs.scene import Scene
from robot_meta.envs.sim import PhysicsDisconnectedError, PyBulletSim

__all__ = [
    "ENV_FAMILIES",
    "ENV_IDS",
    "MAX_EPISODE_STEPS",
    "OBJECT_SHAPES",
    "PARAM_LIMITS",
    "PRIVILEGED_DIM",
    "SPLITS",
    "TERRAINS",
    "ActionMode",
    "GoalConditionedEnv",
    "PandaRobot",
    "PhysicsDisconnectedError",
    "PyBulletSim",
    "Region",
    "RobotTaskEnv",
    "Scene",
    "TaskDistribution",
    "TaskParams",
    "TaskSpace",
]
