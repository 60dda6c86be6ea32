"""QNetwork, ContextEncoder and RunningNormalizer: shapes, invariances, statistics and ONNX export."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch

from robot_meta.policies import ContextEncoder, QNetwork, RunningNormalizer


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_qnetwork_is_features_then_linear_head() -> None:
    net = QNetwork(obs_dim=5, n_actions=4, hidden=(16, 8))
    obs = torch.randn(3, 7, 5)
    feats = net.features(obs)
    assert feats.shape == (3, 7, 8) and net.feature_dim == 8
    assert isinstance(net.head, torch.nn.Linear) and net.head.weight.shape == (4, 8)
    q = net(obs)
    assert q.shape == (3, 7, 4)
    torch.testing.assert_close(q, feats @ net.head.weight.T + net.head.bias)
    assert not any(isinstance(m, torch.optim.Optimizer) for m in vars(net).values())
    assert QNetwork(**net.spec()).state_dict().keys() == net.state_dict().keys()


def test_qnetwork_normalises_observations_inside() -> None:
    net = QNetwork(obs_dim=2, n_actions=3, hidden=(4,))
    data = torch.tensor([[10.0, -5.0], [14.0, -1.0], [12.0, -3.0]])
    net.obs_norm.update(data)
    expected = (data - data.mean(0)) / torch.sqrt(data.var(0, unbiased=False) + net.obs_norm.eps)
    torch.testing.assert_close(net.obs_norm(data), expected)
    torch.testing.assert_close(net.features(data), net.body.trunk(expected))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net(torch.randn(100, 2) * 50)  # forward never changes the statistics
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert {"body.obs_norm.mean", "body.obs_norm.var", "body.obs_norm.count"} <= set(net.state_dict())


def test_normalizer_running_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    norm = RunningNormalizer(3)
    chunks = [rng.normal(loc=[1.0, -2.0, 5.0], scale=[0.5, 3.0, 0.1], size=(n, 3)) for n in (1, 17, 250, 4)]
    for c in chunks:
        norm.update(c)
    allx = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-4, atol=1e-7)
    assert float(norm.count) == len(allx)
    assert float(norm(torch.full((1, 3), 1e6)).max()) == norm.clip
    with pytest.raises(ValueError, match="non-finite"):
        norm.update(np.array([[np.nan, 0.0, 0.0]]))


def test_context_conditioning_broadcasts_one_embedding_per_task() -> None:
    net = QNetwork(obs_dim=4, n_actions=2, hidden=(8,), context_dim=3)
    obs, z = torch.randn(5, 6, 4), torch.randn(5, 3)
    q = net(obs, z)
    assert q.shape == (5, 6, 2)
    torch.testing.assert_close(q[2, 4], net(obs[2, 4], z[2]))
    with pytest.raises(ValueError, match="context"):
        net(obs)
    with pytest.raises(ValueError, match="no context"):
        QNetwork(4, 2)(obs, z)


def test_context_encoder_is_permutation_invariant_and_masks_padding() -> None:
    enc = ContextEncoder(obs_dim=3, n_actions=4, latent_dim=5, hidden=(16,))
    obs, nxt = torch.randn(2, 7, 3), torch.randn(2, 7, 3)
    rows = enc.pack(obs, torch.randint(0, 4, (2, 7)), torch.randn(2, 7), nxt)
    assert rows.shape == (2, 7, enc.transition_dim) == (2, 7, 3 + 4 + 1 + 3)
    z = enc(rows)
    assert z.shape == (2, 5)
    perm = torch.randperm(7)
    torch.testing.assert_close(enc(rows[:, perm]), z)
    # padding rows (anything) with mask 0 change nothing; an empty context is the prior out(0)
    padded = torch.cat([rows, torch.randn(2, 4, enc.transition_dim) * 100], dim=1)
    mask = torch.cat([torch.ones(2, 7), torch.zeros(2, 4)], dim=1)
    torch.testing.assert_close(enc(padded, mask), z)
    torch.testing.assert_close(enc(torch.zeros(0, enc.transition_dim)), enc.out.bias)
    torch.testing.assert_close(enc(rows, torch.zeros(2, 7)), enc.out.bias.expand(2, 5))


def _onnx_run(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    names: list[str],
    dynamic: dict[str, dict[int, str]],
) -> list[np.ndarray]:
    buf = io.BytesIO()
    torch.onnx.export(module.eval(), args, buf, input_names=names, dynamic_axes=dynamic, dynamo=False)  # type: ignore[arg-type]
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return sess.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_modules_export_to_onnx_with_dynamo_false() -> None:
    net = QNetwork(obs_dim=6, n_actions=5, hidden=(16, 16))
    net.obs_norm.update(torch.randn(50, 6) * 3 + 1)
    obs = torch.randn(4, 6)
    (q,) = _onnx_run(net, (obs,), ["obs"], {"obs": {0: "batch"}})
    np.testing.assert_allclose(q, net(obs).detach().numpy(), rtol=1e-5, atol=1e-5)

    enc = ContextEncoder(obs_dim=6, n_actions=5, latent_dim=4, hidden=(16,))
    rows = enc.pack(torch.randn(9, 6), torch.randint(0, 5, (9,)), torch.randn(9), torch.randn(9, 6))
    mask = torch.ones(9)
    mask[6:] = 0
    (z,) = _onnx_run(enc, (rows, mask), ["transitions", "mask"], {"transitions": {0: "n"}, "mask": {0: "n"}})
    np.testing.assert_allclose(z, enc(rows, mask).detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs_dim": 0, "n_actions": 3}, "obs_dim"),
        ({"obs_dim": 3, "n_actions": 0}, "n_actions"),
        ({"obs_dim": 3, "n_actions": 2, "hidden": (8, -1)}, "hidden"),
    ],
)
def test_invalid_dimensions_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        QNetwork(**kwargs)  # type: ignore[arg-type]


def test_task_embedding_standardises_with_the_pool_and_refuses_bad_shapes() -> None:
    from robot_meta.policies import TaskEmbedding

    pool = torch.tensor([[1.0, 0.0, 5.0], [3.0, 0.0, 5.0]])  # columns 2 and 3 constant over the pool
    emb = TaskEmbedding(pool, latent_dim=4, hidden=8)
    torch.testing.assert_close(emb.mean, torch.tensor([2.0, 0.0, 5.0]))
    torch.testing.assert_close(emb.scale, torch.tensor([1.0, 1.0, 1.0]))  # std 1, and 1 where constant
    assert emb(pool).shape == (2, 4) and emb(pool[0]).shape == (4,)
    wide = TaskEmbedding(torch.tensor([[0.0], [10.0]]), latent_dim=2)
    torch.testing.assert_close(wide.scale, torch.tensor([5.0]))
    with pytest.raises(ValueError, match=r"\(tasks, param_dim\)"):
        TaskEmbedding(torch.zeros(0, 3), latent_dim=2)
    with pytest.raises(ValueError, match="positive latent_dim"):
        TaskEmbedding(pool, latent_dim=0)


def test_context_encoder_prior_is_the_empty_context_embedding() -> None:
    enc = ContextEncoder(3, 2, latent_dim=4, hidden=(8,))
    torch.nn.init.normal_(enc.out.bias)
    empty = enc(torch.zeros(0, enc.transition_dim))
    masked = enc(torch.randn(5, enc.transition_dim), torch.zeros(5))
    torch.testing.assert_close(empty, enc.prior)
    torch.testing.assert_close(masked, enc.prior)
    x = torch.randn(2, 5, enc.transition_dim)
    torch.testing.assert_close(enc(x), enc.out(enc.pool(x)))
