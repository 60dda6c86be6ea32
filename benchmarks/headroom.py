"""Headroom: how much knowing the hidden task is worth, per family, per hidden parameter, per split.

For every family a small scripted controller class with one knob (or a small knob grid) plays real
episodes. On each task of a row:

* **calibrated** -- the knob tuned on *that* task (its true parameters, best success on the
  calibration goals): the scripted analogue of a privileged oracle;
* **pooled** -- the one knob that does best on the calibration goals averaged over *all* the row's
  tasks: the best member of the same controller class that sees only what the policy sees (the
  analogue of domain randomisation).

Both are then scored on other goals (evaluation seeds), so neither is fitted to the goals it is
judged on. Headroom = calibrated - pooled, with a 95 % interval (normal approximation over the
per-task differences). Rows: ``mass``, ``shape``, ``terrain``, ``friction`` (that parameter drawn
from the split, every other one at the preset's nominal value) and ``all`` (the split's tasks as
they are); a row whose parameter does not vary in the family is left out. Splits: ``test`` (the
headline: unseen task instances of the training distribution), ``interp`` and ``ood``.

Controllers (knob in brackets):

* reach -- move the end effector to [offset] above the target (tool-length compensation);
* slide and push -- one strike (push: a shove) per goal, then hold: the task's own travel table
  (calibrated) against, per goal distance, the strike that lands on the most of the row's tasks
  (pooled), as in adaptation_effect for slide. Push's policy may also push with coarse and fine moves
  and follow a short shove up; the 50-step limit leaves no time to creep the 15-35 cm quasi-statically,
  and both controllers are the same shove-and-hold class, so the headroom is that of the shove;
* pick_place -- descend, close at [grasp height offset] from the object centre, lift, carry.

    .venv/bin/python benchmarks/headroom.py                     # all families (~30 min on 2 busy cores)
    .venv/bin/python benchmarks/headroom.py --families slide    # one family
    .venv/bin/python benchmarks/headroom.py --quick             # smoke test, writes *_quick.json only

Writes ``benchmarks/results/headroom_<family>.json`` (``{"family", "split": "test", "headline",
"rows": {NAME: {"calibrated", "pooled", "headroom", "ci_low", "ci_high", "tasks"}}}``, success
rates as fractions; the ``interp`` and ``ood`` splits under ``"splits"`` in the same shape) and the
``headroom`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from adaptation_effect import action_index, obs_slices, reset_draws_of_seed
from common import RESULTS_DIR, command_line, markdown_table, now_utc, update_markdown_section

from robot_meta.diagnostics.headroom import (
    FULL,
    HEADLINE_POINTS,
    QUICK,
    ROWS,
    SPLITS,
    Budget,
    Episode,
    measure_row,
    row_tasks,
    summarise,
    varies,
)

log = logging.getLogger("headroom")

ENV_IDS = {
    "slide": "robot_meta/PandaSlide-v0",
    "push": "robot_meta/PandaPush-v0",
    "reach": "robot_meta/PandaReach-v0",
    "pick_place": "robot_meta/PandaPickPlace-v0",
}
# ---------------------------------------------------------------------------------------------
# controllers: knob grid + one real episode per (task, goal seed, knob)
# ---------------------------------------------------------------------------------------------


def _run(
    env: gym.Env[Any, Any], task: Any, seed: int, policy: Callable[[np.ndarray], int], stay: int
) -> bool:
    """One episode; it ends early (a miss) once the policy has said `stay` for 3 steps in a row
    while nothing moves (no observation component changes by 1e-4): the state can no longer change."""
    obs, _ = reset_draws_of_seed(env, seed, task)
    idle = 0
    while True:
        action = policy(np.asarray(obs))
        new, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return bool(info["is_success"])
        still = action == stay and float(np.max(np.abs(np.asarray(new) - np.asarray(obs)))) < 1e-4
        idle = idle + 1 if still else 0
        if idle >= 3:
            return False
        obs = new


def reach_controller(env: gym.Env[Any, Any]) -> tuple[list[Any], Episode]:
    u: Any = env.unwrapped
    acts, sl = action_index(u), obs_slices(u)
    knobs = [round(0.02 * i, 2) for i in range(8)]

    def episode(task: Any, seed: int, offset: Any) -> bool:
        def policy(obs: np.ndarray) -> int:
            err = obs[sl["goal_position"]] + np.array([0.0, 0.0, offset]) - obs[sl["ee_position"]]
            axis = int(np.argmax(np.abs(err)))
            if abs(err[axis]) < 0.01:
                return acts["stay"]
            return acts[("+" if err[axis] > 0 else "-") + "xyz"[axis]]

        return _run(env, task, seed, policy, acts["stay"])

    return knobs, episode


class Striker:
    """Slide's and push's controllers (as in adaptation_effect for slide): the strike is the only decision.

    *Calibrated*: the task's own travel table (the travel of every strike, measured on the
    calibration goals' start states) and, for a goal distance, the strike whose travel is closest.
    *Pooled*: for a goal distance, the strike that lands within the success radius on the most
    (task, calibration start) pairs of the row, judged on their travels - the best striker that
    sees only the goal. Each (task, seed, strike) episode is played once and cached.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        self.env = env
        u: Any = env.unwrapped
        self.u = u
        acts, self.sl = action_index(u), obs_slices(u)
        self.stay = acts["stay"]
        self.strikes = [i for i, a in enumerate(u.actions) if a.velocity is not None]
        self.threshold = float(u.task.distance_threshold)

    def outcome(
        self, cache: dict[Any, tuple[bool, float | None]], task: Any, seed: int, action: int
    ) -> tuple[bool, float | None]:
        """(success, travel along x or None if it fell off) of one strike-and-hold episode."""
        key = (task, seed, action)
        if key not in cache:
            reset_draws_of_seed(self.env, seed, task)
            x0 = float(self.u.scene.object_state()[0][0])
            a, still, ok, fell = action, 0, False, False
            for k in range(200):
                _, _, terminated, truncated, info = self.env.step(a)
                a = self.stay
                if terminated or truncated:
                    ok = bool(info["is_success"])
                    fell = bool(terminated and not ok)
                    break
                lin = self.u.scene.object_state()[2]
                still = still + 1 if k >= 2 and float(np.linalg.norm(lin)) < 0.003 else 0
                if still >= 3:  # at rest and not on the goal (it would have terminated): a miss
                    break
            travel = None if fell else float(self.u.scene.object_state()[0][0]) - x0
            cache[key] = (ok, travel)
        return cache[key]

    def goal_distance(self, task: Any, seed: int) -> float:
        obs, _ = reset_draws_of_seed(self.env, seed, task)
        return float(np.asarray(obs)[self.sl["goal_minus_object"]][0])

    def measure_row(self, tasks: Sequence[Any], b: Budget) -> dict[str, Any]:
        cache: dict[Any, tuple[bool, float | None]] = {}
        travels = [
            {a: [self.outcome(cache, t, s, a)[1] for s in b.calib_seeds] for a in self.strikes} for t in tasks
        ]

        def own(i: int, d: float) -> int:
            ok = {a: float(np.mean(v)) for a, v in travels[i].items() if all(x is not None for x in v)}  # type: ignore[arg-type]
            return min(ok, key=lambda a: abs(ok[a] - d)) if ok else self.strikes[-1]

        def pooled(d: float) -> int:
            def key(a: int) -> tuple[int, float]:
                flat = [x for tr in travels for x in tr[a]]
                lands = sum(x is not None and abs(x - d) < self.threshold for x in flat)
                seen = [x for x in flat if x is not None]
                return lands, -abs(float(np.mean(seen)) - d) if seen else -math.inf

            return max(self.strikes, key=key)

        cal, pool = [], []
        for i, t in enumerate(tasks):
            ds = [self.goal_distance(t, s) for s in b.eval_seeds]
            cal.append(
                np.mean(
                    [self.outcome(cache, t, s, own(i, d))[0] for s, d in zip(b.eval_seeds, ds, strict=True)]
                )
            )
            pool.append(
                np.mean(
                    [self.outcome(cache, t, s, pooled(d))[0] for s, d in zip(b.eval_seeds, ds, strict=True)]
                )
            )
        return summarise(np.array(cal), np.array(pool), {})


