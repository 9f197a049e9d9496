"""``raymer corpus inspect`` on a manifest of good clips, hostile files (a decompression
bomb, a sparse WAV of a tiny rate, a FIFO, a folder), broken ones (empty, cut short, not
audio, missing) and an id given twice: the survey agrees with the files, and each file
extract refuses is flagged with the very stage and reason ``raymer extract`` gives it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile


@pytest.fixture(scope="module")
def messy(piper_corpus, hostile_files, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("inspect")
    good = list(csv.DictReader(piper_corpus.open()))[:3]
    rows = [r | {"path": str(piper_corpus.parent / r["path"])} for r in good]
    noise = (0.05 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    soundfile.write(root / "cut.wav", noise, 16_000)
    data = (root / "cut.wav").read_bytes()
    (root / "cut.wav").write_bytes(data[: len(data) // 2])
    (root / "empty.wav").write_bytes(b"")
    (root / "text.flac").write_bytes(b"not audio\n" * 100)
    broken = {name: root / f"{name}.{ext}" for name, ext in (("cut", "wav"), ("empty", "wav"))}
    broken |= {"text": root / "text.flac", "missing": root / "missing.wav"}
    odd = {**hostile_files, **broken}
    rows += [good[0] | {"id": name, "path": str(path)} for name, path in odd.items()]
    rows.append(rows[0])  # an id twice
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"manifest": manifest, "good": rows[: len(good)], "odd": odd, "root": root}


def test_the_survey_says_what_the_files_are_and_what_extract_would_refuse(
    ray_session, messy, tmp_path
):
    from raymer.config import ExtractConfig, load_config
    from raymer.pipeline.extract import extract
    from raymer.pipeline.inspect import inspect_corpus

    survey = inspect_corpus(str(messy["manifest"]), str(tmp_path / "survey"))
    infos = [soundfile.info(r["path"]) for r in messy["good"]]
    n, odd = len(infos), len(messy["odd"])
    assert (survey.clips, survey.readable) == (n + odd + 1, n + 1)  # the id twice: read twice
    assert survey.counts["sample_rate"] == {str(infos[0].samplerate): n + 1}
    assert survey.counts["container"] == {"wav": n + 1}
    durations = sorted(i.duration for i in infos)
    assert survey.durations_s["min"] == pytest.approx(durations[0], abs=0.01)
    assert survey.durations_s["max"] == pytest.approx(durations[-1], abs=0.01)
    seconds = sum(i.duration for i in infos) + infos[0].duration
    assert survey.hours * 3600 == pytest.approx(seconds, abs=0.01 * (n + 1))
    labels = [r["label"] for r in messy["good"]]
    assert sum(survey.counts["label"].values()) == n + odd + 1
    assert survey.counts["label"][labels[0]] == labels.count(labels[0]) + odd + 1
    assert survey.duplicate_ids == 1 and survey.duplicate_examples[0]["rows"] == 2
    assert sum(survey.problems.values()) == odd
    saved = json.loads((tmp_path / "survey" / "inspect.json").read_text())
    assert saved["clips"] == survey.clips and saved["problems"] == survey.problems
    flagged = {r["id"]: r for r in pq.read_table(tmp_path / "survey" / "problems").to_pylist()}
    assert set(flagged) == set(messy["odd"])
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        [],
        input=str(messy["manifest"]),
        output=str(tmp_path / "extract"),
    )
    extract(cfg)
    refused = pq.read_table(tmp_path / "extract" / "errors" / "errors.parquet").to_pylist()
    refused = {r["id"]: r for r in refused if r["stage"] != "manifest"}  # not the id twice
    assert set(refused) == set(flagged)
    for rid, row in flagged.items():  # the very stage and words extract gives it
        assert (row["stage"], row["error"]) == (refused[rid]["stage"], refused[rid]["error"])


def test_the_command_prints_the_survey(ray_session, messy, tmp_path):
    """``raymer corpus inspect`` as a user runs it (on the session's Ray: RAY_ADDRESS)."""
    raymer = str(Path(sys.executable).with_name("raymer"))
    env = os.environ | {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    done = subprocess.run(
        [raymer, "corpus", "inspect", str(messy["manifest"]), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    survey = json.loads(done.stdout)
    assert survey["readable"] == len(messy["good"]) + 1 and survey["duplicate_ids"] == 1
    shown = subprocess.run(
        [raymer, "corpus", "inspect", str(messy["root"] / "nothing.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert shown.returncode != 0 and "does not exist" in shown.stderr
