"""Do the hidden task parameters change what the best action is? ("the tasks must reward adaptation")

For each task family the script measures, with fixed seeds so that start states and goals are
identical across tasks:

* **slide** -- the travel of the puck for every strike action on tasks of different friction,
  mass, slope and shape (the same strike on different tasks lands in different places); the best
  strike per goal distance as a function of the hidden parameters; and a transfer matrix: a
  scripted striker *tuned* on task A (its calibration table of travel per strike, found by trying
  all strikes on A) plays the strike whose A-travel is closest to the goal distance, on every task B.
* **push** -- one recorded action sequence (approach, four coarse pushes, wait) replayed on
  tasks of different friction, mass, shape and slope; and a transfer matrix of a scripted one-axis
  pusher whose two knobs (where it switches from coarse to fine moves, where it stops) are tuned
  by grid search on task A, evaluated on task B (goals ahead of the object along +x).
* **reach** -- the tool tip position at the same end-effector pose for tools of different shape and
  size, and a transfer matrix of a reacher tuned (by search over the tool-length offset) on one tool.
* **pick_place** -- one recorded grasp-and-lift sequence replayed on objects of different mass,
  friction and shape: how high the object ends up.

    .venv/bin/python benchmarks/adaptation_effect.py            # full (~3-4 min on 2 busy cores)
    .venv/bin/python benchmarks/adaptation_effect.py --quick    # smoke test (< 1 min)

Full runs write ``benchmarks/results/adaptation_effect.json`` and the ``adaptation_effect``
section of BENCHMARKS.md; ``--quick`` writes ``adaptation_effect_quick.json`` only.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from common import command_line, markdown_table, now_utc, update_markdown_section, write_results
from gymnasium.utils import seeding

log = logging.getLogger("adaptation_effect")


@dataclass(frozen=True)
class Budget:
    """How many seeds each experiment uses (full vs --quick)."""

    slide_calib_seeds: int
    slide_eval_seeds: int
    slide_transfer_tasks: tuple[str, ...]
    slide_table_tasks: tuple[str, ...]
    headroom_seeds: tuple[int, ...]
    """Evaluation seeds of the K-shot benchmark whose held-out slide tasks the headroom check uses."""
    headroom_tasks: int
    headroom_eval_seeds: int
    push_sequence_seeds: int
    push_tune_seeds: int
    push_eval_seeds: int
    push_grid: tuple[tuple[float, float], ...]
    reach_tune_seeds: int
    reach_eval_seeds: int
    pick_seeds: int


_PUSH_GRID_FULL = tuple(itertools.product((0.0, 0.05, 0.1, 1.0), (0.0, 0.03)))
FULL = Budget(
    slide_calib_seeds=3,
    slide_eval_seeds=20,
    slide_transfer_tasks=("mu=0.05", "mu=0.1", "mu=0.2", "mass=2.0", "slope=+2", "cube"),
    slide_table_tasks=(
        "mu=0.025",
        "mu=0.05",
        "mu=0.08",
        "mu=0.1",
        "mu=0.14",
        "mu=0.2",
        "mu=0.25",
        "mass=0.1",
        "mass=2.0",
        "mass=4.0",
        "slope=+2",
        "slope=-2",
        "cube",
        "cuboid",
        "capsule",
    ),
    headroom_seeds=(0, 1, 2),
    headroom_tasks=8,
    headroom_eval_seeds=10,
    push_sequence_seeds=6,
    push_tune_seeds=10,
    push_eval_seeds=20,
    push_grid=_PUSH_GRID_FULL,
    reach_tune_seeds=5,
    reach_eval_seeds=20,
    pick_seeds=4,
)
QUICK = Budget(
    slide_calib_seeds=1,
    slide_eval_seeds=4,
    slide_transfer_tasks=("mu=0.05", "mu=0.1", "mu=0.2", "mass=2.0"),
    slide_table_tasks=("mu=0.05", "mu=0.1", "mu=0.2", "mass=0.1", "mass=2.0"),
    headroom_seeds=(0,),
    headroom_tasks=2,
    headroom_eval_seeds=2,
    push_sequence_seeds=2,
    push_tune_seeds=3,
    push_eval_seeds=4,
    push_grid=((0.0, 0.0), (0.1, 0.0), (1.0, 0.0)),
    reach_tune_seeds=2,
    reach_eval_seeds=4,
    pick_seeds=2,
)


def _task_params() -> Any:
    from robot_meta.envs import TaskParams

    return TaskParams


def obs_slices(u: Any) -> dict[str, slice]:
    """Observation segment name -> slice, from the env's `observation_layout`."""
    out, i = {}, 0
    for name, n in u.observation_layout:
        out[name] = slice(i, i + n)
        i += n
    return out


