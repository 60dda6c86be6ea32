"""``manifest.json`` of an exported policy: schema, validation and hash-checked file access.

The one owner of the format, both ways: the exporter builds a `Manifest` and writes
`Manifest.to_dict()`; `load_manifest` (used by `AdaptivePolicy.load`) parses and validates it back.
`HeadRule` / `ContextHeadRule` / `ContextSpec` are the device rules (every hyper-parameter;
`robot_meta.meta` imports them from here) and `pack_transitions` the encoder's input layout. Imports only the standard
library and numpy, so the on-device runtime can read it without torch.

A manifest is refused (`ManifestError`, a message that says what to do) when its format version
is not `FORMAT_VERSION`, a required field is missing or malformed, a file entry points outside the
export directory (absolute path, ``..``, a symlink leading out), or a file's size or sha256 does not
match what the manifest records.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = [
    "CHECKED_IR_VERSION",
    "CHECKED_OPSET",
    "ENCODER_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "OLDEST_ONNXRUNTIME",
    "POLICY_FILE",
    "ContextHeadRule",
    "ContextSpec",
    "DeviceRule",
    "GradientRule",
    "HeadRule",
    "Manifest",
    "ManifestError",
    "load_manifest",
    "pack_transitions",
    "sha256_file",
]

#: Name of the manifest inside an export directory.
MANIFEST_FILE = "manifest.json"
#: ``manifest["format"]``: what kind of document this is.
FORMAT_NAME = "robot_meta.export"
#: ``manifest["format_version"]``: bumped on any incompatible change of the layout below.
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """The export directory or its manifest cannot be trusted or used; the message says what to do."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


#: The policy graph inside an export directory.
POLICY_FILE = "policy.onnx"
#: The context encoder graph of a ContextDQN export.
ENCODER_FILE = "encoder.onnx"
#: The oldest onnxruntime the exported graphs were checked on (IR 8 / opset 17 graphs run there bit for
#: bit like the version the tests use; shared/NOTES.md). Recorded in ``producer.oldest_onnxruntime``.
OLDEST_ONNXRUNTIME = "1.17.3"
#: The graph format that claim holds for: opset and the largest IR version.
CHECKED_OPSET, CHECKED_IR_VERSION = 17, 8


@dataclass(frozen=True)
class HeadRule:
    """Every hyper-parameter of the head adaptation rule: the meta-training inner loop and the device's update.

    The formula is documented in `robot_meta.meta.adaptation` (torch) and `robot_meta.runtime.adaptation`
    (numpy); `robot_meta.meta` imports this type from here. ``to_dict`` is the manifest's (and
    ``config.json``'s) ``adaptation`` entry.
    """

    steps: int = 5
    """K: full-batch SGD steps on the head."""
    lr: float = 0.1
    """alpha: SGD step size."""
    gamma: float = 0.98
    """Discount of the TD targets."""
    huber_delta: float = 1.0
    """kappa: Huber threshold (TD errors are clipped to [-kappa, kappa] in the gradient)."""
    n_step: int = 1
    """n of the n-step TD targets (1 = one-step; larger values carry an episode's outcome back to the
    actions that caused it within one adaptation)."""
    support_size: int = 64
    """Transitions adapted on: the latest ones observed (as in meta-training's collection)."""

    rule: ClassVar[str] = "head_td_sgd"

    def __post_init__(self) -> None:
        _check_td_fields(self, ("steps", "n_step", "support_size"))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"rule": "head_td_sgd", "steps", "lr", "gamma", "huber_delta", "n_step", "support_size"}``."""
        return {"rule": self.rule, **asdict(self)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "adaptation.") -> HeadRule:
        """Parse (and validate) the ``adaptation`` entry; `ManifestError` names a missing or bad field.

        ``n_step`` and ``support_size`` may be absent (documents written before they existed).
        """
        return _td_rule_from_dict(cls, doc, where, defaults={"n_step": 1, "support_size": 64})


@dataclass(frozen=True)
class ContextHeadRule:
    """Every hyper-parameter of the context head rule (CAVIA with a bilinear head): K gradient steps on c.

    The head is ``W(c) = W_0 + sum_j c_j B_j``, ``b(c) = b_0 + L c``; adapting moves only the context
    vector ``c`` (``context_dim`` numbers, starting at 0) by K full-batch gradient steps of the mean
    Huber TD loss with targets fixed from the starting head (the same n-step targets as `HeadRule`).
    The meta-learned basis ``B`` (``context_dim x A x H``) and ``L`` (``context_dim x A``) couple the
    actions: a shot's outcome moves every action's value, including the actions it did not try. The
    formula is documented in `robot_meta.meta.adaptation` (torch) and `robot_meta.runtime.adaptation`
    (numpy); the basis ships in the policy graph (``head_basis_value``, ``head_bias_basis_value``).
    """

    steps: int = 5
    """K: full-batch gradient steps on c."""
    lr: float = 1.0
    """alpha: step size on c."""
    gamma: float = 0.98
    """Discount of the TD targets."""
    huber_delta: float = 1.0
    """kappa: Huber threshold (TD errors are clipped to [-kappa, kappa] in the gradient)."""
    n_step: int = 1
    """n of the n-step TD targets (as `HeadRule.n_step`)."""
    support_size: int = 64
    """Transitions adapted on: the latest ones observed."""
    context_dim: int = 4
    """Size of c (the number of basis matrices B_j)."""

    rule: ClassVar[str] = "head_context_td"

    def __post_init__(self) -> None:
        _check_td_fields(self, ("steps", "n_step", "support_size", "context_dim"))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"rule": "head_context_td", "steps", "lr", "gamma", "huber_delta", "n_step", "support_size", "context_dim"}``."""
        return {"rule": self.rule, **asdict(self)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "adaptation.") -> ContextHeadRule:
        """Parse (and validate) the ``adaptation`` entry; `ManifestError` names a missing or bad field."""
        return _td_rule_from_dict(cls, doc, where, extra_ints=("context_dim",))


