"""raymer recognize: a corpus of short clips, a long recording, noise and broken files, through
one streaming Ray Data job with a checkpoint written by `raymer train` (real models)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile

from raymer.wer import normalize_words

CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoint-0.1.0"
GAP_S = 2.5


@pytest.fixture(scope="module")
def corpus(piper_corpus, hostile_files, tmp_path_factory) -> dict:
    """Short clips, one recording of 8 clips joined by 2.5 s silences (~55 s), 6 s of noise,
    and two broken files, in a manifest with columns named like output columns."""
    root = tmp_path_factory.mktemp("recognize_corpus")
    with open(piper_corpus) as f:
        clips = list(csv.DictReader(f))
    parts, bounds, start = [], [], 0.0
    for clip in clips[:8]:
        audio, rate = soundfile.read(piper_corpus.parent / clip["path"], dtype="float32")
        assert rate == 16_000
        parts += [audio, np.zeros(int(GAP_S * rate), np.float32)]
        bounds.append((start, start + len(audio) / rate, clip["text"]))
        start += len(audio) / rate + GAP_S
    soundfile.write(root / "call.flac", np.concatenate(parts), 16_000)
    rng = np.random.default_rng(0)
    soundfile.write(
        root / "noise.wav", (0.1 * rng.standard_normal(6 * 16_000)).astype(np.float32), 16_000
    )
    (root / "junk.wav").write_bytes(b"this is not audio " * 50)
    (root / "empty.wav").write_bytes(b"")
    rows = []
    for c in clips[8:11]:  # as a recorder makes them: 44.1 kHz stereo FLAC
        audio, _ = soundfile.read(piper_corpus.parent / c["path"], dtype="float32")
        t = np.arange(int(len(audio) * 44_100 / 16_000)) / 44_100
        resampled = np.interp(t, np.arange(len(audio)) / 16_000, audio).astype(np.float32)
        soundfile.write(root / f"{c['id']}.flac", np.stack([resampled, 0.8 * resampled], 1), 44_100)
        rows.append({"path": str(root / f"{c['id']}.flac"), "id": c["id"], "text": c["text"]})
    rows += [
        {"path": name, "id": name.split(".")[0], "text": ""}
        for name in ("call.flac", "noise.wav", "junk.wav", "empty.wav")
    ]
    rows += [{"path": str(p), "id": n, "text": ""} for n, p in hostile_files.items()]
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "id", "text", "label", "duration_s"])
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {"label": "unknown", "duration_s": "1.5"})
    return {"manifest": manifest, "bounds": bounds, "short": [c["id"] for c in clips[8:11]]}


@pytest.fixture(scope="module")
def recognized(ray_session, corpus, tmp_path_factory):
    from raymer.config.recognize import RecognizeConfig
    from raymer.pipeline.recognize import recognize

    out = tmp_path_factory.mktemp("recognized")
    cfg = RecognizeConfig(
        input=str(corpus["manifest"]),
        checkpoint=str(CHECKPOINT),
        output=str(out),
        segment={"chunk_s": 60},  # the 55 s recording is decoded and cut in more than one chunk
        decode={"max_duration_s": 3600},  # the 2-hour bomb is refused from its header
        batch_size=4,
        # the default two Whisper actors (1 CPU) and the model actor (0.25) leave 0.75 of the
        # session's 2 CPUs: every other task of the stream must fit in what is left
    )
    return recognize(cfg), out, cfg


def _predictions(out: Path) -> list[dict]:
    return sorted(
        pq.read_table(out / "predictions").to_pylist(), key=lambda r: (r["id"], r["segment"])
    )


def _overlap(reference: str, transcript: str) -> float:
    ref, hyp = normalize_words(reference), set(normalize_words(transcript))
    return sum(w in hyp for w in ref) / max(1, len(ref))


def test_short_clips_are_one_segment_each(recognized, corpus):
    summary, out, _ = recognized
    rows = [r for r in _predictions(out) if r["id"] in corpus["short"]]
    assert [r["segment"] for r in rows] == [0, 0, 0]
    for r in rows:
        assert not r["no_speech"] and r["label"] in ("angry", "happy", "neutral", "sad")
        scores = [r[f"score_{lab}"] for lab in ("angry", "happy", "neutral", "sad")]
        assert (
            all(0 <= s <= 1 for s in scores)
            and r["label"] == ("angry", "happy", "neutral", "sad")[int(np.argmax(scores))]
        )
        assert r["transcript"] and r["start_s"] == 0 and r["end_s"] > 1
    # Manifest columns named like output columns are kept apart; the others come along.
    assert {r["manifest_label"] for r in rows} == {"unknown"} and rows[0]["text"]
    assert {r["manifest_duration_s"] for r in rows} == {"1.5"}


def test_a_long_recording_is_cut_at_its_pauses(recognized, corpus):
    _, out, _ = recognized
    rows = [r for r in _predictions(out) if r["id"] == "call"]
    bounds = corpus["bounds"]
    assert len(rows) == len(bounds), [(r["start_s"], r["end_s"]) for r in rows]
    for r, (start, end, text) in zip(rows, bounds, strict=True):
        assert abs(r["start_s"] - start) < 0.6 and abs(r["end_s"] - end) < 0.6, (r, start, end)
        assert _overlap(text, r["transcript"]) >= 0.6, (text, r["transcript"])
    assert all(r["duration_s"] == pytest.approx(bounds[-1][1] + GAP_S, abs=0.05) for r in rows)


def test_noise_gets_no_emotion(recognized):
    _, out, _ = recognized
    rows = [r for r in _predictions(out) if r["id"] == "noise"]
    assert len(rows) == 1 and rows[0]["no_speech"] and rows[0]["label"] is None
    assert rows[0]["transcript"] == "" and rows[0]["score_angry"] is None


def test_broken_files_are_errors_and_the_rest_goes_on(recognized, corpus, hostile_files):
    summary, out, _ = recognized
    hostile = set(hostile_files)
    errors = {r["id"]: r for r in pq.read_table(out / "errors" / "errors.parquet").to_pylist()}
    assert set(errors) == {"junk", "empty", *hostile} and summary.failed == 6
    assert "not a readable audio file" in errors["junk"]["error"]
    assert "its header says" in errors["hostile-bomb"]["error"]
    assert "below decode.min_sample_rate=4000" in errors["hostile-sparse"]["error"]
    assert "named pipe" in errors["hostile-fifo"]["error"]
    assert "a directory" in errors["hostile-dir"]["error"]
    assert {r["id"] for r in _predictions(out)} == {"call", "noise", *corpus["short"]}


def test_one_row_per_recording_and_plots(recognized, corpus):
    summary, out, _ = recognized
    recordings = {r["id"]: r for r in pq.read_table(out / "recordings").to_pylist()}
    assert set(recordings) == {"call", "noise", *corpus["short"]}
    call = recordings["call"]
    assert call["segments"] == len(corpus["bounds"]) and call["label"] is not None
    shares = [call[f"share_{lab}"] for lab in ("angry", "happy", "neutral", "sad")]
    assert sum(shares) == pytest.approx(1.0) and call["speech_s"] > 20
    assert recordings["noise"]["label"] is None
    assert recordings["noise"]["speech_s"] < 0.3  # what the VAD heard: below min_speech_s
    assert (out / "plots" / "call.png").stat().st_size > 1000
    assert (out / "plots" / "summary.png").exists()
    assert not (out / "plots" / "noise.png").exists()  # one segment: no timeline
    assert summary.recordings == 5 and summary.new_recordings == 5
    assert summary.segments == len(corpus["bounds"]) + 4
    assert "recognize: 5 recordings (5 new, 6 failed)" in summary.line()


def test_the_library_applies_the_same_rule(recognized, corpus):
    """The library (``raymer.Recognizer``) on the same files (44.1 kHz stereo FLAC, through
    the one decoder) agrees with the pipeline: noise gets no emotion, speech the same
    transcript, label and scores."""
    import raymer

    _, out, _ = recognized
    predictions = {r["id"]: r for r in _predictions(out)}
    root = corpus["manifest"].parent
    with open(corpus["manifest"]) as f:
        paths = {row["id"]: root / row["path"] for row in csv.DictReader(f)}
    ids = ["noise", *corpus["short"]]
    results = raymer.Recognizer.from_checkpoint(CHECKPOINT, threads=1).predict(
        [paths[i] for i in ids]
    )
    noise = results[0]
    assert noise["no_speech"] and noise["label"] is None and noise["emotions"] is None
    assert noise["transcript"] == "" and predictions["noise"]["no_speech"]
    for rid, r in zip(ids[1:], results[1:], strict=True):
        assert not r["no_speech"] and r["transcript"] == predictions[rid]["transcript"]
        assert r["label"] == predictions[rid]["label"], (r, predictions[rid])
        for label, score in r["emotions"].items():
            assert abs(score - predictions[rid][f"score_{label}"]) < 1e-3


def test_the_library_cuts_a_long_recording_as_recognize_does(recognized, corpus):
    """One long-audio rule: the library's segments of the 55 s call are the rows `raymer
    recognize` wrote for it: the same boundaries, words and labels (Whisper's input features
    are the same bits in a Ray worker and in this process: tests/unit/test_log_mel.py)."""
    import raymer

    _, out, _ = recognized
    rows = [r for r in _predictions(out) if r["id"] == "call"]
    recording = next(r for r in pq.read_table(out / "recordings").to_pylist() if r["id"] == "call")
    call = corpus["manifest"].parent / "call.flac"
    result = raymer.Recognizer.from_checkpoint(CHECKPOINT, threads=1).predict(call)
    assert len(result["segments"]) == len(rows) == len(corpus["bounds"])
    for seg, row in zip(result["segments"], rows, strict=True):
        assert abs(seg["start"] - row["start_s"]) < 1e-3 and abs(seg["end"] - row["end_s"]) < 1e-3
        assert seg["text"] == row["transcript"] and seg["label"] == row["label"], (seg, row)
        assert seg["no_speech"] == row["no_speech"] is False
    # the recording's answer is made from its segments as recognize makes its row
    seconds = dict.fromkeys(result["shares"], 0.0)
    for seg in result["segments"]:
        seconds[seg["label"]] += seg["end"] - seg["start"]
    assert result["label"] == max(seconds, key=seconds.get) == recording["label"]
    assert result["speech_s"] == pytest.approx(
        sum(s["speech_s"] for s in result["segments"]), abs=0.01
    )
    assert result["speech_s"] == pytest.approx(recording["speech_s"], abs=0.01)


def test_a_rerun_adds_nothing(recognized):
    from raymer.pipeline.recognize import recognize

    summary, out, cfg = recognized
    before = _predictions(out)
    # a crash while a predictions file was written leaves it without its footer: the next
    # run drops it and redoes its segments, instead of failing on it for ever
    parts = sorted((out / "predictions").glob("*.parquet"), key=lambda p: p.stat().st_size)
    cut = parts[-1]
    lost = pq.read_table(cut).num_rows
    cut.write_bytes(cut.read_bytes()[:-40])
    redone = recognize(cfg)
    assert not cut.exists() and redone.segments == summary.segments
    assert sorted((r["id"], r["segment"]) for r in _predictions(out)) == sorted(
        (r["id"], r["segment"]) for r in before
    )
    assert lost > 0
    before = _predictions(out)
    again = recognize(cfg)
    assert again.new_recordings == 0 and again.recordings == summary.recordings
    assert len(_predictions(out)) == len(before)
    assert again.failed == 6  # failed files are tried again, and fail again
    assert (out / "_SUCCESS.json").exists() and not (out / "_lease.json").exists()
    from raymer.pipeline.outputs import SettingsMismatch

    segment = cfg.segment.model_copy(update={"min_silence_s": 0.5})  # cuts the call elsewhere
    other = cfg.model_copy(update={"segment": segment})
    with pytest.raises(SettingsMismatch, match="segment.min_silence_s: 1.0 then, 0.5 now"):
        recognize(other)
    assert len(_predictions(out)) == len(before)
    over = recognize(cfg.model_copy(update={"resume": False}))  # starts over: replaced
    assert over.new_recordings == over.recordings == summary.recordings
    assert sorted((r["id"], r["segment"]) for r in _predictions(out)) == sorted(
        (r["id"], r["segment"]) for r in before
    )


def _executions(monkeypatch) -> list[int]:
    """Counts the Ray Data executions this process starts (the real executor, counted)."""
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    started, execute = [], StreamingExecutor.execute

    def counted(self, *args, **kwargs):
        started.append(1)
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(StreamingExecutor, "execute", counted)
    return started


def test_resume_is_by_recording_before_decoding(ray_session, corpus, tmp_path, monkeypatch):
    """A recording's segments spread over write tasks (3 segments per task) are committed
    whole, once, by the task that writes its last part; a duplicate id is an error row; two
    Ray Data executions; and a re-run after the audio is gone decodes nothing: no file is
    opened again, and with nothing left to do no actor starts (one execution: the inputs)."""
    import shutil

    from raymer.config.recognize import RecognizeConfig
    from raymer.pipeline.recognize import recognize

    src = corpus["manifest"].parent
    audio = tmp_path / "audio"
    audio.mkdir()
    names = ["call.flac", *(f"{c}.flac" for c in corpus["short"][:2])]
    for name in names:
        shutil.copy(src / name, audio / name)
    manifest = tmp_path / "manifest.csv"
    lines = ["id,path", *(f"{n.split('.')[0]},audio/{n}" for n in names)]
    lines.append(f"{corpus['short'][0]},audio/call.flac")  # the same id twice
    manifest.write_text("\n".join(lines) + "\n")
    cfg = RecognizeConfig(
        input=str(manifest), checkpoint=str(CHECKPOINT), output=str(tmp_path / "out"),
        segment={"chunk_s": 60}, batch_size=4, segments_per_file=3, plots=False,
        resources={"asr": {"actors": 1}},
    )  # fmt: skip
    import ray.data

    # small blocks, as a big corpus has: the write tasks get the call's segments apart
    monkeypatch.setattr(ray.data.DataContext.get_current(), "target_max_block_size", 2048)
    executions = _executions(monkeypatch)
    first = recognize(cfg)
    assert (first.recordings, first.new_recordings, first.failed) == (3, 3, 1)
    # the inputs (held before the actors start) and the stream
    assert len(executions) == 2 and "finish" not in first.phases_s, first.phases_s
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    call = sorted(r["segment"] for r in rows if r["id"] == "call")
    assert call == list(range(len(corpus["bounds"])))  # whole, once
    joined = {
        r["id"]
        for p in (tmp_path / "out" / "predictions").glob("*-r-*.parquet")
        for r in pq.read_table(p).to_pylist()
    }  # the two long recordings (the kept duplicate is call.flac too): apart, then joined
    assert joined == {"call", corpus["short"][0]}, joined
    (error,) = pq.read_table(tmp_path / "out" / "errors").to_pylist()
    assert error["stage"] == "manifest" and "duplicate id" in error["error"]
    # the row kept is the first by path: audio/call.flac before audio/joe_...
    assert error["path"].endswith(names[1]) and "call.flac" in error["error"]

    shutil.rmtree(audio)  # nothing left to decode: a run that tried would report errors
    executions.clear()
    again = recognize(cfg)
    assert (again.recordings, again.new_recordings, again.failed) == (3, 0, 1)
    assert len(executions) == 1  # the inputs only: nothing left, so no stream and no actor
    assert len(pq.read_table(tmp_path / "out" / "predictions")) == len(rows)


def test_the_command_on_one_file(ray_session, corpus, tmp_path):
    out = tmp_path / "one"
    raymer = str(Path(sys.executable).with_name("raymer"))
    call = str(corpus["manifest"].parent / "call.flac")

    def run(address: str, timeout: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [raymer, "recognize", call, "--checkpoint", str(CHECKPOINT), "--output", str(out)]
            + ["resources.asr.actors=1", "plots=false"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "RAY_ADDRESS": address},
        )

    result = run(ray_session.get_runtime_context().gcs_address, 600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recognize: 1 recordings (1 new, 0 failed), 8 segments" in result.stdout
    assert pq.read_table(out / "recordings").num_rows == 1
    assert not (out / "plots").exists()
    # a re-run with nothing left to do and nothing changed starts no Ray: an address where
    # no Ray listens would fail it, were it asked
    files = sorted(p.relative_to(out) for p in out.rglob("*.parquet"))
    again = run("127.0.0.1:9", 120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "recognize: 1 recordings (0 new, 0 failed), 8 segments" in again.stdout
    assert sorted(p.relative_to(out) for p in out.rglob("*.parquet")) == files


def test_s3_in_and_out(ray_session, s3_endpoint, corpus):
    """A folder of recordings and the checkpoint on s3:// (moto), the output to s3://; a
    re-run there adds nothing either."""
    import boto3

    from raymer import storage
    from raymer.config.recognize import RecognizeConfig
    from raymer.pipeline.recognize import recognize

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="recognize")
    root = corpus["manifest"].parent
    with open(corpus["manifest"]) as f:
        paths = {row["id"]: row["path"] for row in csv.DictReader(f)}
    for rid in [*corpus["short"][:2], "noise", "junk"]:
        local = root / paths[rid]
        s3.upload_file(str(local), "recognize", f"in/calls/{rid}{local.suffix}")
    for name in ("model.json", "model.pt"):
        s3.upload_file(str(CHECKPOINT / name), "recognize", f"model/{name}")
    cfg = RecognizeConfig(
        input="s3://recognize/in",
        checkpoint="s3://recognize/model",
        output="s3://recognize/out",
        batch_size=4,
        resources={"asr": {"actors": 1}},
    )
    summary = recognize(cfg)
    assert (summary.recordings, summary.new_recordings, summary.failed) == (3, 3, 1)
    fs, path = storage.filesystem("s3://recognize/out/predictions")
    rows = {r["id"]: r for r in pq.read_table(path, filesystem=fs).to_pylist()}
    assert set(rows) == {f"calls/{rid}" for rid in [*corpus["short"][:2], "noise"]}
    assert rows["calls/noise"]["label"] is None
    assert all(r["path"].startswith("s3://recognize/in/calls/") for r in rows.values())
    fs, path = storage.filesystem("s3://recognize/out/errors/errors.parquet")
    errors = pq.read_table(path, filesystem=fs).to_pylist()
    assert [e["id"] for e in errors] == ["calls/junk"] and errors[0]["stage"] == "decode"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="recognize", Prefix="out/")["Contents"]}
    assert {"out/summary.json", "out/config.yaml", "out/plots/summary.png"} <= keys
    again = recognize(cfg)
    assert again.new_recordings == 0 and again.recordings == 3
    fs, path = storage.filesystem("s3://recognize/out/predictions")
    assert pq.read_table(path, filesystem=fs).num_rows == len(rows)


@pytest.mark.drill
def test_the_driver_does_not_hold_the_corpus(ray_session, tmp_path):
    """benchmarks/driver_memory.py on 1,000 and 50,000 manifest rows (files that do not
    exist: each is an error row through every stage): the driver's peak memory may grow by
    at most 30% (a driver holding ~2 KB per row, as extract's once did, grows by ~100 MB)."""
    import re

    address = ray_session.get_runtime_context().gcs_address
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "driver_memory.py"
    result = subprocess.run(
        [sys.executable, str(script), "--small", "1000", "--large", "50000"],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "RAY_ADDRESS": address},
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    for rows in (1000, 50000):
        assert f"recognize: 0 recordings (0 new, {rows} failed)" in result.stdout, result.stdout
    ratio = float(re.search(r"ratio large/small: ([0-9.]+)", result.stdout).group(1))
    assert ratio <= 1.3, result.stdout
