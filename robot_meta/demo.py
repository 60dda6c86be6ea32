"""`make demo`: the main job end to end on the embedded default configuration.

Until meta-training, export and the runtime land, the demo shows the premise of the package on
the slide family: for held-out tasks (the preset's test split), it tries every strike strength on
the same goal and prints which ones land the puck. The strike that succeeds changes with the
hidden friction, so a policy that cannot adapt to the task cannot solve all of them. It also
saves a rendered picture of the scene.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(out: str | Path = "demo_out", seed: int = 0, n_tasks: int = 3) -> dict[str, object]:
    """Run the demo, print a table and write ``scene.png`` under `out`; returns the results."""
    import gymnasium as gym
    import imageio.v3 as iio

    import robot_meta  # noqa: F401  (registers the env ids)
    from robot_meta.envs import RobotTaskEnv, TaskDistribution

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    env = gym.make("robot_meta/PandaSlide-v0", render_mode="rgb_array", render_size=(640, 480))
    base = env.unwrapped
    assert isinstance(base, RobotTaskEnv)
    strikes = [i for i, a in enumerate(base.actions) if a.velocity is not None]
    slide = TaskDistribution.preset("slide")
    tasks = slide.split("train").sample(n_tasks, seed) + slide.split("test").sample(n_tasks, seed + 1)
    results: list[dict[str, object]] = []
    print("robot_meta demo: which strike lands the puck? (slide: 3 train + 3 held-out test tasks, same goal)")
    print(f"{'task':<58} | " + " ".join(f"{base.actions[i].label.split()[1]:>5}" for i in strikes))
    for params in tasks:
        row = []
        for idx in strikes:
            env.reset(seed=seed, options={"task": params})
            _, _, terminated, truncated, info = env.step(idx)
            while not (terminated or truncated):
                _, _, terminated, truncated, info = env.step(0)
            success = bool(info["is_success"])
            row.append(success)
        desc = (
            f"{params.object_shape} {params.object_mass:.2f} kg, friction {params.lateral_friction:.3f}, "
            f"{params.terrain} {params.terrain_slope_deg:+.1f} deg"
        )
        print(f"{desc:<58} | " + " ".join(f"{'hit' if s else '.':>5}" for s in row))
        results.append({"task": params.to_dict(), "success_by_strike": row})
    env.reset(seed=seed, options={"task": tasks[0]})
    for _ in range(2):
        env.step(0)
    frame = base.render()
    picture = out_dir / "scene.png"
    if frame is not None:
        iio.imwrite(picture, frame)
    env.close()
    print(f"strike speeds (m/s): {[base.actions[i].label.split()[1] for i in strikes]}")
    print(f"saved a rendered picture of the scene to {picture}  ({time.perf_counter() - t0:.1f} s)")
    return {"results": results, "picture": str(picture)}
