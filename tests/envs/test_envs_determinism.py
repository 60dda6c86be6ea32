"""Seeded rollouts are bitwise reproducible: across processes, within a process, across env instances."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from envs_helpers import PICK, PUSH, REACH, SLIDE, make_env, rollout

from robot_meta.envs import ENV_IDS

#: (name, env id, gym.make kwargs): the distribution-driven one covers task sampling too.
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("push_dist", PUSH, {"distribution": "push"}),
    ("all_dist_slide", SLIDE, {"distribution": "manipulation-all", "action_mode": "continuous"}),
    ("pick_cont", PICK, {"action_mode": "continuous"}),
    ("reach", REACH, {"distribution": "reach"}),
]
N_STEPS = 120  # crosses at least two 50-step episodes

_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import gymnasium as gym
    import numpy as np
    import robot_meta

    out = Path(sys.argv[1])
    seed = int(sys.argv[2])
    configs = {configs!r}
    for name, env_id, kwargs in configs:
        env = gym.make(env_id, **kwargs)
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        observations, rewards, tasks = [obs], [], [info["task"].to_vector()]
        for _ in range({n_steps}):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            observations.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                obs, info = env.reset()
                observations.append(obs)
                tasks.append(info["task"].to_vector())
        env.close()
        np.save(out / f"{{name}}_obs.npy", np.asarray(observations))
        np.save(out / f"{{name}}_rew.npy", np.asarray(rewards, dtype=np.float64))
        np.save(out / f"{{name}}_task.npy", np.asarray(tasks))
    """
)


def _run_processes(tmp_path: Path, seeds: list[int]) -> list[Path]:
    script = _SCRIPT.format(configs=CONFIGS, n_steps=N_STEPS)
    dirs, procs = [], []
    for i, seed in enumerate(seeds):
        d = tmp_path / f"proc{i}"
        d.mkdir()
        dirs.append(d)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(d), str(seed)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return dirs


def test_two_fresh_processes_with_the_same_seed_give_bitwise_identical_rollouts(tmp_path: Path) -> None:
    a, b, c = _run_processes(tmp_path, [7, 7, 8])
    for name, _, _ in CONFIGS:
        for kind in ("obs", "rew", "task"):
            x, y, z = (np.load(d / f"{name}_{kind}.npy") for d in (a, b, c))
            assert x.shape == y.shape
            assert np.array_equal(x, y), f"{name} {kind}: same seed, different processes, different data"
            assert x.dtype in (np.float32, np.float64)
            if kind != "task" or "dist" in name or name == "reach":
                assert not np.array_equal(x, z[: len(x)]) or x.shape != z.shape, (
                    f"{name} {kind}: seed ignored"
                )
        tasks = np.load(a / f"{name}_task.npy")
        if "dist" in name:
            assert len({t.tobytes() for t in tasks}) == len(tasks) >= 3, "a new task per episode"


