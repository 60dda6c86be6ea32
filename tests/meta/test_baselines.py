"""SB3 DQN baselines of the K-shot protocol on the toy family: training dirs, resume/skip, budgets."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from toy_env import ToyEnv, ToyTasks

from robot_meta.meta.baselines import (
    ObsStats,
    SB3DQNConfig,
    load_baseline,
    load_sb3_dqn,
    observation_stats,
    train_policy_baseline,
)
from robot_meta.meta.eval import run_methods
from robot_meta.meta.eval.baseline_methods import ScratchMethod, finetune_method, policy_method

CFG = SB3DQNConfig(
    hidden=(32, 32),
    learning_starts=100,
    exploration_steps=300,
    target_update_interval=100,
    obs_stats_steps=100,
)


def _sb3_tmp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("SB3-*")}


class _Interrupt(gym.Wrapper[Any, Any, Any, Any]):
    """Raises after `limit` steps (a killed training process)."""

    def __init__(self, env: gym.Env, limit: int) -> None:
        super().__init__(env)
        self.limit, self.count = limit, 0

    def step(self, action: Any) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise KeyboardInterrupt
        return self.env.step(action)


def _train(out: Path, env: gym.Env, steps: int = 400) -> Path:
    return train_policy_baseline(
        "domain-rand",
        out,
        env_id="toy",
        preset="toy",
        steps=steps,
        seed=0,
        config=CFG,
        checkpoint_every=200,
        env=env,
    )


def test_policy_baseline_trains_resumes_and_skips(tmp_path: Path) -> None:
    before_tmp = _sb3_tmp_dirs()
    out = tmp_path / "dr"
    with pytest.raises(KeyboardInterrupt):
        # 100 statistics steps, then 300 training steps: killed after the 200-step checkpoint
        _train(out, _Interrupt(gym.wrappers.TimeLimit(ToyEnv(), 20), limit=400))
    info = json.loads((out / "baseline.json").read_text())
    assert not info["done"] and (out / "checkpoint.zip").is_file() and not (out / "model.zip").exists()
    path = _train(out, gym.wrappers.TimeLimit(ToyEnv(), 20))  # resumes from the 200-step checkpoint
    info = json.loads((out / "baseline.json").read_text())
    assert info["done"] and info["env_steps"] == 400 and path == out / "model.zip"
    assert not (out / "checkpoint.zip").exists() and not (out / "replay_buffer.pkl").exists()
    stamp = path.stat().st_mtime_ns
    assert _train(out, ToyEnv()).stat().st_mtime_ns == stamp  # complete: skipped
    with pytest.raises(ValueError, match="use another directory"):
        _train(out, ToyEnv(), steps=500)
    assert load_sb3_dqn(path).num_timesteps == 400
    assert _sb3_tmp_dirs() == before_tmp  # SB3 wrote no logger directories


def test_scratch_budgets_and_fixed_policies(tmp_path: Path) -> None:
    net = load_baseline(_train(tmp_path / "dr", gym.wrappers.TimeLimit(ToyEnv(), 20), steps=300).parent)
    stats = observation_stats(gym.wrappers.TimeLimit(ToyEnv(), 20), 200, seed=0)
    methods = [
        policy_method("domain-rand", lambda _s: net, ToyEnv),
        finetune_method(lambda _s: net, ToyEnv),
        ScratchMethod(ToyEnv, episode_steps=20, multipliers=(1, 10), config=CFG, obs_stats=stats),
    ]
    res = run_methods(
        methods, ToyTasks(), shots=(0, 1, 2), episodes=2, seeds=(0,), num_tasks=2, progress=False
    )
    assert list(res) == ["domain-rand", "finetune", "scratch", "scratch-10x"]
    # scratch: m x K x episode_steps transitions, K = 0 is the untrained network for every multiplier
    for name, m in (("scratch", 1), ("scratch-10x", 10)):
        assert {k: s.target_transitions for k, s in res[name].per_k.items()} == {0: 0, 1: 20 * m, 2: 40 * m}
    assert res["scratch"].per_k[0].success == res["scratch-10x"].per_k[0].success
    assert res["scratch"].per_k[0].ret == res["scratch-10x"].per_k[0].ret
    # no adaptation: identical numbers for every K and 0 target transitions
    dr = res["domain-rand"].per_k
    assert dr[0].ret == dr[1].ret == dr[2].ret and {s.target_transitions for s in dr.values()} == {0}
    # fine-tuning starts from the same policy (K = 0 equal) and sees the shots
    ft = res["finetune"].per_k
    assert ft[0].ret == pytest.approx(dr[0].ret) and 0 < ft[1].target_transitions < ft[2].target_transitions


def test_observation_stats_normalise_and_pass_constant_dimensions_through(tmp_path: Path) -> None:
    stats = observation_stats(gym.wrappers.TimeLimit(ToyEnv(), 20), 400, seed=1)
    assert len(stats.mean) == 3 and all(s > 0.01 for s in stats.std)
    const = ObsStats.from_dict({"mean": [0.0, 0.0], "std": [1.0, 0.5]})
    assert const.apply([1.0, 1.0]).tolist() == [1.0, 2.0]
    # the stored normaliser sits in front of the SB3 Q-network: same Q as normalising by hand
    path = _train(tmp_path / "dr", gym.wrappers.TimeLimit(ToyEnv(), 20), steps=200)
    info = json.loads((path.parent / "baseline.json").read_text())
    st = ObsStats.from_dict(info["obs_stats"])
    model, net = load_sb3_dqn(path), load_baseline(path.parent)
    obs = torch.tensor([[0.1, 0.4, 0.3]])
    expected = model.q_net(torch.from_numpy(st.apply(obs.numpy())))
    assert torch.allclose(net(obs), expected)


def test_bad_baseline_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown baseline 'ppo'"):
        train_policy_baseline("ppo", tmp_path, env_id="toy", preset="toy", steps=10, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_policy_baseline("oracle", tmp_path, env_id="toy", preset="toy", steps=0, seed=0)
