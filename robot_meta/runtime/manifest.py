"""``manifest.json`` of an exported policy: schema, validation and hash-checked file access.

Written by `robot_meta.export`, read by `AdaptivePolicy.load`. Imports only the standard library
and numpy, so the on-device runtime can read it without torch.

A manifest is refused (`ManifestError`, a message that says what to do) when its format version
is not `FORMAT_VERSION`, a required field is missing or malformed, a file entry points outside the
export directory (absolute path, ``..``, a symlink leading out), or a file's size or sha256 does not
match what the manifest records.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "ContextSpec",
    "HeadRule",
    "Manifest",
    "ManifestError",
    "load_manifest",
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


@dataclass(frozen=True)
class HeadRule:
    """The head adaptation rule of the manifest (the inner loop of meta-training)."""

    steps: int
    """K: full-batch SGD steps on the head."""
    lr: float
    """alpha: SGD step size."""
    gamma: float
    """Discount of the TD targets."""
    huber_delta: float
    """kappa: Huber threshold (TD errors are clipped to [-kappa, kappa] in the gradient)."""
    support_size: int
    """Transitions adapted on: the latest ones observed (as in meta-training's collection)."""
    n_step: int = 1
    """n of the n-step TD targets (1 = one-step)."""


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
    """Width of one packed transition row ``[obs, one_hot(a), r, next_obs]``."""


@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json`` (`raw` keeps the whole document)."""

    directory: Path
    algo: str
    env_id: str
    obs_dim: int
    n_actions: int
    feature_dim: int
    policy_file: str
    head_rule: HeadRule | None
    """None for ContextDQN (its adaptation is inference)."""
    context: ContextSpec | None
    files: dict[str, dict[str, Any]]
    raw: dict[str, Any]

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


def _positive_int(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = int(_need(doc, key, where, int))
    if value <= 0:
        raise ManifestError(f"manifest field {where}{key!r} must be a positive int, got {value}")
    return value


def _number(doc: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float:
    value = float(_need(doc, key, where, (int, float)))
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ManifestError(f"manifest field {where}{key!r}={value} is outside [{lo}, {hi}]")
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
    return name


def _parse(directory: Path, doc: Any) -> Manifest:
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
    algo = str(_need(doc, "algo", "", str))
    env_id = str(_need(doc, "env_id", "", str))
    obs = _need(doc, "observation", "", dict)
    obs_dim = _positive_int(obs, "dim", "observation.")
    if _need(obs, "dtype", "observation.", str) != "float32":
        raise ManifestError("manifest field observation.dtype must be 'float32': re-export the run")
    layout = _need(obs, "layout", "observation.", list)
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
    _need(doc, "normalizer", "", dict)
    _need(doc, "train_distribution", "", (dict, type(None)))
    _need(doc, "producer", "", dict)
    adaptation = _need(doc, "adaptation", "", dict)
    rule_name = _need(adaptation, "rule", "adaptation.", str)
    files_doc = _need(doc, "files", "", dict)
    files: dict[str, dict[str, Any]] = {}
    for name, entry in files_doc.items():
        _safe_name(directory, name)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or len(entry["sha256"]) != 64
        ):
            raise ManifestError(f"manifest files[{name!r}] needs a 64-hex-digit 'sha256': re-export the run")
        files[name] = dict(entry)
    graphs = _need(doc, "graphs", "", dict)
    policy_file = _safe_name(directory, _need(graphs, "policy", "graphs.", str))
    if policy_file not in files:
        raise ManifestError(
            f"manifest graphs.policy={policy_file!r} has no entry in 'files': re-export the run"
        )
    head_rule: HeadRule | None = None
    context: ContextSpec | None = None
    if rule_name == "head_td_sgd":
        head_rule = HeadRule(
            steps=_positive_int(adaptation, "steps", "adaptation."),
            lr=_number(adaptation, "lr", "adaptation.", 1e-12, 1e6),
            gamma=_number(adaptation, "gamma", "adaptation.", 0.0, 1.0),
            huber_delta=_number(adaptation, "huber_delta", "adaptation.", 1e-12, 1e12),
            support_size=_positive_int(adaptation, "support_size", "adaptation."),
            n_step=_positive_int(adaptation, "n_step", "adaptation.") if "n_step" in adaptation else 1,
        )
    elif rule_name == "context_inference":
        enc_file = _safe_name(directory, _need(graphs, "encoder", "graphs.", str))
        if enc_file not in files:
            raise ManifestError(f"manifest graphs.encoder={enc_file!r} has no entry in 'files': re-export")
        ctx = _need(doc, "context", "", dict)
        context = ContextSpec(
            file=enc_file,
            latent_dim=_positive_int(ctx, "latent_dim", "context."),
            context_size=_positive_int(adaptation, "context_size", "adaptation."),
            transition_dim=_positive_int(ctx, "transition_dim", "context."),
        )
        if context.transition_dim != 2 * obs_dim + n_actions + 1:
            raise ManifestError("manifest context.transition_dim does not match the observation and actions")
    else:
        raise ManifestError(
            f"manifest adaptation.rule {rule_name!r} is unknown to this runtime "
            "(expected 'head_td_sgd' or 'context_inference'): update robot_meta on the device"
        )
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
        raw=doc,
    )


def load_manifest(directory: str | Path, *, verify: bool = True) -> Manifest:
    """Read and validate ``DIR/manifest.json``; with `verify`, check every listed file's size and sha256."""
    root = Path(directory)
    if not root.is_dir():
        raise ManifestError(f"{root} is not a directory: pass the directory written by `robot-meta export`")
    path = root / MANIFEST_FILE
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
