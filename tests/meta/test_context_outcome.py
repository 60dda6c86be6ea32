"""ContextDQN's auxiliary outcome model (``outcome_weight``): what it predicts, what it trains, and that off is off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robot_meta.meta import ContextDQN, make_algorithm, make_config
from robot_meta.meta.context import OUTCOME_SCALE

SLIDE = "robot_meta/PandaSlide-v0"


def _slide_trainer(**overrides: object) -> ContextDQN:
    cfg = make_config("context", budget="smoke", env_id=SLIDE, preset="slide", overrides=dict(overrides))
    trainer = make_algorithm(cfg)
    assert isinstance(trainer, ContextDQN)
    return trainer


@pytest.mark.parametrize("bad", [-0.5, math.nan])
def test_outcome_settings_are_checked(bad: float) -> None:
    with pytest.raises(ValueError, match="outcome_weight"):
        make_config("context", budget="smoke", overrides={"outcome_weight": bad})
    with pytest.raises(ValueError, match="outcome_horizon"):
        make_config("context", budget="smoke", overrides={"outcome_horizon": 0})


def test_reach_is_refused_with_the_setting_to_change() -> None:
    with pytest.raises(ValueError, match="outcome_weight=0"):
        _ = make_algorithm(
            make_config(
                "context", budget="smoke", env_id="robot_meta/PandaReach-v0", preset="reach",
                overrides={"outcome_weight": 1.0},
            )
        )  # fmt: skip


def test_off_by_default_adds_no_model() -> None:
    trainer = _slide_trainer()
    assert trainer.outcome is None and "outcome" not in trainer._models()
    with pytest.raises(ValueError, match="outcome_weight > 0"):
        trainer.outcome_shift(torch.zeros(1, trainer.obs_dim), trainer.encoder.prior)


def test_the_outcome_head_fits_the_puck_displacement_and_trains_trunk_and_embedding() -> None:
    trainer = _slide_trainer(outcome_weight=1.0, outcome_horizon=50, meta_iterations=2)
    result = trainer.train()
    assert trainer.outcome is not None and "outcome" in trainer._models()
    assert "losses/outcome" in result.metrics and np.isfinite(result.metrics["losses/outcome"])
    tasks = [0, 1]
    z = trainer.teacher(trainer.param_vectors[tasks]).unsqueeze(1).expand(2, trainer.config.batch_size, -1)  # type: ignore[misc]

    def loss() -> torch.Tensor:
        trainer.rng = np.random.default_rng(11)  # the same draw every time
        return trainer._outcome_loss(tasks, z.detach())

    trainer.optimizer.zero_grad(set_to_none=True)
    first = loss()
    trainer._outcome_loss(tasks, z).backward()
    assert float(trainer.qnet.body.trunk[0].weight.grad.abs().sum()) > 0  # type: ignore[union-attr]
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in trainer.teacher.parameters())  # type: ignore[union-attr]
    assert all(p.grad is None for p in trainer.qnet.head.parameters())  # the Q head is not the model's
    opt = torch.optim.Adam(trainer.outcome[1].parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()
    assert float(loss()) < 0.5 * float(first)
    # the prediction is in metres, per action, of the achieved goal's 3 coordinates
    batch = trainer.replay[0].sample(5, np.random.default_rng(0))
    shift = trainer.outcome_shift(torch.from_numpy(batch.obs), z[0, :5].detach())
    assert shift.shape == (5, trainer.n_actions, 3)
    assert OUTCOME_SCALE == 0.1