def pick_controller(env: gym.Env[Any, Any]) -> tuple[list[Any], Episode]:
    u: Any = env.unwrapped
    acts, sl = action_index(u), obs_slices(u)
    knobs = [-0.015, -0.005, 0.005, 0.015]

    def episode(task: Any, seed: int, dz: Any) -> bool:
        state: dict[str, Any] = {"phase": "open", "n": 0}

        def policy(obs: np.ndarray) -> int:
            ee, obj, goal = obs[sl["ee_position"]], obs[sl["object_position"]], obs[sl["goal_position"]]
            ph = state["phase"]
            if ph == "open":
                state["n"] += 1
                if state["n"] >= 2:
                    state["phase"], state["n"] = "align", 0
                return acts["open"]
            if ph == "align":
                d = obj - ee
                for ax in (0, 1):
                    if abs(d[ax]) > 0.01:
                        return acts[("+" if d[ax] > 0 else "-") + "xy"[ax]]
                if ee[2] - (obj[2] + dz) > 0.01:
                    return acts["-z"]
                state["phase"] = "close"
            if state["phase"] == "close":
                state["n"] += 1
                if state["n"] >= 4:
                    state["phase"] = "carry"
                return acts["close"]
            d = goal - obj
            if d[2] > 0.01 and ee[2] < 0.3:
                return acts["+z"]
            for ax in (0, 1):
                if abs(d[ax]) > 0.01:
                    return acts[("+" if d[ax] > 0 else "-") + "xy"[ax]]
            if d[2] < -0.01:
                return acts["-z"]
            return acts["stay"]

        return _run(env, task, seed, policy, acts["stay"])

    return knobs, episode


