"""Joining a real Ray cluster: ``ray start --head`` with token authentication on loopback, joined by
``robot-meta train --ray-address``; the checkpoint equals the local backend's bit for bit, and a
client without the right token fails at once (before ray.init) with what to do.

The head runs with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` so that Ray keeps every address on
127.0.0.1 (by default it replaces loopback by the machine's outward address), in its own temp dir,
HOME and process session, and is stopped (its whole process group) when the module ends.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from robot_meta.cli import main
from robot_meta.meta import CHECKPOINT_FILE

# find_spec, not importorskip: importing Ray at collection would fix its node-address rule before the
# local backend's tests start their instance (they check it binds to loopback).
if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed", allow_module_level=True)

from robot_meta.distributed.ray_backend import RayAuthError, _prepare_auth, check_auth

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
ROBOT_META = Path(sys.executable).parent / "robot-meta"
TOKEN = "robot-meta-test-token-5f0c2a9e1b7d4e3f"
ENV_ID = "robot_meta/PandaReach-v0"
RAY_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RAY_VARS}
    env.update(HOME=str(home), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


@dataclass
class Head:
    address: str
    root: Path


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    root = Path(tempfile.mkdtemp(prefix="rmray"))  # short: Ray's socket paths live under it
    (root / "home").mkdir()
    token_file = root / "head_token"
    token_file.write_text(TOKEN)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = (root / "head.log").open("w")
    proc = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--temp-dir={root / 't'}",
            "--disable-usage-stats",
        ],
        env=_env(root / "home", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file)),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the teardown stops exactly this cluster
    )
    try:
        deadline = time.monotonic() + 60
        while check_auth(address, TOKEN, timeout=1.0) is not True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not come up: {(root / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Head(address, root)
    finally:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # the raylet's children too: nothing of this cluster survives the module
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _train_argv(out: Path, *extra: str) -> list[str]:
    return ["train", "--algo", "reptile", "--env", ENV_ID, "--budget", "smoke", "--out", str(out), *extra]


def _cli(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The console script in a fresh process (its own Ray client, environment and HOME)."""
    return subprocess.run(
        [str(ROBOT_META), *argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _checkpoint(run: Path) -> dict[str, object]:
    ckpt = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert ckpt["counters"]["updates"] > 0
    return {"counters": ckpt["counters"], **ckpt["models"]["qnet"]}


def test_head_requires_the_token(ray_head: Head) -> None:
    assert check_auth(ray_head.address, None) is False
    assert check_auth(ray_head.address, "not-the-token") is False
    assert check_auth(ray_head.address, TOKEN) is True


def test_join_with_the_default_token_file_gives_the_local_weights(ray_head: Head, tmp_path: Path) -> None:
    # The client has the head's token where Ray looks by default (~/.ray/auth_token) and no RAY_AUTH_MODE:
    # the backend turns token mode on, as Ray does for address="auto".
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(TOKEN + "\n")
    t0 = time.monotonic()
    proc = _cli(_train_argv(tmp_path / "cluster", "--ray-address", ray_head.address), _env(home))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - t0 < 120
    assert main(_train_argv(tmp_path / "local")) == 0
    cluster, local = _checkpoint(tmp_path / "cluster"), _checkpoint(tmp_path / "local")
    assert cluster.keys() == local.keys()
    for key, value in local.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, cluster[key]), (
                f"{key} differs between the cluster and the local backend"
            )
        else:
            assert value == cluster[key]


def test_join_without_a_token_fails_in_one_line_naming_authentication(ray_head: Head, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    out = tmp_path / "run"
    proc = _cli(_train_argv(out, "--ray-address", ray_head.address), _env(tmp_path / "home"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("pybullet build time")]
    assert len(lines) == 1, proc.stderr  # one line, no pages of Ray retries
    assert lines[0].startswith("error: the Ray cluster at 127.0.0.1:")
    assert "requires token authentication and this process has no token" in lines[0]
    assert "ray get-auth-token" in lines[0] and "~/.ray/auth_token" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, r"requires token authentication and this process has no token"),
        (
            {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"},
            r"rejected the token from RAY_AUTH_TOKEN",
        ),
        (
            {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": TOKEN},
            r"RAY_AUTH_MODE=disabled here.*set RAY_AUTH_MODE=token",
        ),
        (
            {"RAY_AUTH_TOKEN_PATH": "/nonexistent/token"},
            r"RAY_AUTH_TOKEN_PATH=/nonexistent/token cannot be read",
        ),
    ],
)
def test_wrong_token_or_mode_is_named(
    ray_head: Head, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in RAY_VARS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    t0 = time.monotonic()
    with pytest.raises(RayAuthError, match=expected):
        _prepare_auth(ray_head.address)
    # refused before ray.init, whose retries take about 25 s (measured in the CLI's start-up-free path)
    assert time.monotonic() - t0 < 5.0
    assert os.environ.get("RAY_AUTH_MODE") == env.get("RAY_AUTH_MODE")  # an explicit mode is never changed
