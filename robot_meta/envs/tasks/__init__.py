"""Task families: each defines its action set, observation layout, reset, reward and success."""

from robot_meta.envs.tasks.base import DiscreteAction, StepResult, Task
from robot_meta.envs.tasks.pick_place import PickPlaceTask
from robot_meta.envs.tasks.push import PushTask
from robot_meta.envs.tasks.reach import ReachTask
from robot_meta.envs.tasks.slide import SlideTask

__all__ = [
    "TASK_FAMILIES",
    "DiscreteAction",
    "PickPlaceTask",
    "PushTask",
    "ReachTask",
    "SlideTask",
    "StepResult",
    "Task",
]

TASK_FAMILIES: dict[str, type[Task]] = {
    "reach": ReachTask,
    "push": PushTask,
    "slide": SlideTask,
    "pick_place": PickPlaceTask,
}
