"""`import robot_meta` stays light and registers the four Gymnasium ids."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym

import robot_meta
import robot_meta.envs

EXPECTED_IDS = (
    "robot_meta/PandaReach-v0",
    "robot_meta/PandaPush-v0",
    "robot_meta/PandaSlide-v0",
    "robot_meta/PandaPickPlace-v0",
)

_PROBE = """
import json, sys
import robot_meta
import gymnasium as gym
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pybullet', 'pybullet_data', 'pybullet_utils'))
print(json.dumps({'heavy': heavy, 'registered': [i for i in robot_meta.ENV_IDS if i in gym.registry]}))
"""


def test_import_robot_meta_imports_neither_torch_nor_pybullet_and_registers_the_ids() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"`import robot_meta` imported {report['heavy']}"
    assert sorted(report["registered"]) == sorted(EXPECTED_IDS)


def test_env_ids_lists_the_four_families() -> None:
    assert set(robot_meta.envs.ENV_IDS) == set(EXPECTED_IDS)
    assert len(robot_meta.envs.ENV_IDS) == 4
    assert robot_meta.ENV_IDS == robot_meta.envs.ENV_IDS


def test_ids_are_registered_in_this_process_with_a_time_limit() -> None:
    for env_id in EXPECTED_IDS:
        spec = gym.spec(env_id)
        assert isinstance(spec.entry_point, str), "entry points must be strings (no import at registration)"
        assert spec.max_episode_steps == robot_meta.envs.MAX_EPISODE_STEPS


def test_register_envs_is_idempotent() -> None:
    from robot_meta._registration import register_envs

    before = {i: gym.spec(i) for i in EXPECTED_IDS}
    register_envs()
    assert {i: gym.spec(i) for i in EXPECTED_IDS} == before
