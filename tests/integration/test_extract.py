"""raymer extract on a real local Ray with real models (whisper tiny.en, MiniLM)."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest

from raymer.audio.prosody import PROSODY_DIM
from raymer.config import ExtractConfig, load_config
from raymer.contract.schema import FEATURES_SCHEMA
from raymer.pipeline.extract import extract
from raymer.wer import word_errors

OVERRIDES = [
    "asr_model=whisper-tiny.en",
    "beam_size=1",
    "batch_size=4",
    "resources.asr.actors=1",
    "decode.max_duration_s=20",
]
BAD = {
    "bad-empty": "empty file",
    "bad-garbage": "not a readable audio file",
    "bad-notes": "not a readable audio file",
    "bad-truncated": "truncated",
    "bad-long": "over decode.max_duration_s=20",
    "bad-missing": "file not found",
}


def _cfg(input_uri: str, output_uri: str, *extra: str) -> ExtractConfig:
    return load_config(
        ExtractConfig, None, [*OVERRIDES, *extra], input=input_uri, output=output_uri
    )


@pytest.fixture(scope="module")
def extracted(ray_session, messy_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    summary = extract(_cfg(str(messy_corpus), str(out)))
    return summary, out


def test_good_clips_written_bad_clips_reported(extracted, piper_corpus):
    summary, out = extracted
    features = pq.read_table(out / "features")
    expected = [r["id"] for r in csv.DictReader(piper_corpus.open())]
    assert sorted(features.column("id").to_pylist()) == sorted(expected)
    errors = {r["id"]: r for r in pq.read_table(out / "errors" / "errors.parquet").to_pylist()}
    assert set(errors) == set(BAD)
    for rid, reason in BAD.items():
        assert reason in errors[rid]["error"], errors[rid]
    assert (summary.clips_ok, summary.clips_failed, summary.skipped) == (12, 6, 0)
    assert summary.audio_hours > 0 and summary.wer is not None
    assert len(summary.error_examples) == 5 and all(": " in e for e in summary.error_examples)


def test_schema_and_carried_columns(extracted):
    _, out = extracted
    table = pq.read_table(out / "features")
    assert table.schema.names[: len(FEATURES_SCHEMA)] == FEATURES_SCHEMA.names
    for field in FEATURES_SCHEMA:
        assert table.schema.field(field.name).type == field.type, field.name
    assert {"clip_type", "template"} <= set(table.schema.names)
    row = table.to_pylist()[0]
    assert row["label"] in {"angry", "happy", "sad", "neutral"} and row["speaker"] == "joe"
    assert row["clip_type"] in {"congruent", "audio_cue", "text_cue", "neutral"}


def test_transcripts_and_embeddings(extracted):
    _, out = extracted
    rows = pq.read_table(out / "features").to_pylist()
    edits = [word_errors(r["reference_text"], r["transcript"]) for r in rows]
    assert sum(e for e, _ in edits) / sum(n for _, n in edits) < 0.25
    for r in rows:
        frames = np.asarray(r["audio_frames"], dtype=np.float32)
        tokens = np.asarray(r["text_tokens"], dtype=np.float32)
        # the Whisper columns, then the prosody extract's default adds
        assert frames.shape[1] == 384 + PROSODY_DIM
        assert abs(frames.shape[0] - r["duration_s"] * 10) <= 1
        # the text encoder extract's default gives: mpnet-base, 768-d
        assert tokens.shape[1] == 768 and tokens.shape[0] >= 3 and r["text_model"] == "mpnet-base"
        assert len(r["audio_embedding"]) == 384 and len(r["text_embedding"]) == 768
        for arr in (frames, tokens, r["audio_embedding"], r["text_embedding"]):
            assert np.isfinite(arr).all()
        assert np.isclose(np.linalg.norm(r["text_embedding"]), 1.0, atol=1e-4)
        assert r["segments"] and r["segments"][-1]["end"] <= r["duration_s"] + 0.5
        assert r["text_source"] == "asr" and r["asr_model"] == "whisper-tiny.en"
        assert (
            abs(
                r["wer"]
                - word_errors(r["reference_text"], r["transcript"])[0]
                / word_errors(r["reference_text"], "")[1]
            )
            < 1e-6
        )


def test_rerun_resumes_without_duplicates(extracted, messy_corpus, monkeypatch):
    """read -> resume -> stream -> finish: the re-run is the inputs' execution, the stream
    (which finds nothing left) and one aggregation, and writes no file."""
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    _, out = extracted
    before = pq.read_table(out / "features").num_rows
    files = sorted(p.name for p in (out / "features").iterdir())
    started, execute = [], StreamingExecutor.execute

    def counted(self, *args, **kwargs):
        started.append(1)
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(StreamingExecutor, "execute", counted)
    summary = extract(_cfg(str(messy_corpus), str(out)))
    ids = pq.read_table(out / "features").column("id").to_pylist()
    assert (summary.clips_ok, summary.skipped) == (0, 12)
    assert len(ids) == len(set(ids)) == before
    assert len(started) <= 4, len(started)  # first path (auto), inputs, stream, sums
    assert sorted(p.name for p in (out / "features").iterdir()) == files
    assert summary.clips_failed == 6  # failures are retried, and still fail


def test_a_finished_output_rerun_starts_no_ray_until_something_changed(
    multi_speaker_corpus, multi_speaker_features, tmp_path, monkeypatch
):
    """A re-run of an output whose last run failed nothing, with nothing changed since,
    answers from that run's marker and starts no Ray; a clip added to the manifest, or a
    features file gone, is noticed, and the usual resume does just what is missing."""
    import shutil

    import raymer.pipeline.extract as module

    out = tmp_path / "out"
    shutil.copytree(multi_speaker_features, out)
    real_init = module.init_ray

    def refused():
        raise AssertionError("Ray was started with nothing to do")

    def run(manifest, ray: bool):
        monkeypatch.setattr(module, "init_ray", real_init if ray else refused)
        cfg = load_config(
            ExtractConfig, "configs/extract/tiny.yaml", [], input=str(manifest), output=str(out)
        )
        summary = extract(cfg)
        return summary.clips_ok, summary.clips_failed, summary.skipped

    files = sorted(p.name for p in (out / "features").iterdir())
    assert run(multi_speaker_corpus, ray=False) == (0, 0, 32)
    assert sorted(p.name for p in (out / "features").iterdir()) == files
    more = multi_speaker_corpus.with_name("prepared_plus_one.csv")
    shutil.copy(multi_speaker_corpus, more)
    with open(multi_speaker_corpus) as f:
        first = next(csv.DictReader(f))
    with open(more, "a", newline="") as f:  # the same audio under a new id
        csv.DictWriter(f, list(first)).writerow(dict(first, id="added-1"))
    assert run(more, ray=True) == (1, 0, 32)
    assert run(more, ray=False) == (0, 0, 33)
    added = [p for p in (out / "features").iterdir() if p.name not in files]
    assert len(added) == 1
    added[0].unlink()  # the output changed: the clip is done again
    assert run(more, ray=True) == (1, 0, 32)
    assert pq.read_table(out / "features").num_rows == 33


def test_resume_false_starts_over_instead_of_adding_rows(extracted, messy_corpus, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(extracted[1], out)
    before = sorted(p.name for p in (out / "features").iterdir())
    summary = extract(_cfg(str(messy_corpus), str(out), "resume=false"))
    ids = pq.read_table(out / "features").column("id").to_pylist()
    assert (summary.clips_ok, summary.skipped) == (12, 0)
    assert len(ids) == len(set(ids)) == 12  # replaced, not appended
    assert not set(before) & {p.name for p in (out / "features").iterdir()}


def test_other_settings_and_a_second_run_are_refused(extracted, messy_corpus):
    """Nothing is written by either refusal: the output stays as the first run left it."""
    from raymer.pipeline.lease import Lease, OutputInUse
    from raymer.pipeline.outputs import SettingsMismatch

    _, out = extracted
    before = sorted(p.name for p in (out / "features").iterdir())
    with pytest.raises(SettingsMismatch, match="beam_size: 1 then, 2 now.*--redo"):
        extract(_cfg(str(messy_corpus), str(out), "beam_size=2"))
    with Lease(str(out)), pytest.raises(OutputInUse, match="another run is writing"):
        extract(_cfg(str(messy_corpus), str(out)))
    assert sorted(p.name for p in (out / "features").iterdir()) == before
    assert (out / "_SUCCESS.json").exists() and not (out / "_lease.json").exists()


def test_partial_file_from_a_crash_is_redone(extracted, messy_corpus, tmp_path):
    import shutil

    out = tmp_path / "copy"  # the module's finished output, as a crash would have left it
    shutil.copytree(extracted[1], out)
    files = sorted((out / "features").glob("*.parquet"))
    lost = pq.read_table(files[0]).num_rows
    files[0].write_bytes(files[0].read_bytes()[:100])  # cut short, as by a killed writer
    summary = extract(_cfg(str(messy_corpus), str(out)))
    ids = pq.read_table(out / "features").column("id").to_pylist()
    assert summary.clips_ok == lost and summary.skipped == 12 - lost
    assert len(ids) == len(set(ids)) == 12


def test_reference_text_source_and_manifest_columns_named_like_outputs(
    ray_session, piper_corpus, tmp_path, caplog
):
    """A manifest with lhotse/NeMo-style ``duration_s`` and ``transcript`` columns: they are
    kept as ``manifest_<name>`` (with a warning), never a clash with the output columns."""
    rows = list(csv.DictReader(piper_corpus.open()))
    for i, row in enumerate(rows):
        row["path"] = str(piper_corpus.parent / row["path"])
        row |= {"duration_s": f"{90 + i}.5", "transcript": f"manual {i}", "label_raw": f"L{i}"}
    manifest = _manifest(tmp_path / "colliding.csv", rows)
    with caplog.at_level("WARNING", logger="raymer"):
        extract(_cfg(manifest, str(tmp_path / "out"), "text_source=reference"))
    assert "duration_s -> manifest_duration_s" in caplog.text
    assert "transcript -> manifest_transcript" in caplog.text
    assert "label_raw" not in caplog.text  # no clash, kept under its own name
    table = pq.read_table(tmp_path / "out" / "features")
    assert table.schema.names[: len(FEATURES_SCHEMA)] == FEATURES_SCHEMA.names
    got = {r["id"]: r for r in table.to_pylist()}
    assert len(got) == len(rows)
    for i, row in enumerate(rows):
        out = got[row["id"]]
        assert out["text_source"] == "reference"
        assert out["manifest_duration_s"] == 90.5 + i  # carried with its type (CSV: a number)
        assert out["manifest_transcript"] == f"manual {i}"
        assert out["label_raw"] == f"L{i}"
        assert 0 < out["duration_s"] < 20  # the decoded duration, not the manifest's
        assert out["transcript"] != f"manual {i}"  # Whisper's


def _manifest(path, rows: list[dict]) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.mark.drill
def test_hostile_files_and_a_poison_clip_cost_only_themselves(
    ray_session, piper_corpus, hostile_files, tmp_path, monkeypatch
):
    """10 good clips, then the same with two decompression bombs, a FIFO, a directory and a
    clip that kills its Whisper worker every time (RAYMER_DRILL=poison:ID): the second run writes
    the 9 others once each, reports the rest with the reason, and takes about as long as the
    first plus the poison clip's three worker restarts."""
    import time

    with open(piper_corpus) as f:
        good = [r | {"path": str(piper_corpus.parent / r["path"])} for r in csv.DictReader(f)]
    good = good[:10]
    hostile = [good[0] | {"id": name, "path": str(path)} for name, path in hostile_files.items()]
    started = time.perf_counter()
    base = extract(_cfg(_manifest(tmp_path / "good.csv", good), str(tmp_path / "base")))
    base_s = time.perf_counter() - started
    assert base.clips_ok == 10 and base.clips_failed == 0

    poison = good[3]["id"]
    monkeypatch.setenv("RAYMER_DRILL", f"poison:{poison}")
    started = time.perf_counter()
    out = tmp_path / "hostile"
    summary = extract(_cfg(_manifest(tmp_path / "all.csv", good + hostile), str(out)))
    hostile_s = time.perf_counter() - started

    written = pq.read_table(out / "features", columns=["id"]).column("id").to_pylist()
    assert sorted(written) == sorted(r["id"] for r in good if r["id"] != poison)
    errors = {r["id"]: r["error"] for r in pq.read_table(out / "errors").to_pylist()}
    assert set(errors) == {*hostile_files, poison}, errors
    assert "its header says" in errors["hostile-bomb"]
    assert "200 Hz" in errors["hostile-sparse"]
    assert "not a regular file: it is a named pipe" in errors["hostile-fifo"]
    assert "not a regular file: it is a directory" in errors["hostile-dir"]
    assert "the worker processing this clip died 3 times" in errors[poison]
    assert summary.clips_ok == 9 and summary.clips_failed == 5
    # the poison clip costs its three worker restarts (Whisper loaded again each time, a few
    # seconds), the hostile files nothing: a retry storm would cost minutes
    assert hostile_s < 2 * base_s + 15, (hostile_s, base_s)


@pytest.mark.drill
def test_a_driver_killed_midway_then_rerun_writes_every_clip_once(
    ray_session, piper_corpus, tmp_path, processes
):
    """`raymer extract` killed with SIGKILL while its Whisper actors work; the re-run takes
    over the dead run's lease at once (its process is gone) and writes each clip once."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "killed"
    raymer = str(Path(sys.executable).parent / "raymer")
    env = os.environ | {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(
        [raymer, "extract", "--input", str(piper_corpus), "--output", str(out), *OVERRIDES],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while not processes("WhisperStage"):
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the Whisper actors never started"
        time.sleep(0.5)
    time.sleep(2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert (out / "_lease.json").exists() and not (out / "_SUCCESS.json").exists()

    summary = extract(_cfg(str(piper_corpus), str(out)))
    ids = pq.read_table(out / "features", columns=["id"]).column("id").to_pylist()
    with open(piper_corpus) as f:
        assert sorted(ids) == sorted(r["id"] for r in csv.DictReader(f))  # each once
    assert summary.clips_failed == 0 and (out / "_SUCCESS.json").exists()