#: Families measured by `Striker` (one strike or shove, then hold) rather than a knob grid.
STRIKERS = ("slide", "push")
CONTROLLERS: dict[str, Callable[[gym.Env[Any, Any]], tuple[list[Any], Episode]]] = {
    "reach": reach_controller,
    "pick_place": pick_controller,
}
KNOB_NAMES = {
    "reach": "target offset above the goal, m",
    "push": "shove speed per goal distance: own travel table (calibrated) vs most-landing shove (pooled)",
    "slide": "strike speed per goal distance: own travel table (calibrated) vs most-landing strike (pooled)",
    "pick_place": "grasp height offset, m",
}


def run_family(
    family: str,
    b: Budget,
    rows_wanted: Sequence[str] = ROWS,
    splits_wanted: Sequence[str] = SPLITS,
    strike_torque_scale: float | None = None,
) -> dict[str, Any]:
    import robot_meta  # noqa: F401 (registers the env ids)

    env = gym.make(ENV_IDS[family])
    if strike_torque_scale is not None:  # a before/after comparison of the torque-limited strike
        # on the class: this process measures one physics, and a world rebuild makes a new task object
        type(env.unwrapped.task).strike_torque_scale = strike_torque_scale  # type: ignore[attr-defined]
    if family in STRIKERS:
        striker = Striker(env)
        measure: Callable[[Sequence[Any]], dict[str, Any]] = lambda tasks: striker.measure_row(tasks, b)  # noqa: E731
    else:
        knobs, episode = CONTROLLERS[family](env)
        measure = lambda tasks: measure_row(tasks, knobs, episode, b)  # noqa: E731
    out: dict[str, Any] = {}
    for split in splits_wanted:
        rows: dict[str, Any] = {}
        for row in rows_wanted:
            tasks = row_tasks(family, split, row, b.tasks_for(family))
            if not varies(tasks):
                continue
            t0 = time.perf_counter()
            rows[row] = measure(tasks)
            r = rows[row]
            log.info(
                "%s %s %-8s calibrated %.2f pooled %.2f headroom %+.2f [%+.2f, %+.2f] (%.0f s)",
                family,
                split,
                row,
                r["calibrated"],
                r["pooled"],
                r["headroom"],
                r["ci_low"],
                r["ci_high"],
                time.perf_counter() - t0,
            )
        out[split] = rows
    env.close()
    return out


def family_doc(family: str, measured: dict[str, Any], b: Budget, command: str, date: str) -> dict[str, Any]:
    test_all = measured["test"].get("all")
    headline = bool(
        test_all is not None and 100 * test_all["headroom"] >= HEADLINE_POINTS and test_all["ci_low"] > 0
    )
    return {
        "family": family,
        "split": "test",
        "headline": headline,
        "rows": measured["test"],
        "splits": {s: {"split": s, "rows": measured[s]} for s in SPLITS if s != "test"},
        "controller": {"knob": KNOB_NAMES[family]},
        "budget": {**dataclasses.asdict(b), "tasks": b.tasks_for(family)},
        "command": command,
        "date": date,
    }


