"""The data of a report: a run's TensorBoard scalars and a before/after adaptation rollout."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robot_meta.report.names import EXPORT_SUBDIR, ReportError


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
    tried: int = 0
    """Held-out tasks tried (before, one shot, after) to choose the one shown."""
    solved_before: int = 0
    """How many of them the policy solved before adaptation."""
    solved_after: int = 0
    """How many of them it solved after one shot."""
    chosen: int = 0
    """Index (from 0) of the task shown among those tried."""
    source: str = ""
    """What acted: ``checkpoint`` (torch, the run's adapter), ``export`` (the on-device runtime) or
    ``strike-planner`` (the saved planner, numpy)."""


#: How the task shown is chosen among those tried (the report states it).
TASK_RULE = (
    "the first of the tried tasks that the policy fails before adaptation and solves after one shot; "
    "if there is none, the first it solves after the shot; if there is none, the first task"
)


def _episode(
    env: Any,
    task: Any,
    seed: int | None,
    act: Any,
    frames: list[np.ndarray] | None,
    every: int,
    bar: Any,
    on_step: Any = None,
) -> tuple[int, float, bool]:
    """One episode; ``(length, return, success)``. `on_step(obs, a, r, next_obs, terminated)` after each step."""
    obs, _ = env.reset(seed=seed, options={"task": task})
    if frames is not None:
        frames.append(env.render())
    ret, success, t = 0.0, False, 0
    while True:
        a = int(act(obs))
        next_obs, reward, terminated, truncated, info = env.step(a)
        if on_step is not None:
            on_step(obs, a, float(reward), next_obs, bool(terminated))
        ret += float(reward)
        success = bool(info.get("is_success", False))
        t += 1
        if frames is not None and (t % every == 0 or terminated or truncated):
            frames.append(env.render())
        bar.update(1)
        obs = next_obs
        if terminated or truncated:
            return t, ret, success


def _subject(run_dir: Path) -> tuple[str, str, Any, Any, str]:
    """``(method name, env id, adapter, task distribution, source)`` of a run: its checkpoint's adapter
    (torch) if it has one, else the on-device runtime of its ``export/`` directory; a saved strike
    planner acts by itself (numpy)."""
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.checkpoint import CHECKPOINT_FILE
    from robot_meta.runtime.strike import StrikePlanner, is_strike_planner_dir

    if is_strike_planner_dir(run_dir):
        from robot_meta.meta.eval.adapters import StrikeAdapter

        planner = StrikePlanner.load(run_dir)
        adapter: Any = StrikeAdapter(planner)
        dist_info, preset = planner.train_distribution, None
        name, env_id, source = "strike-planner", planner.env_id, "strike-planner"
    elif (run_dir / CHECKPOINT_FILE).is_file():
        from robot_meta.meta import load_run
        from robot_meta.meta.eval import methods_for_run

        run = load_run(run_dir)
        methods = methods_for_run(run)
        method = next((m for m in methods if m.name.endswith("-head")), methods[0])
        dist_info, preset = run.info.get("task_distribution"), run.config.preset
        name, env_id, adapter, source = method.name, run.config.env_id, method.adapter(0), "checkpoint"
    elif (run_dir / EXPORT_SUBDIR / "manifest.json").is_file():
        from robot_meta.meta.eval.adapters import ExportAdapter

        export = ExportAdapter.load(run_dir / EXPORT_SUBDIR)
        adapter, manifest = export, export.policy.manifest
        dist_info, preset = manifest.train_distribution, None
        name, env_id, source = f"{manifest.algo}-export", manifest.env_id, "export"
    else:
        raise ReportError(
            f"{run_dir} has neither a checkpoint nor an {EXPORT_SUBDIR}/ directory to act with: train the run first"
        )
    try:
        dist = TaskDistribution.from_dict(dist_info) if dist_info else TaskDistribution.preset(str(preset))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"cannot rebuild the task distribution of {run_dir} ({exc}); retrain the run"
        ) from exc
    return name, env_id, adapter, dist, source


def record_adaptation(
    run_dir: str | Path,
    *,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    frame_every: int = 2,
    tasks: int = 8,
    progress: bool | None = None,
) -> AdaptationRollout:
    """Roll out the run's policy on held-out test tasks before and after one shot of adaptation.

    For each of `tasks` test-split tasks (drawn with `seed`): before = the meta-policy, greedy; shot =
    one episode with the policy's own exploration, observed step by step by the run's adapter
    (`robot_meta.meta.eval.methods_for_run`; for reptile the head rule ``reptile-head``, the one that
    runs on the device; a run without a checkpoint acts through the runtime of its ``export/``), then
    ``adapt()``; after = the adapted policy, greedy, from the same start state as before. The task
    shown is chosen by `TASK_RULE`, and is replayed (same seeds, bitwise the same episodes) with
    frames every `frame_every` control steps.
    """
    import gymnasium as gym
    import torch

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.meta.work import task_to_dict

    if tasks < 1:
        raise ValueError(f"tasks={tasks}: need at least one task to show")
    run = Path(run_dir)
    name, env_id, adapter, dist, source = _subject(run)
    candidates = dist.split("test").sample(tasks, np.random.default_rng([seed, 0x61F]))
    env = gym.make(env_id, action_mode="discrete", render_mode="rgb_array", render_size=size)
    show = sys.stderr.isatty() if progress is None else progress
    limit = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else 50

    def trial(i: int, bar: Any, out: AdaptationRollout | None) -> tuple[bool, bool]:
        rng = np.random.default_rng([seed, 0x61F, i])
        before_seed, shot_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        adapter.begin(candidates[i], rng)
        frames = (out.before_frames, out.after_frames) if out is not None else (None, None)
        _, r0, s0 = _episode(
            env, candidates[i], before_seed, lambda o: adapter.act(o, True), frames[0], frame_every, bar
        )
        n, _, _ = _episode(
            env,
            candidates[i],
            shot_seed,
            lambda o: adapter.act(o, False),
            None,
            frame_every,
            bar,
            adapter.observe,
        )
        adapter.adapt()
        _, r1, s1 = _episode(
            env, candidates[i], before_seed, lambda o: adapter.act(o, True), frames[1], frame_every, bar
        )
        if out is not None:
            out.before_return, out.before_success, out.after_return, out.after_success = r0, s0, r1, s1
            out.shot_transitions = n
        return s0, s1

    try:
        with (
            torch.inference_mode(False),
            tqdm(
                total=3 * limit * (tasks + 1),
                desc="adaptation gif",
                unit="step",
                disable=not show,
                leave=False,
            ) as bar,
        ):
            outcomes = [trial(i, bar, None) for i in range(tasks)]
            chosen = next(
                (i for i, (b, a) in enumerate(outcomes) if a and not b),
                next((i for i, (_, a) in enumerate(outcomes) if a), 0),
            )
            out = AdaptationRollout(name, task_to_dict(candidates[chosen]))
            trial(chosen, bar, out)
    finally:
        env.close()
    out.tried, out.chosen, out.source = tasks, chosen, source
    out.solved_before = sum(b for b, _ in outcomes)
    out.solved_after = sum(a for _, a in outcomes)
    return out


# -- figures ------------------------------------------------------------------------------------------
