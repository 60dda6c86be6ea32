"""Former home of the K-shot evaluation, kept as an import path: everything lives in `robot_meta.meta.eval`.

Code written against ``robot_meta.meta.evaluation`` (scripts, notebooks, the benchmarks) keeps
working; new code imports `robot_meta.meta.eval`. Nothing is defined here.
"""

from __future__ import annotations

from robot_meta.meta.dqn import InnerDQN
from robot_meta.meta.eval import *  # noqa: F403
from robot_meta.meta.eval import __all__ as _eval_all

__all__ = [*_eval_all, "InnerDQN"]