_RuleT = TypeVar("_RuleT")


def _td_rule_from_dict(
    cls: Callable[..., _RuleT],
    doc: Mapping[str, Any],
    where: str,
    *,
    defaults: Mapping[str, int] | None = None,
    extra_ints: tuple[str, ...] = (),
) -> _RuleT:
    """The TD rules' shared parser: steps, lr, gamma, huber_delta, n_step, support_size, then `extra_ints`.

    A key of `defaults` may be absent (documents written before the field existed); every other
    field is required. A bad value raises `ManifestError`, as a missing one does.
    """
    defaults = defaults or {}

    def int_field(key: str) -> int:
        return _positive_int(doc, key, where) if key not in defaults or key in doc else defaults[key]

    try:
        return cls(
            steps=int_field("steps"),
            lr=_number(doc, "lr", where, *LR_BOUNDS),
            gamma=_number(doc, "gamma", where, 0.0, 1.0),
            huber_delta=_number(doc, "huber_delta", where, *HUBER_BOUNDS),
            n_step=int_field("n_step"),
            support_size=int_field("support_size"),
            **{key: int_field(key) for key in extra_ints},
        )
    except ManifestError:
        raise
    except ValueError as exc:
        raise ManifestError(f"manifest {where[:-1]} is invalid ({exc}): re-export the run") from None


def _check_td_fields(rule: Any, ints: tuple[str, ...]) -> None:
    name = type(rule).__name__
    for key in ints:
        value = getattr(rule, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}.{key} must be an int >= 1, got {value!r}")
    if not (math.isfinite(rule.lr) and rule.lr > 0):
        raise ValueError(f"{name}.lr must be > 0, got {rule.lr!r}")
    if not 0.0 <= rule.gamma <= 1.0:
        raise ValueError(f"{name}.gamma must be in [0, 1], got {rule.gamma!r}")
    if not (math.isfinite(rule.huber_delta) and rule.huber_delta > 0):
        raise ValueError(f"{name}.huber_delta must be > 0, got {rule.huber_delta!r}")


#: A rule that adapts the head by gradient steps from a support set (on the head, or on a context c).
GradientRule = HeadRule | ContextHeadRule


