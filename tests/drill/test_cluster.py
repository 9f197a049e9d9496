"""A real two-node Ray cluster on this machine (head and worker as separate `ray start`
processes on 127.0.0.1, token authentication on), an S3-compatible server (moto) as the
shared storage, and `raymer submit` / `raymer jobs` driving it like a user would."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from raymer import storage

RAY = str(Path(sys.executable).parent / "ray")
RAYMER = str(Path(sys.executable).parent / "raymer")
# A loopback address that Ray does not rewrite: it replaces 127.0.0.1 in `--address` by the
# machine's outward address, where a head bound to loopback does not listen.
NODE_IP = "127.0.0.2"


def _ray_start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [RAY, "start", "--block", f"--node-ip-address={NODE_IP}", *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _node_ports(free_port) -> list[str]:
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        "--object-store-memory=200000000",
        "--num-cpus=1",
    ]


def _stop(procs: list[subprocess.Popen]) -> None:
    """What the test started, and only that (`ray stop` would stop every Ray here): each node
    asked to stop at once (a node drains for up to 30 s), then its process group killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(s3_endpoint, free_port, tmp_path_factory):
    """(dashboard URL, token, client environment): a head and a worker, 1 CPU each."""
    root = tmp_path_factory.mktemp("cluster")
    # Ray's unix sockets live under --temp-dir and their paths must stay under 108 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    token = secrets.token_hex(16)
    env = os.environ | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "HF_HUB_OFFLINE": "1",
        # the nodes run jobs with the `python` on their PATH: this venv's, as after `activate`
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)
    gcs, dash = free_port(), free_port()
    head = _ray_start(
        [
            "--head",
            f"--port={gcs}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={temp_dir}",
            *_node_ports(free_port),
        ],
        env,
        root / "head.log",
    )
    worker = None
    try:
        url = f"http://127.0.0.1:{dash}"
        auth = {"Authorization": f"Bearer {token}"}
        _wait(lambda: requests.get(f"{url}/api/version", headers=auth, timeout=5).ok, 120)
        # A second node may only join with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1; its addresses
        # stay on loopback through --node-ip-address.
        worker = _ray_start(
            [f"--address={NODE_IP}:{gcs}", *_node_ports(free_port)],
            env | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"},
            root / "worker.log",
        )
        _wait(lambda: len(_alive_nodes(url, auth)) == 2, 120)
        yield url, token, env
    finally:
        _stop([proc for proc in (worker, head) if proc is not None])
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait(ready, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the test cluster did not come up")
        time.sleep(1)


def _alive_nodes(url: str, auth: dict) -> list[dict]:
    r = requests.get(f"{url}/api/v0/nodes", headers=auth, timeout=10).json()
    return [n for n in r["data"]["result"]["result"] if n["state"] == "ALIVE"]


def _raymer(args: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAYMER, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=Path.cwd()
    )


def _upload_corpus(tmp_path: Path, s3_endpoint: str, env: dict) -> str:
    import boto3

    from raymer.corpora.synth import synthesize_corpus

    manifest = synthesize_corpus(tmp_path / "corpus", clips=16, seed=11, speakers=4)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="shared")
    copied = _raymer(["copy", str(manifest.parent), "s3://shared/corpus"], env, 120)
    assert copied.returncode == 0, copied.stderr
    assert "copied 18 files" in copied.stdout  # 16 clips, the manifest, the .complete mark
    return "s3://shared/corpus/manifest.csv"


def test_submitted_extraction_and_training_on_two_nodes_with_s3(cluster, s3_endpoint, tmp_path):
    url, token, env = cluster
    manifest = _upload_corpus(tmp_path, s3_endpoint, env)

    extract = _raymer(
        [
            "submit",
            "extract",
            "--address",
            url,
            "--config",
            "configs/extract/tiny.yaml",
            "--input",
            manifest,
            "--output",
            "s3://shared/runs/extract",
        ],
        env,
    )
    assert extract.returncode == 0, extract.stdout[-3000:] + extract.stderr[-3000:]
    assert "extract: 16 clips ok, 0 failed" in extract.stdout
    assert "SUCCEEDED" in extract.stdout
    assert len(storage.list_files("s3://shared/runs/extract/features", (".parquet",))) >= 1

    train = _raymer(
        [
            "submit",
            "train",
            "--address",
            url,
            "--features",
            "s3://shared/runs/extract",
            "--output",
            "s3://shared/runs/train",
            "resources.model.actors=2",
            "resources.model.num_cpus=0.4",
            "optim.epochs=2",
            "optim.batch_size=8",
            "model.hidden_dim=32",
            "data.test_speakers=[en-gb_m3]",
            "data.val_speakers=[en-us_f2]",
        ],
        env,
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "best checkpoint: s3://shared/runs/train/" in train.stdout
    assert storage.exists("s3://shared/runs/train/train_summary.json")

    for out in (extract, train):  # the token is a secret: never printed
        assert token not in out.stdout + out.stderr

    listed = _raymer(["jobs", "list", "--address", url, "--json"], env, 60)
    assert listed.returncode == 0, listed.stderr
    jobs = {j["command"]: j for j in json.loads(listed.stdout)}
    assert jobs["extract"]["status"] == jobs["train"]["status"] == "SUCCEEDED"
    logs = _raymer(["jobs", "logs", jobs["extract"]["job"], "--address", url], env, 60)
    assert "extract: 16 clips ok" in logs.stdout
    status = _raymer(["jobs", "status", jobs["train"]["job"], "--address", url], env, 60)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout


def test_submit_without_the_token_is_refused_clearly(cluster):
    url, token, env = cluster
    no_token = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN",)}
    no_token["RAY_AUTH_TOKEN_PATH"] = "/nonexistent/raymer-test-token"
    no_token["RAY_AUTH_MODE"] = "disabled"
    r = _raymer(["jobs", "list", "--address", url], no_token, 60)
    assert r.returncode == 2
    assert "authentication token" in r.stderr and "RAY_AUTH_TOKEN" in r.stderr
    assert token not in r.stdout + r.stderr


def test_submit_checks_settings_before_sending(cluster):
    url, _, env = cluster
    r = _raymer(
        ["submit", "train", "--address", url, "--features", "s3://x/f", "--output", "s3://x/o"]
        + ["resources.model.actors=0"],
        env,
        60,
    )
    assert (
        r.returncode == 2 and "resources.model.actors" in r.stderr and "submitted" not in r.stdout
    )
    r = _raymer(["submit", "extract", "--address", "127.0.0.1:6379"], env, 60)
    assert r.returncode == 2 and "dashboard" in r.stderr
