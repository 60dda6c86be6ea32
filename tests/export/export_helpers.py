"""Build `TrainedRun`s directly (random networks with realistic normaliser statistics) and export them.

Training is not needed to test export and the runtime: these runs have the exact structure of a
trained one (``load_run`` output), so the tests take milliseconds instead of a training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_meta.export import ExportConfig, ExportResult, export_trained
from robot_meta.meta import ContextHeadRule, HeadAdaptation, MetaDQNConfig, TrainedRun, make_config
from robot_meta.policies import ContextEncoder, QNetwork

__all__ = ["make_run", "export_fake"]


def make_run(
    run_dir: Path,
    algo: str = "meta-dqn",
    *,
    obs_dim: int = 5,
    n_actions: int = 4,
    hidden: tuple[int, ...] = (32, 32),
    env_id: str = "test/NoSuchEnv-v0",
    seed: int = 0,
    rule: HeadAdaptation | ContextHeadRule | None = None,
) -> TrainedRun[Any]:
    """A TrainedRun with random weights, a non-trivial normaliser and (context) an encoder.

    A `ContextHeadRule` makes a MetaDQN run of the context head rule (a QNetwork with a basis).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ctx_rule = isinstance(rule, ContextHeadRule)
    overrides = (
        {"inner_rule": "context_td", "context_dim": rule.context_dim}
        if isinstance(rule, ContextHeadRule)
        else None
    )
    config = make_config(algo, budget="smoke", env_id=env_id, preset="slide", seed=seed, overrides=overrides)
    latent = 4 if algo == "context" else 0
    policy = QNetwork(
        obs_dim, n_actions, hidden, context_dim=latent,
        head_context_dim=rule.context_dim if isinstance(rule, ContextHeadRule) else 0,
    )  # fmt: skip
    data = rng.normal(rng.uniform(-1, 1, obs_dim), rng.uniform(0.05, 2.0, obs_dim), size=(2000, obs_dim))
    policy.obs_norm.update(data)
    with torch.no_grad():
        policy.head.weight.mul_(3.0)
        policy.head.bias.normal_(0.0, 0.5)
    encoder = None
    info: dict[str, Any] = {"task_distribution": None, "algo": algo}
    adaptation = None
    if algo == "context":
        encoder = ContextEncoder(obs_dim, n_actions, latent, (32,))
        encoder.update_normalizers(torch.from_numpy(data[:-1]).float(), torch.from_numpy(data[1:]).float())
        encoder.eval()
        info["adaptation"] = {"rule": "context_inference", "context_size": 16}
    else:
        # like load_run: MetaDQN adapts on its config's support size, Reptile on the rule's default
        support = config.support_size if isinstance(config, MetaDQNConfig) else HeadAdaptation().support_size
        adaptation = rule or HeadAdaptation(
            steps=5, lr=0.05, gamma=0.9, huber_delta=1.0, support_size=support
        )
        info["adaptation"] = adaptation.to_dict()
    if ctx_rule:
        info["policy"] = policy.spec()
    return TrainedRun(Path(run_dir), algo, config, policy.eval(), encoder, adaptation, 3, info)


def export_fake(out: Path, algo: str = "meta-dqn", **kwargs: Any) -> tuple[TrainedRun[Any], ExportResult]:
    """make_run + export_trained into `out` (a quick parity check: 512 observations)."""
    run = make_run(out.parent / f"run-{out.name}", algo, **kwargs)
    return run, export_trained(run, out, config=ExportConfig(parity_samples=512))
