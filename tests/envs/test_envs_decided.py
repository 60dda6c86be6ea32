"""`end_when_decided`: episodes end once their outcome is decided, with the same return and success."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import robot_meta  # noqa: F401  (registers the ids)

SLIDE = "robot_meta/PandaSlide-v0"


def _strike_then_stay(env: gym.Env[Any, Any], seed: int, strike: int) -> dict[str, Any]:
    """Reset with `seed`, play strike `strike` (index into the strike actions) once, then stay."""
    env.reset(seed=seed)
    actions = env.unwrapped.actions  # type: ignore[attr-defined]
    strikes = [i for i, a in enumerate(actions) if a.velocity is not None]
    stay = next(i for i, a in enumerate(actions) if a.label == "stay")
    a, rewards, info = strikes[strike], [], {}
    while True:
        _, r, terminated, truncated, info = env.step(a)
        rewards.append(r)
        a = stay
        if terminated or truncated:
            return {
                "steps": len(rewards),
                "return": float(np.sum(rewards)),
                "success": bool(info["is_success"]),
                "decided": bool(info.get("decided", False)),
                "truncated": truncated,
            }


@pytest.fixture(scope="module")
def envs() -> Any:
    full = gym.make(SLIDE)
    short = gym.make(SLIDE, end_when_decided=True)
    yield full, short
    full.close()
    short.close()


@pytest.mark.parametrize("strike", [0, 9])  # the weakest strike falls short, the strongest overshoots
def test_slide_ends_when_the_struck_puck_rests_with_the_same_return(envs: Any, strike: int) -> None:
    full, short = envs
    a = _strike_then_stay(full, seed=3, strike=strike)
    b = _strike_then_stay(short, seed=3, strike=strike)
    assert not a["success"] and not b["success"]
    assert a["steps"] == 50 and a["truncated"]
    assert b["decided"] and not b["truncated"] and b["steps"] < 45, b
    # a puck at rest stays put: the terminal reward pays the idle steps' return (within 1 %)
    assert b["return"] == pytest.approx(a["return"], rel=0.01)


def test_success_is_the_same_with_and_without_the_decided_end(envs: Any) -> None:
    full, short = envs
    outcomes = [
        (
            _strike_then_stay(full, seed=s, strike=k)["success"],
            _strike_then_stay(short, seed=s, strike=k)["success"],
        )
        for s in (0, 1)
        for k in range(10)
    ]
    assert any(a for a, _ in outcomes), "no strike landed: the check would be vacuous"
    assert all(a == b for a, b in outcomes), outcomes


def test_nothing_is_decided_before_the_strike(envs: Any) -> None:
    _, short = envs
    short.reset(seed=0)
    for _ in range(20):
        _, _, terminated, truncated, info = short.step(0)  # stay: the puck is not struck
        assert not terminated and not truncated and info["decided"] is False


def test_push_has_no_point_of_no_return() -> None:
    plain, opt = (
        gym.make("robot_meta/PandaPush-v0"),
        gym.make("robot_meta/PandaPush-v0", end_when_decided=True),
    )
    try:
        rng = np.random.default_rng(0)
        actions = rng.integers(plain.action_space.n, size=30)  # type: ignore[attr-defined]
        plain.reset(seed=5)
        opt.reset(seed=5)
        for a in actions:
            p = plain.step(int(a))
            o = opt.step(int(a))
            assert np.array_equal(p[0], o[0]) and p[1] == o[1] and p[2] == o[2]
            assert o[4]["decided"] is False
            if p[2] or p[3]:
                break
    finally:
        plain.close()
        opt.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end_when_decided": "yes"}, "end_when_decided must be True or False"),
        ({"end_when_decided": True, "goal_conditioned": True}, "cannot be combined with goal_conditioned"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make(SLIDE, **kwargs)
