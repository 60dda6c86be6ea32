"""Each algorithm's smoke run improves what it optimises, on the toy task family.

The score is the algorithm's own adapted performance: greedy visits of the training tasks
(`MetaTrainer.probe`: a zero-shot episode, then the algorithm's adaptation - head TD steps, inner
DQN, or context inference - then an adapted episode), over 4 visits of each of the 8 pool tasks,
before and after training. On the signed family a random-init network scores about -10 on the
adapted episode, the best policy that ignores the task about -8.5, and solving every task about -1.

Reptile is scored on the magnitude-only family: on the sign-flip family the average of
parameters adapted to opposite signs is an undecided initialisation and a short DQN inner loop
cannot recover the sign from two episodes (measured: no reliable gain in 60 iterations), whereas
the Panda families vary magnitudes (mass, friction), like this one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_env import toy_config, toy_trainer

from robot_meta.meta import ContextDQN, MetaDQN, Reptile, make_config

CASES = {
    # algo: (signed family, iterations, minimum gain of the adapted-episode return, minimum success after)
    "meta-dqn": (True, 100, 2.5, 0.15),
    "reptile": (False, 40, 3.0, 0.75),
    "context": (True, 40, 5.0, 0.75),
}


@pytest.mark.parametrize(
    "algo",
    [
        # about 10 s each on an idle core, more than 20 s when the machine is shared
        pytest.param("meta-dqn", marks=pytest.mark.slow),
        pytest.param("reptile", marks=pytest.mark.slow),
        "context",
    ],
)
def test_smoke_run_improves_adapted_return(algo: str) -> None:
    signed, iterations, min_gain, min_success = CASES[algo]
    trainer = toy_trainer(toy_config(algo, meta_iterations=iterations), signed=signed)
    assert isinstance(trainer, {"meta-dqn": MetaDQN, "reptile": Reptile, "context": ContextDQN}[algo])
    visits = trainer.task_pool * 4
    before = trainer.probe(visits)
    result = trainer.train()
    after = trainer.probe(visits)
    assert result.iterations == iterations and result.env_steps > 0 and result.updates > 0
    assert np.isfinite(list(result.metrics.values())).all()
    gain = after["meta/return_post"] - before["meta/return_post"]
    assert gain >= min_gain, (
        f"{algo}: adapted return {before['meta/return_post']:.2f} -> {after['meta/return_post']:.2f}"
    )
    assert after["meta/success_post"] >= min_success


def test_meta_dqn_inner_loop_reduces_the_support_td_loss() -> None:
    trainer = toy_trainer(toy_config("meta-dqn", meta_iterations=15))
    result = trainer.train()
    assert result.metrics["losses/inner_td_post"] < result.metrics["losses/inner_td_pre"]


def test_probe_does_not_change_training() -> None:
    a = toy_trainer(toy_config("meta-dqn", meta_iterations=6))
    b = toy_trainer(toy_config("meta-dqn", meta_iterations=6))
    a.probe()
    a.train()
    b.train()
    assert isinstance(a, MetaDQN) and isinstance(b, MetaDQN)
    assert all(torch.equal(a.qnet.state_dict()[k], v) for k, v in b.qnet.state_dict().items())


def test_end_when_decided_only_changes_the_training_env() -> None:
    """``end_when_decided=true`` makes meta-training collect on the env with that option; the default does not."""
    from robot_meta.meta.rollout import cached_env
    from robot_meta.meta.trainer import training_env_factory

    slide = "robot_meta/PandaSlide-v0"
    plain = make_config("context", budget="smoke", env_id=slide, preset="slide")
    decided = make_config(
        "context", budget="smoke", env_id=slide, preset="slide", overrides={"end_when_decided": True}
    )
    assert dict(training_env_factory(plain).kwargs) == {"action_mode": "discrete"}
    assert dict(training_env_factory(decided).kwargs) == {"action_mode": "discrete", "end_when_decided": True}
    assert cached_env(training_env_factory(decided)).unwrapped.end_when_decided is True
    assert type(decided).from_dict(decided.to_dict()) == decided
    with pytest.raises(ValueError, match="end_when_decided"):
        make_config("context", budget="smoke", overrides={"end_when_decided": "yes"})
