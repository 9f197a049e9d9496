"""Shared fixtures, built once per session and shared by the integration and drill tiers:
generated audio (never downloaded), the sample corpora, one local Ray, an S3-compatible
server (moto) on 127.0.0.1, the features extracted once and the models trained once.

The tiers and the time budget: tests/tiers.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Ray Train's controller looks at its workers every 2 s by default: each state change of a
# run (started, reported, finished) waits for that look. The tests' runs last seconds, so they
# look every quarter second (inherited by the session's Ray and the clusters tests start).
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")

from tiers import (  # noqa: E402  the tiers and the time budget (tests/tiers.py)
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_terminal_summary,
)

__all__ = [
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    t = np.arange(16_000) / 16_000
    path = tmp_path / "tone.wav"
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000)
    return path


@pytest.fixture(scope="session")
def piper_corpus(tmp_path_factory) -> Path:
    """12 clips in the piper voice (clear enough for whisper tiny.en), all four labels."""
    from raymer.corpora.synth import synthesize_corpus

    return synthesize_corpus(tmp_path_factory.mktemp("piper_corpus"), clips=12, seed=7, speakers=1)


def write_silent_flac(path: Path, seconds: float, rate: int = 8_000) -> Path:
    """A decompression bomb: hours of silence in a few hundred KB of FLAC."""
    block = np.zeros(rate * 600, dtype=np.int16)
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC") as f:
        for _ in range(int(seconds // 600)):
            f.write(block)
    return path


def write_sparse_wav(path: Path, mb: float = 20, rate: int = 200) -> Path:
    """A WAV declaring a tiny sample rate: 20 MB of zeros at 200 Hz is 50,000 s (sparse)."""
    import struct

    size = int(mb * 1024 * 1024)
    header = (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", size)
    )  # fmt: skip
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + size)
    return path


def open_browser(microphone: Path | None = None):
    """Headless Chromium, as a user's browser (autoplay allowed: the page's player); with
    ``microphone`` (a WAV), its fake microphone plays that file once, allowed without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    if microphone is not None:
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument(f"--use-file-for-fake-audio-capture={microphone}%noloop")
    options.add_argument("--autoplay-policy=no-user-gesture-required")
    options.add_argument("--window-size=1200,1400")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@pytest.fixture(scope="session")
def browser():
    """``open_browser``: a headless Chromium for a test of the page (quit it when done)."""
    return open_browser


def pids_titled(part: str) -> list[int]:
    """Processes of this machine whose title holds ``part`` (Ray titles a worker process
    ``ray::<actor class>``), found in /proc: no dashboard needed."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and part in title:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def processes():
    """``pids_titled`` for a test that kills real processes."""
    return pids_titled


@pytest.fixture(scope="session")
def sparse_wav():
    """``write_sparse_wav`` for a test that needs its own size."""
    return write_sparse_wav


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    """Files that must be refused fast: two decompression bombs, a FIFO and a directory
    named like audio. (Each name is also its expected id.)"""
    root = tmp_path_factory.mktemp("hostile")
    fifo = root / "hostile-fifo.wav"
    os.mkfifo(fifo)
    folder = root / "hostile-dir.wav"
    folder.mkdir()
    return {
        "hostile-bomb": write_silent_flac(root / "hostile-bomb.flac", 2 * 3600),
        "hostile-sparse": write_sparse_wav(root / "hostile-sparse.wav"),
        "hostile-fifo": fifo,
        "hostile-dir": folder,
    }


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

    from raymer.runtime import warm_workers

    ray.init(
        num_cpus=2,
        object_store_memory=400 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,  # as raymer's own (console.verbose): workers log to Ray's files
        _system_config=warm_workers(2),  # as raymer's own local Ray: idle workers kept
    )
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
    empty = "," * (len(lines[0].split(",")) - 7)  # the manifest's columns after `template`
    extra = [
        f"bad/{n},bad-{n.split('.')[0]},sad,,joe,neutral,x{empty}"
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


SPEAKERS = ["en-gb_m3", "en-us_f2", "en-us_m1", "joe"]  # the multi-speaker corpus's


@pytest.fixture(scope="session")
def multi_speaker_corpus(tmp_path_factory) -> Path:
    """32 clips of 4 speakers (``SPEAKERS``), prepared as a user would (``raymer corpus
    prepare manifest --folds 3``: a ``fold`` column, no speaker in two folds)."""
    from raymer.corpora.prepare import prepare
    from raymer.corpora.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("multi")
    manifest = synthesize_corpus(root / "corpus", clips=32, seed=5, speakers=4)
    prepare("manifest", str(manifest), str(root / "prepared.csv"), folds=3)
    return root / "prepared.csv"


@pytest.fixture(scope="session")
def multi_speaker_features(ray_session, multi_speaker_corpus, tmp_path_factory) -> Path:
    """The multi-speaker corpus extracted with whisper tiny.en (configs/extract/tiny.yaml),
    once: the input of every training test."""
    from raymer.config import ExtractConfig, load_config
    from raymer.pipeline.extract import extract

    out = tmp_path_factory.mktemp("multi_features") / "extract"
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        [],
        input=str(multi_speaker_corpus),
        output=str(out),
    )
    assert extract(cfg).clips_ok == 32
    return out


def _train_config(features: Path | str, output: Path | str, *overrides: str):
    """The tests' training settings (one worker, small model, one test and one validation
    speaker), with ``overrides`` (key=value) on top. A test about distributed training asks
    for two workers (``resources.model.actors=2``): each worker is a process that imports
    torch and joins the gloo group, seconds of every run on 2 CPUs."""
    from raymer.config import TrainConfig, load_config

    return load_config(
        TrainConfig,
        None,
        [
            "resources.model.actors=1",
            "optim.batch_size=8",
            "optim.lr=0.001",  # a few epochs of a small model: the pace the tests were set at
            "model.hidden_dim=32",
            "data.test_speakers=[en-gb_m3]",
            "data.val_speakers=[en-us_f2]",
            *overrides,
        ],
        features=str(features),
        output=str(output),
    )


@pytest.fixture(scope="session")
def train_config():
    """``train_config(features, output, *overrides)``: the tests' TrainConfig."""
    return _train_config


class Trained(NamedTuple):
    """The session's trained models: a ``raymer compare`` output."""

    output: Path  # OUTPUT/{fusion,audio,text}/ (each a train output) + comparison.{json,md}
    config: object  # the TrainConfig it ran with
    result: dict  # what compare returned

    def run(self, modality: str = "fusion") -> Path:
        """One modality's train output folder (train_summary.json, checkpoints)."""
        return self.output / modality

    def summary(self, modality: str = "fusion") -> dict:
        import json

        return json.loads((self.run(modality) / "train_summary.json").read_text())


@pytest.fixture(scope="session")
def trained(multi_speaker_features, tmp_path_factory) -> Trained:
    """fusion, audio-only and text-only models trained once (``raymer compare``, 3 epochs,
    sentence template neutral-10 held out), shared by the compare, evaluate, infer, serve,
    export and library tests; multi-task (the label, arousal and valence the sample corpus
    rates), so every entry point answers dimensions too."""
    from raymer.training.compare import compare

    root = tmp_path_factory.mktemp("trained")
    cfg = _train_config(
        multi_speaker_features,
        root,
        "optim.epochs=3",
        "data.holdout={template: [neutral-10]}",
        "model.targets=[label, arousal, valence]",
    )
    return Trained(root, cfg, compare(cfg))