@dataclass(frozen=True)
class ContextSpec:
    """The task encoder of a ContextDQN export (adapting is inferring z from recent transitions)."""

    file: str
    """The encoder graph, relative to the export directory."""
    latent_dim: int
    """Size of z."""
    context_size: int
    """Most recent transitions the encoder sees."""
    transition_dim: int
    """Width of one packed transition row ``[obs, one_hot(a), r, next_obs]`` (`pack_transitions`)."""

    rule: ClassVar[str] = "context_inference"

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``adaptation`` entry."""
        return {"rule": self.rule, "context_size": self.context_size}


#: What an algorithm's device rule is: head TD steps, context steps, or inference of z by an encoder.
DeviceRule = HeadRule | ContextHeadRule | ContextSpec


def pack_transitions(
    obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, n_actions: int
) -> np.ndarray:
    """The encoder's input rows ``[obs, one_hot(a), r, next_obs]``, float32 ``(N, 2 obs_dim + A + 1)``.

    The one place this layout is written in numpy (evaluation, export parity, training collection and
    the device all call it); `robot_meta.policies.ContextEncoder.pack` is its torch twin.
    """
    obs = np.asarray(obs, np.float32).reshape(len(actions), -1)
    next_obs = np.asarray(next_obs, np.float32).reshape(len(actions), -1)
    one_hot = np.zeros((len(actions), int(n_actions)), np.float32)
    one_hot[np.arange(len(actions)), np.asarray(actions, np.int64)] = 1.0
    r = np.asarray(rewards, np.float32).reshape(-1, 1)
    return np.concatenate([obs, one_hot, r, next_obs], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json``: `load_manifest` parses it, `to_dict` writes it (the exporter's form)."""

    directory: Path
    """The export directory (not written into the document)."""
    algo: str
    env_id: str
    obs_dim: int
    n_actions: int
    feature_dim: int
    policy_file: str
    head_rule: GradientRule | None
    """None for ContextDQN (its adaptation is inference)."""
    context: ContextSpec | None
    files: dict[str, dict[str, Any]]
    """``{name: {"sha256", "bytes"}}`` of every file of the export."""
    layout: list[list[Any]] = field(default_factory=list)
    """Observation layout ``[[name, size], ...]`` (sums to obs_dim)."""
    action_map: list[Any] = field(default_factory=list)
    """Index -> end-effector command (empty when the env could not describe its actions)."""
    normalizer: dict[str, Any] = field(default_factory=dict)
    """The observation normaliser inside the graph (mean, var, eps, clip, count)."""
    network: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments of the Q-network."""
    encoder_network: dict[str, Any] | None = None
    """Constructor arguments of the context encoder (ContextDQN)."""
    trained_with: str = ""
    """How the run was trained relative to its device rule (a note for people)."""
    train_distribution: dict[str, Any] | None = None
    """The task distribution of the run (``TaskDistribution.to_dict()``)."""
    train: dict[str, Any] = field(default_factory=dict)
    """The run: directory, iteration, the command that reproduces it, its config."""
    producer: dict[str, Any] = field(default_factory=dict)
    """The export command, opset, versions, export options, oldest onnxruntime checked."""
    parity: dict[str, Any] = field(default_factory=dict)
    """The torch<->onnxruntime parity statistics of the export."""

    @property
    def rule(self) -> DeviceRule:
        """The device rule (`HeadRule`, `ContextHeadRule` or `ContextSpec`)."""
        rule = self.head_rule if self.head_rule is not None else self.context
        assert rule is not None
        return rule

    @property
    def train_config(self) -> dict[str, Any]:
        """The run's config (``train.config``; empty if absent)."""
        cfg = self.train.get("config")
        return dict(cfg) if isinstance(cfg, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        """The ``manifest.json`` document (`load_manifest` reads it back into an equal `Manifest`)."""
        adaptation = self.rule.to_dict()
        if self.trained_with:
            adaptation["trained_with"] = self.trained_with
        graphs = {"policy": self.policy_file}
        context = None
        if self.context is not None:
            graphs["encoder"] = self.context.file
            context = {
                "latent_dim": self.context.latent_dim,
                "transition_dim": self.context.transition_dim,
                "encoder": self.encoder_network,
            }
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "algo": self.algo,
            "env_id": self.env_id,
            "observation": {"dim": self.obs_dim, "dtype": "float32", "layout": self.layout},
            "actions": {"n": self.n_actions, "map": self.action_map},
            "normalizer": self.normalizer,
            "head": self._head_doc(),
            "network": self.network,
            "context": context,
            "graphs": graphs,
            "adaptation": adaptation,
            "train_distribution": self.train_distribution,
            "train": self.train,
            "producer": self.producer,
            "parity": self.parity,
            "files": self.files,
        }

    def _head_doc(self) -> dict[str, Any]:
        head: dict[str, Any] = {
            "n_actions": self.n_actions,
            "feature_dim": self.feature_dim,
            "weight_input": "head_weight",
            "bias_input": "head_bias",
            "shape": [self.n_actions, self.feature_dim],
        }
        if isinstance(self.head_rule, ContextHeadRule):
            d = self.head_rule.context_dim
            head["basis_output"] = "head_basis_value"
            head["bias_basis_output"] = "head_bias_basis_value"
            head["basis_shape"] = [d, self.n_actions, self.feature_dim]
        return head

    def write(self) -> Path:
        """Write ``directory/manifest.json`` atomically (temp file + rename) and return its path."""
        path = self.directory / MANIFEST_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def path(self, name: str) -> Path:
        """Path of a file listed in the manifest, after checking its size and sha256."""
        entry = self.files.get(name)
        if entry is None:
            raise ManifestError(f"{self.directory / MANIFEST_FILE} lists no file {name!r}: re-export the run")
        path = self.directory / name
        if not path.is_file():
            raise ManifestError(f"{path} is missing: copy the whole export directory or re-export the run")
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            raise ManifestError(
                f"{path} has {size} bytes but the manifest records {entry['bytes']}: the file is truncated "
                "or was replaced; copy the export directory again or re-export the run"
            )
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise ManifestError(
                f"sha256 of {path} is {digest[:16]}... but the manifest records {str(entry['sha256'])[:16]}...: "
                "the file is corrupt or was modified; copy the export directory again or re-export the run"
            )
        return path

    def verify_all(self) -> None:
        """Check the size and sha256 of every file the manifest lists."""
        for name in self.files:
            self.path(name)


