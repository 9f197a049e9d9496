"""One local Ray for the whole session, and an S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A function returning a TCP port free on 127.0.0.1."""
    return _free_port


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto_server on 127.0.0.1; its address goes into the environment before Ray starts,
    so Ray's workers inherit it like any AWS setting."""
    port = _free_port()
    # The venv's own moto (pinned): another one on PATH may not speak pyarrow's multipart.
    exe = str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    proc.terminate()
    proc.wait(10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_session(s3_endpoint):
    import ray

    ray.init(num_cpus=2, object_store_memory=400 * 1024**2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def messy_corpus(piper_corpus, tmp_path_factory) -> Path:
    """The piper corpus plus every kind of bad input, in one manifest with relative paths."""
    root = piper_corpus.parent
    bad = root / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "garbage.wav").write_bytes(b"definitely not audio " * 50)
    (bad / "notes.flac").write_text("a text file with an audio name")
    good = (root / "joe" / "joe_00000.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(good[: len(good) // 3])
    t = np.arange(16_000 * 25) / 16_000
    soundfile.write(
        bad / "long.wav", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16_000
    )
    lines = piper_corpus.read_text().splitlines()
    extra = [
        f"bad/{n},bad-{n.split('.')[0]},sad,,joe,neutral,x"
        for n in (
            "empty.wav",
            "garbage.wav",
            "notes.flac",
            "truncated.wav",
            "long.wav",
            "missing.wav",
        )
    ]
    manifest = root / "messy.csv"
    manifest.write_text("\n".join(lines + extra) + "\n")
    return manifest


@pytest.fixture(scope="session")
def multi_speaker_features(ray_session, tmp_path_factory) -> Path:
    """32 clips, 4 speakers, extracted with whisper tiny.en: input for training tests."""
    from raymer.config import ExtractConfig, load_config
    from raymer.corpora.synth import synthesize_corpus
    from raymer.pipeline.extract import extract

    root = tmp_path_factory.mktemp("multi")
    manifest = synthesize_corpus(root / "corpus", clips=32, seed=5, speakers=4)
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        [],
        input=str(manifest),
        output=str(root / "extract"),
    )
    assert extract(cfg).clips_ok == 32
    return root / "extract"