def markdown(docs: dict[str, dict[str, Any]], b: Budget) -> str:
    lines = [
        "Calibrated (a scripted controller whose knob is tuned on each task with its true parameters) vs "
        "pooled (the one knob best over the row's tasks, seeing only what the policy sees); both choose on "
        f"{len(b.calib_seeds)} calibration goals per task and are scored on {len(b.eval_seeds)} other goals. "
        "Headroom in points with its 95 % interval over tasks; rows vary one hidden parameter (the others at "
        "the preset's nominal value) or take the split as it is (`all`); rows whose parameter the family "
        f"does not vary are absent. A family is a *headline family* when its `all` headroom on `test` is "
        f">= {HEADLINE_POINTS:.0f} points with an interval above zero. Raw numbers: "
        "`benchmarks/results/headroom_<family>.json` (the footer's `headroom.json` is the shared writer's "
        "default name; each family's file records its own command).\n",
    ]
    for family, doc in docs.items():
        lines.append(
            f"##### {family} ({'headline' if doc['headline'] else 'not headline'}; knob: {doc['controller']['knob']})\n"
        )
        table = []
        for split in SPLITS:
            rows = doc["rows"] if split == "test" else doc["splits"][split]["rows"]
            for name, r in rows.items():
                table.append(
                    [
                        split,
                        name,
                        r["tasks"],
                        f"{100 * r['calibrated']:.0f} %",
                        f"{100 * r['pooled']:.0f} %",
                        f"**{100 * r['headroom']:+.0f}** [{100 * r['ci_low']:+.0f}, {100 * r['ci_high']:+.0f}]",
                    ]
                )
        lines.append(
            markdown_table(
                ["split", "row", "tasks", "calibrated", "pooled", "headroom, points [95 % CI]"], table
            )
        )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--quick", action="store_true", help="smoke test: 3 tasks, 2+2 goals; writes *_quick.json"
    )
    ap.add_argument("--families", default=",".join(ENV_IDS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--tasks", type=int, default=None, help="tasks per row (default: per family, --quick 3)")
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="only rewrite the BENCHMARKS.md section from the headroom_<family>.json files",
    )
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows (default: %(default)s)")
    ap.add_argument(
        "--splits", default=",".join(SPLITS), help="comma-separated splits (default: %(default)s)"
    )
    ap.add_argument(
        "--strike-torque-scale",
        type=float,
        default=None,
        help="override slide's strike torque limit (1.0: the rated torques, the physics before the "
        "torque-limited strike); writes headroom_<family>_torque<X>.json only",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    b = QUICK if args.quick else FULL
    if args.tasks is not None:
        b = dataclasses.replace(b, tasks=args.tasks)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(ENV_IDS))
    if unknown:
        ap.error(f"unknown families {unknown}: choose from {list(ENV_IDS)}")
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    splits_wanted = [x.strip() for x in args.splits.split(",") if x.strip()]
    if set(rows_wanted) - set(ROWS) or set(splits_wanted) - set(SPLITS):
        ap.error(f"rows must be among {list(ROWS)}, splits among {list(SPLITS)}")
    # A subset of rows (or another strike physics) is an experiment, written aside; a subset of
    # splits is a shorter run of the same measure (the splits not run are left empty).
    partial = rows_wanted != list(ROWS) or args.strike_torque_scale is not None
    if args.table_only:
        saved = {
            f: json.loads((RESULTS_DIR / f"headroom_{f}.json").read_text())
            for f in ENV_IDS
            if (RESULTS_DIR / f"headroom_{f}.json").exists()
        }
        commands = "; ".join(dict.fromkeys(d["command"] for d in saved.values()))
        dates = sorted(d["date"] for d in saved.values())
        update_markdown_section("headroom", markdown(saved, b), command=commands, date=dates[-1])
        return saved
    command, date = command_line(argv), now_utc()
    docs = {}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for family in families:
        t0 = time.perf_counter()
        measured = run_family(family, b, rows_wanted, splits_wanted, args.strike_torque_scale)
        measured = {s: measured.get(s, {}) for s in SPLITS}
        docs[family] = family_doc(family, measured, b, command, date)
        docs[family]["seconds"] = round(time.perf_counter() - t0, 1)
        suffix = "_quick" if args.quick else ""
        if args.strike_torque_scale is not None:
            docs[family]["strike_torque_scale"] = args.strike_torque_scale
            suffix += f"_torque{args.strike_torque_scale:g}"
        elif partial:
            suffix += "_partial"
        path = RESULTS_DIR / f"headroom_{family}{suffix}.json"
        path.write_text(json.dumps(docs[family], indent=2) + "\n")
        log.info("%s: %.0f s -> %s", family, docs[family]["seconds"], path)
    if not args.quick and not partial:
        every = {}
        for family in ENV_IDS:  # the section always shows every family measured so far
            path = RESULTS_DIR / f"headroom_{family}.json"
            if family in docs:
                every[family] = docs[family]
            elif path.exists():
                every[family] = json.loads(path.read_text())
        update_markdown_section("headroom", markdown(every, b), command=command, date=date)
    return docs


if __name__ == "__main__":
    main()