def _need(doc: Mapping[str, Any], key: str, where: str, types: type | tuple[type, ...]) -> Any:
    if key not in doc:
        raise ManifestError(f"manifest field {where}{key!r} is missing: re-export the run with this version")
    value = doc[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ManifestError(f"manifest field {where}{key!r} has the wrong type (bool): re-export the run")
    if not isinstance(value, types):
        raise ManifestError(
            f"manifest field {where}{key!r} must be {types}, got {type(value).__name__}: re-export the run"
        )
    return value


#: Upper bound of every integer of a manifest, by ``where + key``: a device can run nothing larger
#: (an adaptation of 1e9 steps never returns; a support set of 1e9 transitions fills no memory).
INT_BOUNDS: dict[str, int] = {
    "adaptation.steps": 10_000,
    "adaptation.n_step": 1_000,
    "adaptation.support_size": 1_000_000,
    "adaptation.context_dim": 4_096,
    "adaptation.context_size": 100_000,
    "observation.dim": 65_536,
    "actions.n": 4_096,
    "head.n_actions": 4_096,
    "head.feature_dim": 65_536,
    "context.latent_dim": 4_096,
    "context.transition_dim": 2 * 65_536 + 4_096 + 1,
}
#: Bounds of the floats of the head rule: ``lr`` in [LR_BOUNDS], ``huber_delta`` in [HUBER_BOUNDS].
LR_BOUNDS = (1e-12, 10.0)
HUBER_BOUNDS = (1e-12, 1e6)


def _positive_int(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = int(_need(doc, key, where, int))
    hi = INT_BOUNDS.get(where + key, 1_000_000_000)
    if not 1 <= value <= hi:
        raise ManifestError(
            f"manifest field {where}{key!r}={value} is outside [1, {hi}]: the export is damaged or was "
            "edited by hand; re-export the run"
        )
    return value


def _number(doc: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float:
    value = float(_need(doc, key, where, (int, float)))
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ManifestError(
            f"manifest field {where}{key!r}={value} is outside [{lo}, {hi}]: the export is damaged or was "
            "edited by hand; re-export the run"
        )
    return value


def _safe_name(directory: Path, name: str) -> str:
    """`name` if it is a plain relative path that stays inside `directory`; ManifestError otherwise."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ManifestError(f"manifest file name {name!r} is not a plain relative path: refusing it")
    pure = PurePosixPath(name)
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts) or Path(name).is_absolute():
        raise ManifestError(
            f"manifest file {name!r} points outside the export directory (absolute path or '..'): refusing it"
        )
    root = directory.resolve()
    target = (directory / name).resolve()
    if target != root and root not in target.parents:
        raise ManifestError(
            f"manifest file {name!r} resolves to {target}, outside {root} (symlink?): refusing it"
        )
    if any((directory / Path(*pure.parts[: i + 1])).is_symlink() for i in range(len(pure.parts))):
        raise ManifestError(
            f"manifest file {name!r} is a symlink (or lies under one): an export directory holds its own "
            "files; copy the real files in or re-export the run"
        )
    return name


def _check_format(directory: Path, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise ManifestError(f"{directory / MANIFEST_FILE} is not a JSON object: re-export the run")
    fmt = doc.get("format")
    if fmt != FORMAT_NAME:
        raise ManifestError(
            f"{directory / MANIFEST_FILE} has format {fmt!r}, expected {FORMAT_NAME!r}: "
            "this is not a robot_meta export (robot-meta export RUN --out DIR writes one)"
        )
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{directory / MANIFEST_FILE} has format_version {version!r} but this runtime reads version "
            f"{FORMAT_VERSION}: re-export the run with the robot_meta version installed on the device"
        )


def _parse_files(directory: Path, doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for name, entry in _need(doc, "files", "", dict).items():
        _safe_name(directory, name)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or len(entry["sha256"]) != 64
        ):
            raise ManifestError(f"manifest files[{name!r}] needs a 64-hex-digit 'sha256': re-export the run")
        files[name] = dict(entry)
    return files


def _graph_file(directory: Path, graphs: Mapping[str, Any], key: str, files: Mapping[str, Any]) -> str:
    name = _safe_name(directory, _need(graphs, key, "graphs.", str))
    if name not in files:
        raise ManifestError(f"manifest graphs.{key}={name!r} has no entry in 'files': re-export the run")
    return name


def _parse_context(
    directory: Path, doc: Mapping[str, Any], files: Mapping[str, Any], obs_dim: int, n_actions: int
) -> ContextSpec:
    ctx = _need(doc, "context", "", dict)
    context = ContextSpec(
        file=_graph_file(directory, doc["graphs"], "encoder", files),
        latent_dim=_positive_int(ctx, "latent_dim", "context."),
        context_size=_positive_int(doc["adaptation"], "context_size", "adaptation."),
        transition_dim=_positive_int(ctx, "transition_dim", "context."),
    )
    if context.transition_dim != 2 * obs_dim + n_actions + 1:
        raise ManifestError("manifest context.transition_dim does not match the observation and actions")
    return context


def _parse(directory: Path, doc: Any) -> Manifest:
    _check_format(directory, doc)
    algo = str(_need(doc, "algo", "", str))
    env_id = str(_need(doc, "env_id", "", str))
    obs = _need(doc, "observation", "", dict)
    obs_dim = _positive_int(obs, "dim", "observation.")
    if _need(obs, "dtype", "observation.", str) != "float32":
        raise ManifestError("manifest field observation.dtype must be 'float32': re-export the run")
    layout = _need(obs, "layout", "observation.", list)
    if not all(
        isinstance(seg, list) and len(seg) == 2 and isinstance(seg[1], int) and not isinstance(seg[1], bool)
        for seg in layout
    ):
        raise ManifestError("manifest observation.layout must be [[name, size], ...]: re-export the run")
    if sum(int(seg[1]) for seg in layout) != obs_dim:
        raise ManifestError(
            f"manifest observation.layout sums to {sum(int(s[1]) for s in layout)}, not dim={obs_dim}"
        )
    actions = _need(doc, "actions", "", dict)
    n_actions = _positive_int(actions, "n", "actions.")
    action_map = _need(actions, "map", "actions.", list)
    if action_map and len(action_map) != n_actions:
        raise ManifestError(f"manifest actions.map has {len(action_map)} entries for n={n_actions}")
    head = _need(doc, "head", "", dict)
    if _positive_int(head, "n_actions", "head.") != n_actions:
        raise ManifestError("manifest head.n_actions differs from actions.n: re-export the run")
    feature_dim = _positive_int(head, "feature_dim", "head.")
    normalizer = _need(doc, "normalizer", "", dict)
    train_distribution = _need(doc, "train_distribution", "", (dict, type(None)))
    producer = _need(doc, "producer", "", dict)
    adaptation = _need(doc, "adaptation", "", dict)
    rule_name = _need(adaptation, "rule", "adaptation.", str)
    files = _parse_files(directory, doc)
    policy_file = _graph_file(directory, _need(doc, "graphs", "", dict), "policy", files)
    head_rule: GradientRule | None = None
    context: ContextSpec | None = None
    if rule_name == HeadRule.rule:
        head_rule = HeadRule.from_dict(adaptation)
    elif rule_name == ContextHeadRule.rule:
        head_rule = ContextHeadRule.from_dict(adaptation)
    elif rule_name == ContextSpec.rule:
        context = _parse_context(directory, doc, files, obs_dim, n_actions)
    else:
        raise ManifestError(
            f"manifest adaptation.rule {rule_name!r} is unknown to this runtime (expected "
            f"{HeadRule.rule!r}, {ContextHeadRule.rule!r} or {ContextSpec.rule!r}): update robot_meta on the device"
        )
    ctx_doc = doc.get("context")
    return Manifest(
        directory=directory,
        algo=algo,
        env_id=env_id,
        obs_dim=obs_dim,
        n_actions=n_actions,
        feature_dim=feature_dim,
        policy_file=policy_file,
        head_rule=head_rule,
        context=context,
        files=files,
        layout=[list(seg) for seg in layout],
        action_map=list(action_map),
        normalizer=dict(normalizer),
        network=dict(doc.get("network") or {}),
        encoder_network=ctx_doc.get("encoder") if isinstance(ctx_doc, dict) else None,
        trained_with=str(adaptation.get("trained_with", "")),
        train_distribution=train_distribution,
        train=dict(doc.get("train") or {}),
        producer=dict(producer),
        parity=dict(doc.get("parity") or {}),
    )


def previous_export_dir(directory: str | Path) -> Path:
    """Where `replace_export_dir` parks the previous export while it swaps the new one in."""
    path = Path(directory)
    return path.parent / f".{path.name}.old"


def recover_export_dir(directory: str | Path) -> None:
    """Finish a swap that a killed exporter left half done (the previous export comes back)."""
    final, old = Path(directory), previous_export_dir(directory)
    if old.is_dir() and not old.is_symlink():
        if not final.exists() and not final.is_symlink():
            os.rename(old, final)
        elif (final / MANIFEST_FILE).is_file():
            shutil.rmtree(old, ignore_errors=True)


def replace_export_dir(stage: Path, directory: str | Path) -> None:
    """Swap the complete export `stage` in as `directory` by renames; the previous export is removed last.

    At every instant either `directory` or `previous_export_dir(directory)` holds a complete export
    (`load_manifest` falls back to the latter), so a kill never leaves a robot without a policy.
    """
    final, old = Path(directory), previous_export_dir(directory)
    recover_export_dir(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.rename(final, old)
    os.rename(stage, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_manifest(directory: str | Path, *, verify: bool = True) -> Manifest:
    """Read and validate ``DIR/manifest.json``; with `verify`, check every listed file's size and sha256.

    If ``DIR`` is missing because an exporter was killed while swapping a new export in, the previous
    export (parked next to it by `replace_export_dir`) is loaded instead.
    """
    root = Path(directory)
    old = previous_export_dir(root)
    if not root.exists() and (old / MANIFEST_FILE).is_file():
        root = old
    if not root.is_dir():
        raise ManifestError(f"{root} is not a directory: pass the directory written by `robot-meta export`")
    path = root / MANIFEST_FILE
    if path.is_symlink():
        raise ManifestError(
            f"{path} is a symlink (to {os.readlink(path)}): an export directory holds its own manifest; "
            "copy the real file in or re-export the run"
        )
    if not path.is_file():
        raise ManifestError(
            f"{path} not found: pass the directory written by `robot-meta export RUN --out DIR`"
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}): copy it again or re-export the run") from None
    manifest = _parse(root, doc)
    if verify:
        manifest.verify_all()
    return manifest