def reset_draws_of_seed(env: gym.Env[Any, Any], seed: int, task: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Reset to the start state and goal of ``reset(seed=seed)`` without its world rebuild.

    A seeded reset of a used env rebuilds the PyBullet world (~0.1 s) so that the episode replays
    bitwise; the large evaluation sweeps only need the same start state and goal, so they set the
    env's RNG exactly as ``reset(seed=seed)`` would (Gymnasium's ``seeding.np_random``) and reset
    unseeded. The few experiments that compare one action sequence across tasks use real seeded
    resets.
    """
    env.unwrapped.np_random = seeding.np_random(seed)[0]
    obs, info = env.reset(options={"task": task})
    return np.asarray(obs), info


def action_index(u: Any) -> dict[str, int]:
    return {a.label: i for i, a in enumerate(u.actions)}


def fmt_pct(x: float) -> str:
    return f"{100 * x:.0f} %"


# ---------------------------------------------------------------------------------------------
# slide
# ---------------------------------------------------------------------------------------------
def slide_tasks() -> dict[str, Any]:
    tp = _task_params()
    base = tp(object_mass=0.3, object_shape="cylinder", object_size=0.06, lateral_friction=0.1)
    tasks = {
        f"mu={mu:g}": base.replace(lateral_friction=mu) for mu in (0.025, 0.05, 0.08, 0.1, 0.14, 0.2, 0.25)
    }
    tasks.update({f"mass={m}": base.replace(object_mass=m) for m in (0.1, 2.0, 4.0)})
    tasks["slope=+2"] = base.replace(terrain="tilted", terrain_slope_deg=2.0)
    tasks["slope=-2"] = base.replace(terrain="tilted", terrain_slope_deg=-2.0)
    for shape in ("cube", "cuboid", "capsule"):
        tasks[shape] = base.replace(object_shape=shape)
    return tasks


SLIDE_NOMINAL = "mu=0.1"  # cylinder 6 cm, 0.3 kg, friction 0.1, flat (the preset's nominal task)
SLIDE_FIXED_STRIKE = 0.9  # m/s
SLIDE_GOAL_DISTANCES = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60)


def slide_travel(
    u: Any, task: Any, strike: int, stay: int, seed: int, max_steps: int = 100
) -> tuple[float, str]:
    """Play one strike then hold; returns the puck's travel along x and how the run ended.

    Runs on the unwrapped env (past the 50-step limit) until the puck is at rest, falls off or
    the episode succeeds; the outcome is ``rest``, ``success``, ``fell`` or ``moving``.
    """
    reset_draws_of_seed(u, seed, task)
    p0 = u.scene.object_state()[0]
    action, still, outcome = strike, 0, "moving"
    pos = p0
    for k in range(max_steps):
        _, _, terminated, _, info = u.step(action)
        action = stay
        pos, _, lin, _ = u.scene.object_state()
        if terminated:
            outcome = "success" if info["is_success"] else "fell"
            break
        still = still + 1 if k >= 2 and float(np.linalg.norm(lin)) < 0.003 else 0
        if still >= 3:
            outcome = "rest"
            break
    return float(pos[0] - p0[0]), outcome


def slide_calibrate(
    u: Any, task: Any, strikes: Sequence[tuple[int, float]], stay: int, seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """Travel of every strike on `task` (mean over `seeds`, fall-offs counted)."""
    rows = []
    for idx, speed in strikes:
        runs = [slide_travel(u, task, idx, stay, s) for s in seeds]
        travels = [t for t, o in runs if o != "fell"]
        rows.append(
            {
                "strike_mps": speed,
                "action": idx,
                "travel_m": float(np.mean(travels)) if travels else None,
                "travel_min_m": float(min(t for t, _ in runs)),
                "travel_max_m": float(max(t for t, _ in runs)),
                "fell": sum(o == "fell" for _, o in runs),
                "still_moving": sum(o == "moving" for _, o in runs),
                "runs": len(runs),
            }
        )
    return rows


def best_strike(table: list[dict[str, Any]], distance: float) -> tuple[dict[str, Any] | None, float]:
    """The strike whose calibrated travel is closest to `distance` (strikes that fell off excluded)."""
    ok = [r for r in table if r["travel_m"] is not None and r["fell"] == 0]
    if not ok:
        return None, float("inf")
    row = min(ok, key=lambda r: abs(r["travel_m"] - distance))
    return row, abs(row["travel_m"] - distance)


def strike_for(table: list[dict[str, Any]], distance: float, fallback: int) -> int:
    """The action of `best_strike` in `table` for `distance` (`fallback` when no strike stays on the table)."""
    row, _ = best_strike(table, distance)
    return fallback if row is None else int(row["action"])


def strike_and_hold(env: gym.Env[Any, Any], action: int, stay: int) -> bool:
    """Play `action` once, then `stay` until the episode ends; whether it succeeded."""
    a = action
    while True:
        _, _, terminated, truncated, info = env.step(a)
        a = stay
        if terminated or truncated:
            return bool(info["is_success"])


def run_slide(b: Budget) -> tuple[dict[str, Any], str]:
    env = gym.make("robot_meta/PandaSlide-v0")
    u: Any = env.unwrapped
    acts = action_index(u)
    stay = acts["stay"]
    strikes = [(i, float(a.velocity[0])) for i, a in enumerate(u.actions) if a.velocity is not None]
    threshold = float(u.task.distance_threshold)
    sl = obs_slices(u)
    tasks = slide_tasks()
    calib_seeds = list(range(b.slide_calib_seeds))
    needed = list(dict.fromkeys([*b.slide_table_tasks, *b.slide_transfer_tasks, SLIDE_NOMINAL]))

    t0 = time.perf_counter()
    calib = {name: slide_calibrate(u, tasks[name], strikes, stay, calib_seeds) for name in needed}
    log.info(
        "slide: calibrated %d tasks x %d strikes in %.0f s",
        len(needed),
        len(strikes),
        time.perf_counter() - t0,
    )

    # 1. one fixed strike on every task
    fixed = []
    nominal_fixed = next(r for r in calib[SLIDE_NOMINAL] if abs(r["strike_mps"] - SLIDE_FIXED_STRIKE) < 1e-9)
    for name in needed:
        r = next(r for r in calib[name] if abs(r["strike_mps"] - SLIDE_FIXED_STRIKE) < 1e-9)
        fixed.append(
            {
                "task": name,
                "params": tasks[name].to_dict(),
                "travel_m": r["travel_m"],
                "travel_min_m": r["travel_min_m"],
                "travel_max_m": r["travel_max_m"],
                "fell": r["fell"],
                "runs": r["runs"],
                "minus_nominal_m": (
                    None
                    if r["travel_m"] is None or nominal_fixed["travel_m"] is None
                    else r["travel_m"] - nominal_fixed["travel_m"]
                ),
            }
        )

    # 2. best strike per goal distance, per task
    best_rows: dict[str, dict[str, dict[str, Any]]] = {}
    for name in needed:
        best_rows[name] = {}
        for d in SLIDE_GOAL_DISTANCES:
            row, miss = best_strike(calib[name], d)
            best_rows[name][f"{d:.2f}"] = {
                "strike_mps": None if row is None else row["strike_mps"],
                "predicted_miss_m": None if row is None else miss,
                "lands": row is not None and miss < threshold,
            }

    # 3. transfer: tuned on A, evaluated on B (real env, 50-step limit, success as the env defines it)
    cache: dict[tuple[str, int, int], bool] = {}

    def episode(task_name: str, seed: int, tuned_on: str) -> bool:
        obs, _ = reset_draws_of_seed(env, seed, tasks[task_name])
        action = strike_for(calib[tuned_on], float(obs[sl["goal_minus_object"]][0]), strikes[-1][0])
        key = (task_name, seed, action)
        if key not in cache:
            cache[key] = strike_and_hold(env, action, stay)
        return cache[key]

    t0 = time.perf_counter()
    eval_seeds = [100 + i for i in range(b.slide_eval_seeds)]
    names = list(b.slide_transfer_tasks)
    matrix = {a: {bb: float(np.mean([episode(bb, s, a) for s in eval_seeds])) for bb in names} for a in names}
    log.info("slide: transfer matrix %dx%d in %.0f s", len(names), len(names), time.perf_counter() - t0)
    env.close()

    own = {a: matrix[a][a] for a in names}
    others = {a: float(np.mean([matrix[a][bb] for bb in names if bb != a])) for a in names}

    # verdicts: does a parameter change the best strike?
    def best_set(name: str) -> list[float | None]:
        return [best_rows[name][f"{d:.2f}"]["strike_mps"] for d in SLIDE_GOAL_DISTANCES]

    def max_travel_diff(a: str, c: str) -> float:
        diffs = [
            abs(ra["travel_m"] - rc["travel_m"])
            for ra, rc in zip(calib[a], calib[c], strict=True)
            if ra["travel_m"] is not None
            and rc["travel_m"] is not None
            and ra["fell"] == 0
            and rc["fell"] == 0
        ]
        return max(diffs) if diffs else float("nan")

    verdicts = {}
    for name in needed:
        if name == SLIDE_NOMINAL:
            continue
        changed = sum(x != y for x, y in zip(best_set(name), best_set(SLIDE_NOMINAL), strict=True))
        verdicts[name] = {
            "best_strike_changes_at_n_of_goal_distances": changed,
            "of": len(SLIDE_GOAL_DISTANCES),
            "max_travel_difference_vs_nominal_m": max_travel_diff(name, SLIDE_NOMINAL),
            "goal_distances_no_strike_lands": sum(
                not best_rows[name][f"{d:.2f}"]["lands"] for d in SLIDE_GOAL_DISTANCES
            ),
        }

    results = {
        "nominal_task": SLIDE_NOMINAL,
        "tasks": {n: tasks[n].to_dict() for n in needed},
        "success_threshold_m": threshold,
        "calibration_seeds": calib_seeds,
        "calibration": calib,
        "fixed_strike_mps": SLIDE_FIXED_STRIKE,
        "fixed_strike": fixed,
        "best_strike_per_goal_distance": best_rows,
        "transfer": {
            "eval_seeds": eval_seeds,
            "tuned_on_x_evaluated_on_success": matrix,
            "own_task_success": own,
            "other_tasks_mean_success": others,
            "controller": "strike argmin_s |travel_A(s) - goal distance| (travel table calibrated on A), then hold",
        },
        "verdicts_vs_nominal": verdicts,
    }

    # markdown
    strike_speeds = [s for _, s in strikes]
    t_travel = markdown_table(
        ["task", *[f"{s:.1f}" for s in strike_speeds]],
        [
            [
                name,
                *[
                    "off"
                    if r["fell"] == r["runs"]
                    else (f"{100 * r['travel_m']:.0f}" + ("*" if r["fell"] else ""))
                    for r in calib[name]
                ],
            ]
            for name in needed
        ],
    )
    t_fixed = markdown_table(
        [
            "task",
            f"travel after strike {SLIDE_FIXED_STRIKE:.2f} m/s, cm (min-max)",
            "vs nominal, cm",
            "fell off",
        ],
        [
            [
                r["task"],
                "off table"
                if r["travel_m"] is None
                else f"{100 * r['travel_m']:.1f} ({100 * r['travel_min_m']:.0f}-{100 * r['travel_max_m']:.0f})",
                "-" if r["minus_nominal_m"] is None else f"{100 * r['minus_nominal_m']:+.1f}",
                f"{r['fell']}/{r['runs']}",
            ]
            for r in fixed
        ],
    )
    t_best = markdown_table(
        ["task", *[f"D={d:.2f} m" for d in SLIDE_GOAL_DISTANCES]],
        [
            [
                name,
                *[
                    "none"
                    if (c := best_rows[name][f"{d:.2f}"])["strike_mps"] is None
                    else f"{c['strike_mps']:.1f}" + ("" if c["lands"] else " ✗")
                    for d in SLIDE_GOAL_DISTANCES
                ],
            ]
            for name in needed
        ],
    )
    t_matrix = markdown_table(
        ["tuned on \\ evaluated on", *names, "own", "others (mean)"],
        [[a, *[fmt_pct(matrix[a][bb]) for bb in names], fmt_pct(own[a]), fmt_pct(others[a])] for a in names],
    )
    md = (
        "##### Slide\n\n"
        f"Nominal task `{SLIDE_NOMINAL}`: cylinder 6 cm, 0.3 kg, friction 0.1, flat; every other row changes one "
        f"parameter. Seeds {calib_seeds} (same puck and goal on every task); travel is measured until the puck "
        "rests. `capsule` is a rolling shape and not part of the slide preset (shown for contrast).\n\n"
        f"Travel (cm) of the puck per strike speed (m/s); `off` = left the table, `*` = left it on some seeds:\n\n"
        f"{t_travel}\n\n"
        f"One fixed strike on every task:\n\n{t_fixed}\n\n"
        f"Best strike (m/s) per goal distance D (calibrated travel closest to D; ✗ = no strike lands within "
        f"the {100 * threshold:.0f} cm success radius):\n\n{t_best}\n\n"
        f"Transfer: striker tuned on one task (its own travel table) evaluated on {len(eval_seeds)} goals of each "
        f"task (success rate, env's 50-step limit):\n\n{t_matrix}"
    )
    results["test_split_headroom"], md_headroom = slide_headroom(b, strikes, stay, calib_seeds)
    return results, md + "\n\n" + md_headroom


def slide_headroom(
    b: Budget, strikes: Sequence[tuple[int, float]], stay: int, calib_seeds: Sequence[int]
) -> tuple[dict[str, Any], str]:
    """How much knowing the task is worth on the K-shot benchmark's held-out slide tasks.

    (benchmarks/headroom.py measures this for every family, row and split; this keeps the former
    check on the ``interp`` split, the held-out intervals that were the ``test`` split before.)
    Two scripted strikers on the same tasks and goals (the tasks of `evaluation_tasks(interp split,
    seed, n)`, as in benchmarks/kshot.py): the *calibrated* one knows the task (its own travel
    table: the scripted analogue of the privileged oracle); the *pooled* one does not: for each goal
    distance it plays the strike that lands within the success radius on the most of these tasks
    (judged on their calibration tables) - the best any striker that sees only the goal can do on
    this split, so ``calibrated - pooled`` is a lower bound of the room adaptation has.
    """
    from robot_meta.envs import TaskDistribution
    from robot_meta.meta.evaluation import evaluation_tasks

    env = gym.make("robot_meta/PandaSlide-v0")
    u: Any = env.unwrapped
    sl = obs_slices(u)
    threshold = float(u.task.distance_threshold)
    split = TaskDistribution.preset("slide").split("interp")  # the held-out intervals (the old "test")
    tasks = [(seed, t) for seed in b.headroom_seeds for t in evaluation_tasks(split, seed, b.headroom_tasks)]
    t0 = time.perf_counter()
    calib = [slide_calibrate(u, t, strikes, stay, calib_seeds) for _, t in tasks]
    log.info("slide headroom: calibrated %d held-out tasks in %.0f s", len(tasks), time.perf_counter() - t0)
    pooled_cache: dict[float, int] = {}

    def pooled_action(distance: float) -> int:
        d = round(distance, 3)
        if d not in pooled_cache:

            def key(j: int) -> tuple[int, float]:
                lands = [
                    c[j]["travel_m"] is not None
                    and c[j]["fell"] == 0
                    and abs(c[j]["travel_m"] - d) < threshold
                    for c in calib
                ]
                travels = [c[j]["travel_m"] for c in calib if c[j]["travel_m"] is not None]
                return sum(lands), -abs(float(np.mean(travels)) - d) if travels else -np.inf

            pooled_cache[d] = int(calib[0][max(range(len(strikes)), key=key)]["action"])
        return pooled_cache[d]

    def episode(task: Any, seed: int, choose: Callable[[float], int]) -> bool:
        obs, _ = reset_draws_of_seed(env, seed, task)
        return strike_and_hold(env, choose(float(obs[sl["goal_minus_object"]][0])), stay)

    t0 = time.perf_counter()
    eval_seeds = [200 + i for i in range(b.headroom_eval_seeds)]
    rows = []
    for (seed, task), table in zip(tasks, calib, strict=True):

        def own(distance: float, table: list[dict[str, Any]] = table) -> int:
            return strike_for(table, distance, strikes[-1][0])

        rows.append(
            {
                "kshot_seed": seed,
                "task": task.to_dict(),
                "calibrated": float(np.mean([episode(task, s, own) for s in eval_seeds])),
                "pooled": float(np.mean([episode(task, s, pooled_action) for s in eval_seeds])),
            }
        )
    env.close()
    log.info(
        "slide headroom: %d tasks x %d goals in %.0f s", len(tasks), len(eval_seeds), time.perf_counter() - t0
    )
    cal = float(np.mean([r["calibrated"] for r in rows]))
    pool = float(np.mean([r["pooled"] for r in rows]))
    gaps = np.array([r["calibrated"] - r["pooled"] for r in rows])
    half = float(1.96 * gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else float("nan")
    res = {
        "kshot_seeds": list(b.headroom_seeds),
        "tasks_per_seed": b.headroom_tasks,
        "eval_seeds": eval_seeds,
        "calibrated_success": cal,
        "pooled_success": pool,
        "gap_points": 100 * (cal - pool),
        "gap_ci95_half_points": 100 * half,
        "per_task": rows,
    }
    t_tasks = markdown_table(
        [
            "K-shot seed",
            "friction",
            "mass kg",
            "shape",
            "slope °",
            "calibrated (knows the task)",
            "pooled (goal only)",
        ],
        [
            [
                r["kshot_seed"],
                f"{r['task']['lateral_friction']:.3f}",
                f"{r['task']['object_mass']:.2f}",
                r["task"]["object_shape"],
                f"{r['task']['terrain_slope_deg']:+.1f}" if r["task"]["terrain"] == "tilted" else "flat",
                fmt_pct(r["calibrated"]),
                fmt_pct(r["pooled"]),
            ]
            for r in rows
        ],
    )
    md = (
        "##### Slide: room for adaptation on the held-out split\n\n"
        f"The {len(tasks)} held-out tasks of the interp split (held-out intervals, K-shot seeds "
        f"{list(b.headroom_seeds)}, {b.headroom_tasks} each), {len(eval_seeds)} goals each. *Calibrated*: a "
        "scripted striker with the task's own travel table (the scripted analogue of the privileged oracle). "
        "*Pooled*: for each goal distance, the strike that lands on the most of these tasks - the best a striker "
        "that sees only the goal can do here (the analogue of domain randomisation, tuned on the test tasks "
        f"themselves). **Calibrated {fmt_pct(cal)} vs pooled {fmt_pct(pool)}: knowing the task is worth "
        f"{100 * (cal - pool):.0f} ± {100 * half:.0f} points** (95 % CI over tasks).\n\n{t_tasks}"
    )
    return res, md


# ---------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------
PUSH_STANDOFF = 0.045  # end effector this far behind the object's centre before pushing, m


def push_tasks() -> dict[str, Any]:
    tp = _task_params()
    base = tp(object_mass=0.5, object_shape="cube", object_size=0.05, lateral_friction=0.5)
    return {
        "nominal": base,
        "mu=0.1": base.replace(lateral_friction=0.1),
        "mu=1.0": base.replace(lateral_friction=1.0),
        "mass=0.1": base.replace(object_mass=0.1),
        "mass=2.0": base.replace(object_mass=2.0),
        "cylinder": base.replace(object_shape="cylinder"),
        "cuboid": base.replace(object_shape="cuboid"),
        "capsule": base.replace(object_shape="capsule"),
        "slope=+4": base.replace(terrain="tilted", terrain_slope_deg=4.0),
        "slope=-4": base.replace(terrain="tilted", terrain_slope_deg=-4.0),
    }


def push_policy(
    obs: np.ndarray, sl: dict[str, slice], acts: dict[str, int], knobs: tuple[float, float]
) -> int:
    """Scripted one-axis pusher: lower, line up behind the object, push along +x.

    `knobs` = (coarse_until, stop_at): coarse moves while the object is more than `coarse_until`
    short of the goal, fine moves until it is `stop_at` short, then wait.
    """
    coarse_until, stop_at = knobs
    ee, obj, goal = obs[sl["ee_position"]], obs[sl["object_position"]], obs[sl["goal_position"]]
    if ee[2] > 0.03:
        return acts["-z"]
    remaining = float(goal[0] - obj[0])
    gap = float(obj[0] - PUSH_STANDOFF - ee[0])
    dy = float(obj[1] - ee[1])
    if abs(dy) > 0.006 and gap > -0.01 and (gap > 0.015 or remaining > stop_at):
        return acts[("+y" if dy > 0 else "-y") + ("" if abs(dy) > 0.02 else " fine")]
    if remaining <= stop_at:
        return acts["stay"]
    if gap > 0.03 or remaining > coarse_until:
        return acts["+x"]
    return acts["+x fine"]


def run_push(b: Budget) -> tuple[dict[str, Any], str]:
    env = gym.make("robot_meta/PandaPush-v0")
    u: Any = env.unwrapped
    acts = action_index(u)
    sl = obs_slices(u)
    tasks = push_tasks()
    nominal = tasks["nominal"]

    # 1. same recorded action sequence on every task
    def record(seed: int) -> list[int]:
        obs, _ = u.reset(seed=seed, options={"task": nominal})
        seq: list[int] = []
        for _ in range(40):
            ee, obj = obs[sl["ee_position"]], obs[sl["object_position"]]
            dy, dx = float(obj[1] - ee[1]), float(obj[0] - PUSH_STANDOFF - ee[0])
            if ee[2] > 0.03:
                a = acts["-z"]
            elif abs(dy) > 0.004:
                a = acts[("+y" if dy > 0 else "-y") + ("" if abs(dy) > 0.02 else " fine")]
            elif abs(dx) > 0.005:
                a = acts[("+x" if dx > 0 else "-x") + ("" if abs(dx) > 0.02 else " fine")]
            else:
                break
            seq.append(a)
            obs, *_ = u.step(a)
        return [*seq, *[acts["+x"]] * 4]

    t0 = time.perf_counter()
    seq_seeds = list(range(b.push_sequence_seeds))
    displacement: dict[str, list[list[float]]] = {n: [] for n in tasks}
    fell: dict[str, int] = dict.fromkeys(tasks, 0)
    moving: dict[str, int] = dict.fromkeys(tasks, 0)
    lengths = []
    for seed in seq_seeds:
        seq = record(seed)
        lengths.append(len(seq))
        for name, task in tasks.items():
            u.reset(seed=seed, options={"task": task})
            p0 = u.scene.object_state()[0]
            terminated = False
            for a in [*seq, *[acts["stay"]] * 40]:
                _, _, terminated, _, info = u.step(a)
                if terminated:
                    fell[name] += int(not info["is_success"])
                    break
            p, _, lin, _ = u.scene.object_state()
            moving[name] += int(not terminated and float(np.linalg.norm(lin)) > 0.02)
            displacement[name].append([float(p[0] - p0[0]), float(p[1] - p0[1])])
    log.info("push: same-sequence replay in %.0f s", time.perf_counter() - t0)
    nom_dx = float(np.mean([d[0] for d in displacement["nominal"]]))
    sequence_rows = []
    for name in tasks:
        dx = [d[0] for d in displacement[name]]
        dy = [d[1] for d in displacement[name]]
        sequence_rows.append(
            {
                "task": name,
                "params": tasks[name].to_dict(),
                "dx_mean_m": float(np.mean(dx)),
                "dx_std_m": float(np.std(dx)),
                "dx_per_seed_m": dx,
                "abs_dy_mean_m": float(np.mean(np.abs(dy))),
                "fell": fell[name],
                "still_moving_at_end": moving[name],
                "runs": len(dx),
                "dx_vs_nominal": float(np.mean(dx)) / nom_dx if nom_dx else None,
            }
        )

    # 2. tuned scripted pusher: goals ahead of the object (+x), tune the two knobs per task
    ahead: list[int] = []
    seed = 0
    need = b.push_tune_seeds + b.push_eval_seeds
    while len(ahead) < need and seed < 5000:
        obs, _ = u.reset(seed=seed, options={"task": nominal})
        to_goal = obs[sl["goal_minus_object"]]
        if to_goal[0] > 0.1 and abs(to_goal[1]) < 0.03:
            ahead.append(seed)
        seed += 1
    tune_seeds, eval_seeds = ahead[: b.push_tune_seeds], ahead[b.push_tune_seeds : need]
    tuned_names = ["mu=0.1", "nominal", "mu=1.0", "mass=2.0"]
    transfer_names = ["mu=0.1", "nominal", "mu=1.0", "mass=0.1", "mass=2.0", "cylinder", "capsule"]
    cache: dict[tuple[str, int, tuple[float, float]], tuple[bool, int, float]] = {}

    def episode(name: str, s: int, knobs: tuple[float, float]) -> tuple[bool, int, float]:
        key = (name, s, knobs)
        if key not in cache:
            obs, _ = reset_draws_of_seed(env, s, tasks[name])
            ret, n = 0.0, 0
            while True:
                obs, r, terminated, truncated, info = env.step(push_policy(obs, sl, acts, knobs))
                ret += float(r)
                n += 1
                if terminated or truncated:
                    cache[key] = (bool(info["is_success"]), n, ret)
                    break
        return cache[key]

    def score(name: str, seeds: Sequence[int], knobs: tuple[float, float]) -> dict[str, float]:
        runs = [episode(name, s, knobs) for s in seeds]
        return {
            "success": float(np.mean([r[0] for r in runs])),
            "steps": float(np.mean([r[1] for r in runs])),
            "return": float(np.mean([r[2] for r in runs])),
        }

    t0 = time.perf_counter()
    tuned: dict[str, tuple[float, float]] = {}
    grid_scores: dict[str, dict[str, dict[str, float]]] = {}
    for name in tuned_names:
        scores = {k: score(name, tune_seeds, k) for k in b.push_grid}
        grid_scores[name] = {f"coarse_until={k[0]:g},stop_at={k[1]:g}": v for k, v in scores.items()}
        # most successes, then the highest return (faster pushes earn more dense reward)
        tuned[name] = max(b.push_grid, key=lambda k, sc=scores: (sc[k]["success"], sc[k]["return"]))  # type: ignore[misc]
    log.info("push: tuned %d pushers in %.0f s", len(tuned_names), time.perf_counter() - t0)
    t0 = time.perf_counter()
    matrix = {a: {c: score(c, eval_seeds, tuned[a]) for c in transfer_names} for a in tuned_names}
    log.info("push: transfer matrix in %.0f s", time.perf_counter() - t0)
    env.close()

    results = {
        "tasks": {n: t.to_dict() for n, t in tasks.items()},
        "same_sequence": {
            "seeds": seq_seeds,
            "sequence": "recorded on the nominal task: lower, line up 4.5 cm behind the object, 4 x '+x' (2.5 cm), "
            "then 'stay' (up to 40 steps)",
            "sequence_lengths": lengths,
            "rows": sequence_rows,
        },
        "transfer": {
            "seed_filter": "goal ahead of the object: goal_x - obj_x > 0.10 m and |goal_y - obj_y| < 0.03 m",
            "tune_seeds": tune_seeds,
            "eval_seeds": eval_seeds,
            "grid": [list(k) for k in b.push_grid],
            "grid_scores_on_tune_seeds": grid_scores,
            "tuned_knobs": {n: {"coarse_until": k[0], "stop_at": k[1]} for n, k in tuned.items()},
            "tuned_on_x_evaluated_on": matrix,
        },
    }
    t_seq = markdown_table(
        ["task", "object dx, cm (mean ± sd)", "vs nominal", "|dy|, cm", "fell off", "still moving at end"],
        [
            [
                r["task"],
                f"{100 * r['dx_mean_m']:.1f} ± {100 * r['dx_std_m']:.1f}",
                f"{r['dx_vs_nominal']:.2f}x",
                f"{100 * r['abs_dy_mean_m']:.1f}",
                f"{r['fell']}/{r['runs']}",
                f"{r['still_moving_at_end']}/{r['runs']}",
            ]
            for r in sequence_rows
        ],
    )

    def knob_text(k: tuple[float, float]) -> str:
        coarse = (
            "fine only"
            if k[0] >= 1.0
            else ("coarse only" if k[0] == 0 else f"coarse until {100 * k[0]:.0f} cm")
        )
        return f"{coarse}, stop {100 * k[1]:.0f} cm short"

    t_matrix = markdown_table(
        ["tuned on (knobs) \\ evaluated on", *transfer_names],
        [
            [
                f"{a} ({knob_text(tuned[a])})",
                *[
                    f"{fmt_pct(matrix[a][c]['success'])}, {matrix[a][c]['steps']:.0f} st, "
                    f"R {matrix[a][c]['return']:.2f}"
                    for c in transfer_names
                ],
            ]
            for a in tuned_names
        ],
    )
    md = (
        "##### Push\n\n"
        "Nominal task: cube 5 cm, 0.5 kg, friction 0.5, flat. The same recorded action sequence (approach, "
        f"4 coarse pushes, wait) on {len(seq_seeds)} seeds:\n\n{t_seq}\n\n"
        "Transfer: a scripted one-axis pusher with two knobs (coarse vs fine moves, where to stop) tuned by grid "
        f"search on {len(tune_seeds)} goals of one task, evaluated on {len(eval_seeds)} other goals of each task "
        "(goals ahead of the object; success rate, mean episode length in steps, mean dense return R). "
        "`capsule` is the held-out test shape of the push preset:\n\n"
        f"{t_matrix}"
    )
    return results, md


# ---------------------------------------------------------------------------------------------
# reach
# ---------------------------------------------------------------------------------------------
def reach_tools() -> dict[str, Any]:
    tp = _task_params()
    base = tp(object_mass=0.2, object_shape="cube", object_size=0.05, lateral_friction=0.5)
    return {
        "cube 3 cm": base.replace(object_size=0.03),
        "cube 5 cm": base,
        "cylinder 6 cm": base.replace(object_shape="cylinder", object_size=0.06),
        "sphere 8 cm": base.replace(object_shape="sphere", object_size=0.08),
        "capsule 8 cm": base.replace(object_shape="capsule", object_size=0.08),
    }


REACH_OFFSETS = tuple(round(0.01 * i, 2) for i in range(15))


def reach_policy(obs: np.ndarray, sl: dict[str, slice], acts: dict[str, int], offset: float) -> int:
    """Move the end effector to `offset` above the goal, one 2 cm axis move at a time."""
    err = obs[sl["goal_position"]] + np.array([0.0, 0.0, offset]) - obs[sl["ee_position"]]
    axis = int(np.argmax(np.abs(err)))
    if abs(err[axis]) < 0.01:
        return acts["stay"]
    return acts[("+" if err[axis] > 0 else "-") + "xyz"[axis]]


def run_reach(b: Budget) -> tuple[dict[str, Any], str]:
    env = gym.make("robot_meta/PandaReach-v0")
    u: Any = env.unwrapped
    acts = action_index(u)
    sl = obs_slices(u)
    tools = reach_tools()

    # 1. tool tip at the same end-effector pose
    tips = {}
    for name, task in tools.items():
        u.reset(seed=0, options={"task": task})
        for _ in range(3):
            u.step(acts["stay"])
        ee = u.robot.ee_state()[0]
        tip = u.task.tip_position()
        tips[name] = {"ee": ee.tolist(), "tip": tip.tolist(), "tip_below_ee_m": float(ee[2] - tip[2])}
    ref = tips["cube 3 cm"]["tip"]
    for v in tips.values():
        v["tip_distance_from_cube3_m"] = float(np.linalg.norm(np.array(v["tip"]) - np.array(ref)))

    # 2. transfer of a reacher tuned on one tool
    cache: dict[tuple[str, int, float], tuple[bool, int]] = {}

    def episode(name: str, s: int, offset: float) -> tuple[bool, int]:
        key = (name, s, offset)
        if key not in cache:
            obs, _ = reset_draws_of_seed(env, s, tools[name])
            n = 0
            while True:
                obs, _, terminated, truncated, info = env.step(reach_policy(obs, sl, acts, offset))
                n += 1
                if terminated or truncated:
                    cache[key] = (bool(info["is_success"]), n)
                    break
        return cache[key]

    def success(name: str, seeds: Sequence[int], offset: float) -> tuple[float, float]:
        runs = [episode(name, s, offset) for s in seeds]
        return float(np.mean([r[0] for r in runs])), float(np.mean([r[1] for r in runs]))

    t0 = time.perf_counter()
    names = ["cube 3 cm", "cylinder 6 cm", "capsule 8 cm"]
    tune_seeds = list(range(b.reach_tune_seeds))
    eval_seeds = [100 + i for i in range(b.reach_eval_seeds)]
    tuned = {}
    for name in names:
        scores = {o: success(name, tune_seeds, o) for o in REACH_OFFSETS}
        tuned[name] = max(REACH_OFFSETS, key=lambda o, sc=scores: (sc[o][0], -sc[o][1], -o))  # type: ignore[misc]
    matrix = {a: {c: success(c, eval_seeds, tuned[a])[0] for c in names} for a in names}
    log.info("reach: tuned and evaluated in %.0f s", time.perf_counter() - t0)
    env.close()

    results = {
        "tools": {n: t.to_dict() for n, t in tools.items()},
        "tip_at_same_ee_pose": tips,
        "transfer": {
            "controller": "move the end effector to goal + (0, 0, offset), 2 cm axis moves; offset tuned by search",
            "offsets_searched": list(REACH_OFFSETS),
            "tune_seeds": tune_seeds,
            "eval_seeds": eval_seeds,
            "tuned_offset_m": tuned,
            "tuned_on_x_evaluated_on_success": matrix,
        },
    }
    t_tip = markdown_table(
        ["tool", "tip below the end effector, cm", "tip distance from the cube-3 cm tip, cm"],
        [
            [n, f"{100 * v['tip_below_ee_m']:.1f}", f"{100 * v['tip_distance_from_cube3_m']:.1f}"]
            for n, v in tips.items()
        ],
    )
    t_matrix = markdown_table(
        ["tuned on (offset) \\ evaluated on", *names],
        [[f"{a} ({100 * tuned[a]:.0f} cm)", *[fmt_pct(matrix[a][c]) for c in names]] for a in names],
    )
    md = (
        "##### Reach (tool of hidden length)\n\n"
        f"Same end-effector pose, different tools (success radius {100 * u.task.distance_threshold:.0f} cm):\n\n"
        f"{t_tip}\n\n"
        f"Transfer: reacher tuned on one tool (offset searched on {len(tune_seeds)} goals), "
        f"success on {len(eval_seeds)} goals:\n\n{t_matrix}"
    )
    return results, md


# ---------------------------------------------------------------------------------------------
# pick and place
# ---------------------------------------------------------------------------------------------
def pick_tasks() -> dict[str, Any]:
    tp = _task_params()
    base = tp(object_mass=0.1, object_shape="cube", object_size=0.04, lateral_friction=0.8)
    return {
        "nominal": base,
        "mass=0.5": base.replace(object_mass=0.5),
        "mass=1.5": base.replace(object_mass=1.5),
        "mu=0.3": base.replace(lateral_friction=0.3),
        "mu=0.1": base.replace(lateral_friction=0.1),
        "mass=0.8, mu=0.3": base.replace(object_mass=0.8, lateral_friction=0.3),
        "cylinder": base.replace(object_shape="cylinder"),
        "cuboid": base.replace(object_shape="cuboid"),
        "capsule": base.replace(object_shape="capsule"),
    }


def run_pick(b: Budget) -> tuple[dict[str, Any], str]:
    env = gym.make("robot_meta/PandaPickPlace-v0")
    u: Any = env.unwrapped
    acts = action_index(u)
    sl = obs_slices(u)
    tasks = pick_tasks()

    def record(seed: int) -> list[int]:
        obs, _ = u.reset(seed=seed, options={"task": tasks["nominal"]})
        seq: list[int] = []

        def do(a: int) -> np.ndarray:
            seq.append(a)
            return np.asarray(u.step(a)[0])

        obs = do(acts["open"])
        obs = do(acts["open"])
        for _ in range(30):
            d = obs[sl["object_position"]] - obs[sl["ee_position"]]
            if abs(d[0]) > 0.01:
                obs = do(acts["+x" if d[0] > 0 else "-x"])
            elif abs(d[1]) > 0.01:
                obs = do(acts["+y" if d[1] > 0 else "-y"])
            elif -d[2] > 0.01:
                obs = do(acts["-z"])
            else:
                break
        return [*seq, *[acts["close"]] * 4, *[acts["+z"]] * 6, *[acts["stay"]] * 5]

    seeds = list(range(b.pick_seeds))
    lifts: dict[str, list[float]] = {n: [] for n in tasks}
    for seed in seeds:
        seq = record(seed)
        for name, task in tasks.items():
            u.reset(seed=seed, options={"task": task})
            z0 = u.scene.object_state()[0][2]
            for a in seq:
                _, _, terminated, _, _ = u.step(a)
                if terminated:
                    break
            lifts[name].append(float(u.scene.object_state()[0][2] - z0))
    env.close()
    rows = [
        {
            "task": n,
            "params": tasks[n].to_dict(),
            "lift_mean_m": float(np.mean(v)),
            "lift_per_seed_m": v,
            "held": sum(x > 0.05 for x in v),
            "runs": len(v),
        }
        for n, v in lifts.items()
    ]
    results = {
        "seeds": seeds,
        "sequence": "recorded on the nominal task: open, centre over the object, lower, close x4, +z x6, stay x5",
        "rows": rows,
    }
    t = markdown_table(
        ["task", "lift, cm (mean)", "held (lift > 5 cm)"],
        [[r["task"], f"{100 * r['lift_mean_m']:.1f}", f"{r['held']}/{r['runs']}"] for r in rows],
    )
    md = (
        "##### Pick and place\n\n"
        "Nominal: cube 4 cm, 0.1 kg, friction 0.8. The same recorded grasp-and-lift sequence (12 cm of commanded "
        f"lift) on {len(seeds)} seeds:\n\n{t}"
    )
    return results, md


# ---------------------------------------------------------------------------------------------
FAMILIES: dict[str, Callable[[Budget], tuple[dict[str, Any], str]]] = {
    "slide": run_slide,
    "push": run_push,
    "reach": run_reach,
    "pick_place": run_pick,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke test (< 1 min): few seeds and tasks")
    ap.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help=f"comma-separated subset of {','.join(FAMILIES)} (default: all)",
    )
    ap.add_argument("--no-markdown", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="gymnasium")
    import robot_meta  # noqa: F401  (registers the env ids)

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        ap.error(f"unknown families {unknown}: choose from {list(FAMILIES)}")
    budget = QUICK if args.quick else FULL
    results: dict[str, Any] = {"quick": bool(args.quick), "budget": budget.__dict__, "families": {}}
    parts = []
    t_all = time.perf_counter()
    for fam in families:
        t0 = time.perf_counter()
        res, md = FAMILIES[fam](budget)
        res["seconds"] = time.perf_counter() - t0
        results["families"][fam] = res
        parts.append(md)
        log.info("%s done in %.0f s", fam, res["seconds"])
    results["seconds"] = time.perf_counter() - t_all
    name = "adaptation_effect_quick" if args.quick else "adaptation_effect"
    cmd = command_line()
    path = write_results(name, results, cmd)
    log.info("wrote %s", path)
    body = "#### Do hidden parameters change the best action?\n\n" + "\n\n".join(parts)
    print("\n" + body + "\n")
    if not args.quick and not args.no_markdown and families == list(FAMILIES):
        update_markdown_section("adaptation_effect", body, cmd, now_utc())
        log.info("updated the adaptation_effect section of BENCHMARKS.md")
    return results


if __name__ == "__main__":
    main()
