"""ContextDQN's RMA-style teacher mode: what each loss trains, the visit modes, and one-shot adaptation.

On the signed toy family the best action flips with the hidden sign of the gain, so the prior z
(no shots) cannot be right on both signs; after one shot the encoder's z must put the greedy
action on the goal's side for every task sign.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_env import ToyEnv, ToyTask, toy_config, toy_trainer

from robot_meta.meta import ContextDQN, make_algorithm
from robot_meta.meta.eval.adapters import ContextAdapter
from robot_meta.meta.rollout import run_episode


class _NoVectorTasks:
    def sample(self, n: int, rng: np.random.Generator) -> list[object]:
        return [object() for _ in range(n)]


def test_teacher_needs_true_parameter_vectors() -> None:
    with pytest.raises(ValueError, match=r"teacher=true needs tasks with a to_vector\(\).*set teacher=false"):
        make_algorithm(toy_config("context"), env_factory=ToyEnv, tasks=_NoVectorTasks())  # type: ignore[arg-type]


def test_regression_trains_the_encoder_but_not_its_prior_and_td_trains_the_prior() -> None:
    trainer = toy_trainer(toy_config("context", meta_iterations=2, learning_starts=40))
    assert isinstance(trainer, ContextDQN) and trainer.teacher is not None
    trainer.train()
    ctx = trainer.replay[0].sample(8, np.random.default_rng(0))
    packed = trainer.encoder.pack(
        *(torch.from_numpy(x) for x in (ctx.obs, ctx.actions, ctx.rewards, ctx.next_obs))
    )
    _, _, regression = trainer._teacher_z([0], packed.unsqueeze(0), torch.ones(1, 8), torch.Size((1, 4)))
    trainer.optimizer.zero_grad(set_to_none=True)
    regression.backward()
    enc, teacher = trainer.encoder, trainer.teacher
    assert enc.out.bias.grad is None or float(enc.out.bias.grad.abs().sum()) == 0.0
    assert float(enc.out.weight.grad.abs().sum()) > 0  # type: ignore[union-attr]
    assert all(p.grad is None for p in teacher.parameters())  # the target embedding is stop-gradient
    # The TD loss of a dropped sample (prior z) reaches the prior.
    trainer.optimizer.zero_grad(set_to_none=True)
    obs = torch.from_numpy(ctx.obs[:4]).unsqueeze(0)
    trainer.qnet(obs, enc.prior.expand(1, 4, -1)).sum().backward()
    assert float(enc.out.bias.grad.abs().sum()) > 0  # type: ignore[union-attr]


def test_visit_mode_is_a_function_of_the_seed() -> None:
    trainer = toy_trainer(toy_config("context", encoder_visits=0.5))
    assert isinstance(trainer, ContextDQN)
    modes = [trainer._visit_z(s, 0) is None for s in range(200)]
    again = [trainer._visit_z(s, 0) is None for s in range(200)]
    assert modes == again and 0.35 < np.mean(modes) < 0.65
    assert trainer._visit_z(3, None) is None  # probes act as the device does
    z = trainer._visit_z(next(s for s in range(200) if not modes[s]), 1)
    assert z is not None and z.shape == (trainer.config.latent_dim,)
    assert toy_trainer(toy_config("context", teacher=False))._visit_z(0, 0) is None  # type: ignore[attr-defined]


def _greedy(adapter: ContextAdapter, goal_side: float) -> int:
    obs = np.array([0.0, goal_side * 0.4, goal_side * 0.4], np.float32)  # x, goal, goal - x
    return adapter.act(obs, greedy=True)


def test_one_shot_moves_the_greedy_action_to_the_goal_for_either_sign() -> None:
    torch.manual_seed(0)
    trainer = toy_trainer(toy_config("context", meta_iterations=40))
    assert isinstance(trainer, ContextDQN)
    trainer.train()
    env = ToyEnv()
    right_after, right_before = [], []
    for gain in (1.0, -1.0):
        adapter = ContextAdapter(trainer.qnet, trainer.encoder, trainer.config.context_size, epsilon=0.1)
        adapter.begin(ToyTask(gain), np.random.default_rng(0))
        # action u = a - 1 moves x by 0.15 * gain * u: toward a goal on the right is a = 1 + sign(gain)
        want = 1 + int(np.sign(gain))
        right_before.append(_greedy(adapter, 1.0) == want)
        run_episode(env, ToyTask(gain), 7, lambda o, ad=adapter: ad.act(o, greedy=False), adapter.observe)
        right_after.append(_greedy(adapter, 1.0) == want and _greedy(adapter, -1.0) == 2 - want)
    assert all(right_after), right_after
    assert not all(right_before)  # one prior cannot be right for both signs
