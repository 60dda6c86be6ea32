"""The data of a report: a run's TensorBoard scalars and a before/after adaptation rollout."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robot_meta.report.names import ReportError


def read_scalars(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every TensorBoard scalar of ``RUN/tensorboard``: ``{tag: (steps, values)}`` (last write per step wins)."""
    from robot_meta.meta.checkpoint import TENSORBOARD_DIR

    tb = Path(run_dir) / TENSORBOARD_DIR
    if not tb.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for events in sorted(tb.glob("events.out.tfevents.*")):  # resumed runs have several files
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                series.setdefault(tag, {})[int(ev.step)] = float(ev.value)
    return {
        tag: (np.array(sorted(points)), np.array([points[s] for s in sorted(points)]))
        for tag, points in sorted(series.items())
    }


@dataclass
class AdaptationRollout:
    """The before/after episodes of `record_adaptation` (frames are ``(H, W, 3)`` uint8)."""

    method: str
    task: dict[str, Any]
    before_frames: list[np.ndarray] = field(default_factory=list)
    after_frames: list[np.ndarray] = field(default_factory=list)
    before_return: float = 0.0
    after_return: float = 0.0
    before_success: bool = False
    after_success: bool = False
    shot_transitions: int = 0


def _episode(
    env: Any, task: Any, seed: int | None, act: Any, frames: list[np.ndarray] | None, every: int, bar: Any
) -> tuple[list[tuple[np.ndarray, int, float, np.ndarray, bool]], float, bool]:
    obs, _ = env.reset(seed=seed, options={"task": task})
    if frames is not None:
        frames.append(env.render())
    steps: list[tuple[np.ndarray, int, float, np.ndarray, bool]] = []
    ret, success, t = 0.0, False, 0
    while True:
        a = int(act(obs))
        next_obs, reward, terminated, truncated, info = env.step(a)
        steps.append((obs, a, float(reward), next_obs, bool(terminated)))
        ret += float(reward)
        success = bool(info.get("is_success", False))
        t += 1
        if frames is not None and (t % every == 0 or terminated or truncated):
            frames.append(env.render())
        bar.update(1)
        obs = next_obs
        if terminated or truncated:
            return steps, ret, success


def record_adaptation(
    run_dir: str | Path,
    *,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    frame_every: int = 2,
    progress: bool | None = None,
) -> AdaptationRollout:
    """Roll out the run's policy on a held-out test task before and after one shot of adaptation.

    Before: the meta-policy, greedy. Shot: one episode with the policy's own exploration, observed by
    the run's adapter (`robot_meta.meta.eval.methods_for_run`; for reptile the head rule
    ``reptile-head``, the one that runs on the device), then ``adapt()``. After: the adapted policy,
    greedy, from the same start state as before. Frames every `frame_every` control steps.
    """
    import gymnasium as gym
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta import load_run
    from robot_meta.meta.eval import methods_for_run
    from robot_meta.meta.work import task_to_dict

    run = load_run(run_dir)
    methods = methods_for_run(run)
    method = next((m for m in methods if m.name.endswith("-head")), methods[0])
    dist_info = run.info.get("task_distribution")
    try:
        dist = (
            TaskDistribution.from_dict(dist_info) if dist_info else TaskDistribution.preset(run.config.preset)
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"cannot rebuild the task distribution of {run_dir} ({exc}); retrain the run"
        ) from exc
    rng = np.random.default_rng([seed, 0x61F])
    task = dist.split("test").sample(1, rng)[0]
    env = gym.make(run.config.env_id, action_mode="discrete", render_mode="rgb_array", render_size=size)
    adapter = method.adapter(seed)
    adapter.begin(task, rng)
    out = AdaptationRollout(method.name, task_to_dict(task))
    before_seed, shot_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    show = sys.stderr.isatty() if progress is None else progress
    limit = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else 50
    try:
        with (
            torch.inference_mode(False),
            tqdm(total=3 * limit, desc="adaptation gif", unit="step", disable=not show, leave=False) as bar,
        ):
            _, out.before_return, out.before_success = _episode(
                env, task, before_seed, lambda o: adapter.act(o, True), out.before_frames, frame_every, bar
            )
            shot, _, _ = _episode(
                env, task, shot_seed, lambda o: adapter.act(o, False), None, frame_every, bar
            )
            for step in shot:
                adapter.observe(*step)
            adapter.adapt()
            out.shot_transitions = len(shot)
            _, out.after_return, out.after_success = _episode(
                env, task, before_seed, lambda o: adapter.act(o, True), out.after_frames, frame_every, bar
            )
    finally:
        env.close()
    return out


# -- figures ------------------------------------------------------------------------------------------
