"""robot_meta: meta-train manipulator policies in PyBullet, export to ONNX, adapt on the device.

Importing the package registers the Gymnasium ids (``robot_meta/PandaPush-v0`` …) and imports
neither torch nor pybullet, so the on-device runtime (`robot_meta.runtime`) loads without them.
"""

from robot_meta._registration import ENV_IDS, register_envs

__all__ = ["ENV_IDS", "__version__"]
__version__ = "0.1.0"

register_envs()