@pytest.mark.parametrize(("name", "env_id", "kwargs"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_two_env_instances_in_one_process_with_the_same_seed_agree(
    name: str, env_id: str, kwargs: dict[str, Any]
) -> None:
    with make_env(env_id, **kwargs) as env:
        obs_a, rew_a = rollout(env, seed=3, n_steps=N_STEPS)
    with make_env(env_id, **kwargs) as env:
        obs_b, rew_b = rollout(env, seed=3, n_steps=N_STEPS)
    assert np.array_equal(obs_a, obs_b)
    assert np.array_equal(rew_a, rew_b)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action_mode", ["discrete", "continuous"])
def test_reset_with_the_same_seed_replays_the_episode_bitwise(env_id: str, action_mode: str) -> None:
    """Gymnasium's contract: `reset(seed=s)` then the same actions give the same episode, whatever ran before.

    The first episode of a fresh env, a replay right after it (the case `check_env` tests) and a
    replay after an episode of another seed must all be bitwise identical.
    """
    with make_env(env_id, action_mode=action_mode) as env:
        runs = []
        for warmup_seed in (None, None, 11):
            if warmup_seed is not None:  # play a different episode first
                rollout(env, seed=warmup_seed, n_steps=15)
            runs.append(rollout(env, seed=5, n_steps=20, action_seed=99))
    for k, (obs, rew) in enumerate(runs[1:], start=1):
        diff = float(np.abs(obs - runs[0][0]).max()) if obs.shape == runs[0][0].shape else float("inf")
        assert np.array_equal(obs, runs[0][0]), f"replay {k} of seed 5 differs by up to {diff:.3g}"
        assert np.array_equal(rew, runs[0][1])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_different_seeds_give_different_rollouts(env_id: str) -> None:
    with make_env(env_id) as env:
        obs_a, rew_a = rollout(env, seed=1, n_steps=10)
    with make_env(env_id) as env:
        obs_b, rew_b = rollout(env, seed=2, n_steps=10)
    assert not np.array_equal(obs_a[0], obs_b[0]), "the initial state ignores the seed"
    assert not np.array_equal(rew_a, rew_b)


def test_distribution_task_sequence_depends_on_the_seed_only() -> None:
    def tasks(seed: int) -> list[Any]:
        with make_env(PUSH, distribution="manipulation-all") as env:
            return [env.reset(seed=seed)[1]["task"]] + [env.reset()[1]["task"] for _ in range(5)]

    assert tasks(4) == tasks(4)
    assert tasks(4) != tasks(5)


def _stepper(env: gym.Env[np.ndarray, Any], seed: int) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    return [obs], []


def test_envs_in_one_process_do_not_interfere() -> None:
    """Two (and three) envs stepped interleaved give the trajectories each gives alone."""
    specs: list[tuple[str, dict[str, Any], int]] = [
        (PUSH, {"distribution": "push"}, 0),
        (PUSH, {"distribution": "push"}, 1),
        (SLIDE, {"action_mode": "continuous"}, 2),
    ]
    n = 70
    alone = []
    for env_id, kwargs, seed in specs:
        with make_env(env_id, **kwargs) as env:
            alone.append(rollout(env, seed=seed, n_steps=n))

    envs = [gym.make(env_id, **kwargs) for env_id, kwargs, _ in specs]
    clients = {env.unwrapped.sim.client for env in envs}  # type: ignore[attr-defined]
    try:
        logs = [_stepper(env, seed) for env, (_, _, seed) in zip(envs, specs, strict=True)]
        for _ in range(n):
            for env, (observations, rewards) in zip(envs, logs, strict=True):
                obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                observations.append(obs)
                rewards.append(float(reward))
                if terminated or truncated:
                    observations.append(env.reset()[0])
    finally:
        for env in envs:
            env.close()
    for (obs_alone, rew_alone), (observations, rewards) in zip(alone, logs, strict=True):
        assert np.array_equal(obs_alone, np.asarray(observations))
        assert np.array_equal(rew_alone, np.asarray(rewards))
    assert len(clients) == 3, "each env owns its own physics client"


def test_closing_one_env_leaves_another_running() -> None:
    with make_env(PUSH) as keep:
        keep.reset(seed=0)
        other = gym.make(PUSH)
        other.reset(seed=0)
        other.close()
        for _ in range(5):
            obs, *_ = keep.step(1)
        assert np.isfinite(obs).all()


def test_the_strike_pseudo_inverse_is_bitwise_numpys() -> None:
    """`_pinv` (the slide strike's hot path, numpy's LAPACK gufunc called directly) equals np.linalg.pinv."""
    from robot_meta.envs.robot import _pinv, _svd

    rng = np.random.default_rng(0)
    for _ in range(200):
        jac = rng.normal(size=(3, 9))[:, :7] * 10.0 ** rng.uniform(-3, 1)  # a strided view, as the env's
        assert _pinv(jac).tobytes() == np.linalg.pinv(jac).tobytes()
    rank_deficient = np.zeros((3, 7))
    rank_deficient[0, 0] = 1.0
    assert _pinv(rank_deficient).tobytes() == np.linalg.pinv(rank_deficient).tobytes()
    bad = np.full((3, 7), np.nan)
    with pytest.raises(np.linalg.LinAlgError), np.errstate(invalid="ignore"):
        _svd(bad)
