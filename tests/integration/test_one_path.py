"""One answer whichever way a recording comes in: the same files through `raymer recognize`,
`raymer extract` + `raymer infer`, `raymer.Recognizer.predict` and `raymer serve` (real HTTP)
with one checkpoint (the session's `raymer compare` output): short clips recorded at 44.1 kHz
in stereo, a long recording with pauses at 22.05 kHz, and noise."""

from __future__ import annotations

import csv
import html
import io
import struct

import numpy as np
import pyarrow.parquet as pq
import pytest
import requests
import soundfile
import srt

from raymer.config import SegmentConfig
from raymer.corpora.recording import synthesize_recording
from raymer.inference.exports import EXTENSIONS, FORMATS, MEDIA_TYPES

LABELS = ("angry", "happy", "neutral", "sad")
DIMS = ("arousal", "valence")  # the session's models are trained on them too
GAP_S = 2.5
LONG_MINUTES = 2.0
# one settings object, given as it is to recognize, serve and the library
SEGMENT = SegmentConfig(segment_over_s=8.0)  # the ~16 s recording is cut; the clips are whole
MIN_CONFIDENCE = 0.5  # under it, `uncertain`: the same rule everywhere (scores still given)


def _resampled(audio: np.ndarray, rate: int) -> np.ndarray:
    t = np.arange(int(len(audio) * rate / 16_000)) / rate
    return np.interp(t, np.arange(len(audio)) / 16_000, audio).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(piper_corpus, tmp_path_factory) -> dict:
    """Four clips of the piper voice (a voice and sentences the model was not trained on) as
    a recorder makes them (44.1 kHz stereo FLAC), one of them at 44,101 Hz; three more joined
    by 2.5 s pauses at 22.05 kHz (WAV); 3 s of noise; a WAV declaring 655,350 Hz."""
    root = tmp_path_factory.mktemp("one_path")
    with open(piper_corpus) as f:
        clips = list(csv.DictReader(f))
    audio = {
        c["id"]: soundfile.read(piper_corpus.parent / c["path"], dtype="float32")[0] for c in clips
    }
    short = [c["id"] for c in clips[:4]]
    for cid in short[:3]:
        x = _resampled(audio[cid], 44_100)
        soundfile.write(root / f"{cid}.flac", np.stack([x, 0.7 * x], 1), 44_100)
    # a rate whose ratio to 16 kHz reduces to nothing (the 12 GB resampler filter of old)
    soundfile.write(root / f"{short[3]}.wav", _resampled(audio[short[3]], 44_101), 44_101)
    # and a header declaring a rate no recording has: refused from the header everywhere
    odd = bytearray((root / f"{short[3]}.wav").read_bytes())
    odd[24:28] = struct.pack("<I", 655_350)
    (root / "rate655350.wav").write_bytes(bytes(odd))
    parts = []
    turns, at = [], 0.0  # the call's sentences said by two people in turn, as a diarizer
    for k, c in enumerate(clips[4:7]):
        parts += [audio[c["id"]], np.zeros(int(GAP_S * 16_000), np.float32)]
        end = at + len(audio[c["id"]]) / 16_000
        turns.append(
            f"SPEAKER call 1 {at:.3f} {end - at:.3f} <NA> <NA> {('A', 'B')[k % 2]} <NA> <NA>"
        )
        at = end + GAP_S
    soundfile.write(root / "call.wav", _resampled(np.concatenate(parts), 22_050), 22_050)
    (root / "call.rttm").write_text("\n".join(turns) + "\n")
    # a 50 ms click of speech: too short to hold any, the same answer everywhere
    first = audio[clips[0]["id"]]
    soundfile.write(root / "click.wav", first[len(first) // 2 :][:800], 16_000)
    rng = np.random.default_rng(1)
    soundfile.write(
        root / "noise.wav", (0.1 * rng.standard_normal(3 * 16_000)).astype(np.float32), 16_000
    )
    names = {cid: f"{cid}.flac" for cid in short[:3]} | {short[3]: f"{short[3]}.wav"}
    names |= {"call": "call.wav", "noise": "noise.wav", "rate655350": "rate655350.wav"}
    names |= {"click": "click.wav"}
    # two minutes of held-out voices with pauses: cut into many segments, several windows
    long = synthesize_recording(root / "long", LONG_MINUTES, seed=2, workers=1)
    names["long"] = str(long.relative_to(root))
    for name, ids in (("all.csv", list(names)), ("short.csv", [*short, "rate655350"])):
        with open(root / name, "w", newline="") as f:
            writer = csv.DictWriter(f, ["path", "id"])
            writer.writeheader()
            writer.writerows({"path": names[i], "id": i} for i in ids)
    return {"root": root, "short": short, "paths": {i: root / n for i, n in names.items()}}


@pytest.fixture(scope="module")
def recognized(ray_session, trained, inputs, tmp_path_factory) -> dict:
    """`raymer recognize` over all of them: rows by (id, segment), recordings by id."""
    from raymer.config.recognize import RecognizeConfig
    from raymer.pipeline.recognize import recognize

    out = tmp_path_factory.mktemp("one_path_recognized")
    cfg = RecognizeConfig(
        input=str(inputs["root"] / "all.csv"),
        checkpoint=str(trained.output),
        output=str(out),
        segment=SEGMENT,
        min_confidence=MIN_CONFIDENCE,
        resources={"asr": {"actors": 1, "num_cpus": 0.5, "threads": 1}},
        formats=["vtt", "srt", "textgrid", "csv"],
    )
    summary = recognize(cfg)
    assert summary.failed == 1
    rows = pq.read_table(out / "predictions").to_pylist()
    recordings = pq.read_table(out / "recordings").to_pylist()
    errors = pq.read_table(out / "errors" / "errors.parquet").to_pylist()
    return {
        "rows": {(r["id"], r["segment"]): r for r in rows},
        "recordings": {r["id"]: r for r in recordings},
        "errors": {r["id"]: r["error"] for r in errors},
        "exports": out / "exports",
    }


@pytest.fixture(scope="module")
def extracted_and_inferred(ray_session, trained, inputs, tmp_path_factory) -> dict:
    """`raymer extract` (the settings the checkpoint was trained with) + `raymer infer` on
    the short clips: transcripts and scores by id."""
    from raymer.config import ExtractConfig, load_config
    from raymer.pipeline.extract import extract
    from raymer.training.infer import infer

    root = tmp_path_factory.mktemp("one_path_extract")
    cfg = load_config(
        ExtractConfig,
        "configs/extract/tiny.yaml",
        [],
        input=str(inputs["root"] / "short.csv"),
        output=str(root / "features"),
    )
    summary = extract(cfg)
    assert (summary.clips_ok, summary.clips_failed) == (len(inputs["short"]), 1)
    errors = pq.read_table(root / "features" / "errors").to_pylist()
    infer(
        str(trained.output), str(root / "features"), str(root / "infer"),
        min_confidence=MIN_CONFIDENCE,
    )  # fmt: skip
    features = pq.read_table(root / "features" / "features", columns=["id", "transcript"])
    scores = pq.read_table(root / "infer" / "predictions").to_pylist()
    return {
        "transcripts": dict(zip(*features.to_pydict().values(), strict=True)),
        "rows": {r["id"]: r for r in scores},
        "errors": {r["id"]: r["error"] for r in errors},
    }


@pytest.fixture(scope="module")
def served(ray_session, trained, inputs, free_port, recognized, extracted_and_inferred) -> dict:
    """`raymer serve` (after the Ray Data jobs: it takes their CPUs): each file uploaded."""
    from raymer.config import ServeConfig
    from raymer.serving import listen, server

    cfg = ServeConfig(
        checkpoint=str(trained.output),
        port=free_port(),
        segment=SEGMENT,
        min_confidence=MIN_CONFIDENCE,
        resources={"asr": {"num_cpus": 0.4, "threads": 1}},
    )
    url = server.start(cfg)
    try:
        answers = {}
        for rid, path in inputs["paths"].items():
            response = requests.post(
                f"{url}/v1/recognize",
                data=path.read_bytes(),
                headers={"Content-Type": "audio/flac" if path.suffix == ".flac" else "audio/wav"},
                timeout=120,
            )
            answers[rid] = response.json() | {"http_status": response.status_code}
        call = inputs["paths"]["call"].read_bytes()
        for fmt in FORMATS:  # the call as each file: ?format=, and Accept for subtitles
            ask = (
                {"params": {"format": fmt}} if fmt != "vtt" else {"headers": {"Accept": "text/vtt"}}
            )
            response = requests.post(f"{url}/v1/recognize", data=call, timeout=120, **ask)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith(MEDIA_TYPES[fmt])
            answers[f"call.{fmt}"] = response.text
        refused = requests.post(
            f"{url}/v1/recognize", data=call, params={"format": "docx"}, timeout=60
        )
        answers["format=docx"] = (refused.status_code, refused.json())
        turns = (inputs["root"] / "call.rttm").read_text()
        for name, text in (
            ("turns", turns),
            ("turns past the end", turns.replace(" 1 0.000 ", " 1 90.000 ")),
        ):
            response = requests.post(
                f"{url}/v1/recognize",
                files={"file": ("call.wav", call, "audio/wav"), "turns": (None, text)},
                timeout=120,
            )
            answers[name] = response.json() | {"http_status": response.status_code}
        for rid, chunk_ms, interim in LIVE:  # the live endpoint, by the `raymer listen` client
            events: list[dict] = []
            chunks = listen.file_chunks(str(inputs["paths"][rid]), chunk_ms, pace=False)
            listen.listen(url, chunks, interim=interim, on_event=events.append)
            answers[f"live {rid} {chunk_ms}"] = events
    finally:
        server.stop()
    return answers


LIVE = [("call", 20, True), ("long", 250, False), ("call", 2000, False)]


@pytest.fixture(scope="module")
def recognizer(trained):
    import raymer

    return raymer.Recognizer.from_checkpoint(
        trained.output, threads=1, segment=SEGMENT, min_confidence=MIN_CONFIDENCE
    )


@pytest.fixture(scope="module")
def library(recognizer, inputs) -> dict:
    ids = list(inputs["paths"])
    found = recognizer.predict([inputs["paths"][i] for i in ids], errors="report")
    return dict(zip(ids, found, strict=True))


def _service_scores(answer: dict) -> dict:
    return answer["emotions"]


def _library_scores(result: dict) -> dict:
    return result["emotions"]  # the service's shape


def test_short_clips_get_one_answer_everywhere(
    inputs, recognized, extracted_and_inferred, library, served
):
    for rid in inputs["short"]:
        assert served[rid]["http_status"] == 200, served[rid]
        row = recognized["rows"][(rid, 0)]
        inferred = extracted_and_inferred["rows"][rid]
        answers = {
            "recognize": (row["transcript"], row["label"], {k: row[f"score_{k}"] for k in LABELS}),
            "extract + infer": (
                extracted_and_inferred["transcripts"][rid],
                inferred["predicted"],
                {k: inferred[f"score_{k}"] for k in LABELS},
            ),
            "library": (
                library[rid]["transcript"],
                library[rid]["label"],
                _library_scores(library[rid]),
            ),
            "serve": (
                served[rid]["transcript"],
                served[rid]["label"],
                _service_scores(served[rid]),
            ),
        }
        transcript, label, scores = answers["recognize"]
        assert transcript and label in (*LABELS, "uncertain")
        # a calibrated model's scores (the session's: fitted at the end of training) are a
        # distribution; under min_confidence the label is `uncertain`, the scores kept
        assert sum(scores.values()) == pytest.approx(1, abs=1e-4)
        assert (label == "uncertain") == (max(scores.values()) < MIN_CONFIDENCE), (label, scores)
        for way, (t, lab, sc) in answers.items():
            assert t == transcript, (rid, way, t, transcript)
            assert lab == label, (rid, way, lab, label)
            assert max(abs(sc[k] - scores[k]) for k in LABELS) < 0.02, (rid, way, sc, scores)
        dims = {
            "recognize": {d: row[d] for d in DIMS},
            "extract + infer": {d: inferred[f"predicted_{d}"] for d in DIMS},
            "library": library[rid]["dimensions"],
            "serve": served[rid]["dimensions"],
        }
        for way, values in dims.items():
            assert set(values) == set(DIMS) and all(-1 <= values[d] <= 1 for d in DIMS), way
            assert max(abs(values[d] - dims["recognize"][d]) for d in DIMS) < 0.02, (way, dims)


def test_a_call_s_files_say_what_its_rows_say_everywhere(inputs, recognized, recognizer, served):
    """recognize's files (``formats``), the service's (``?format=``, Accept) and the
    library's (``Recognizer.export``) of the call, opened with the readers people use: a
    cue and an interval per segment with speech, its label and its words; the CSV's rows
    the Parquet rows."""
    import webvtt
    from praatio import textgrid

    rows = sorted(
        (r for (r_id, _), r in recognized["rows"].items() if r_id == "call"),
        key=lambda r: r["segment"],
    )
    spoken = [r for r in rows if not r["no_speech"]]
    assert len(spoken) == 3
    written = {f: (recognized["exports"] / f"call.{EXTENSIONS[f]}").read_text() for f in FORMATS}
    library = {f: recognizer.export(inputs["paths"]["call"], f) for f in FORMATS}
    assert served["format=docx"][0] == 422 and "vtt" in served["format=docx"][1]["error"]
    csv_rows = list(csv.DictReader(io.StringIO(written["csv"])))
    assert [int(r["segment"]) for r in csv_rows] == [r["segment"] for r in rows]
    for got, row in zip(csv_rows, rows, strict=True):
        assert got["transcript"] == row["transcript"] and got["label"] == row["label"]
        for lab in LABELS:
            assert float(got[f"score_{lab}"]) == row[f"score_{lab}"]
        for d in DIMS:
            assert float(got[d]) == row[d]
    for way, files in (("recognize", written), ("library", library), ("serve", served)):
        text = {f: files[f"call.{f}"] if way == "serve" else files[f] for f in FORMATS}
        vtt = recognized["exports"].parent / f"{way}.vtt"
        vtt.write_text(text["vtt"])
        cues = webvtt.read(str(vtt))
        subs = list(srt.parse(text["srt"]))
        grid_file = recognized["exports"].parent / f"{way}.TextGrid"
        grid_file.write_text(text["textgrid"])
        grid = textgrid.openTextgrid(str(grid_file), includeEmptyIntervals=False)
        labelled = grid.getTier("label").entries
        said = grid.getTier("transcript").entries
        assert len(cues) == len(subs) == len(labelled) == len(said) == len(spoken), way
        for cue, sub, interval, words, row in zip(cues, subs, labelled, said, spoken, strict=True):
            assert html.unescape(cue.text).startswith(f"{row['label']} ") and cue.text.endswith(
                " ".join(row["transcript"].split())
            ), (way, cue.text, row)
            assert sub.content == html.unescape(cue.text), way
            assert interval.label == row["label"] and words.label == row["transcript"], way
            assert abs(interval.start - row["start_s"]) < 0.3, way
            assert abs(sub.end.total_seconds() - row["end_s"]) < 0.3, way
        assert len(list(csv.DictReader(io.StringIO(text["csv"])))) == len(rows), way


@pytest.mark.parametrize("rid", ["call", "long"])
def test_a_long_recording_gets_the_same_segments_everywhere(rid, recognized, library, served):
    """A 16 s call cut at its two pauses (one Whisper window), and two minutes of
    sentences with pauses (their windows packed from many segments)."""
    rows = sorted(
        (r for (r_id, _), r in recognized["rows"].items() if r_id == rid),
        key=lambda r: r["segment"],
    )
    spans = [(r["start_s"], r["end_s"]) for r in rows]
    if rid == "call":
        assert len(rows) == 3, spans  # cut at its 2 pauses
    else:  # a sentence every 4-8 s: more segments than one 30 s window holds
        assert 12 <= len(rows) <= LONG_MINUTES * 60 / 3, spans
        assert sum(r["end_s"] - r["start_s"] for r in rows) > 60, spans
    recording = recognized["recordings"][rid]
    for way, answer in (("library", library[rid]), ("serve", served[rid])):
        segments = answer["segments"]
        assert len(segments) == len(rows), (way, segments)
        for seg, row in zip(segments, rows, strict=True):
            assert abs(seg["start"] - row["start_s"]) < 0.3 and abs(seg["end"] - row["end_s"]) < 0.3
            assert seg["text"] == row["transcript"] and seg["label"] == row["label"], (
                way,
                seg,
                row,
            )
            assert seg["no_speech"] is row["no_speech"] is False
        assert answer["label"] == recording["label"], (way, answer["label"], recording)
        for lab in LABELS:
            assert answer["shares"][lab] == pytest.approx(recording[f"share_{lab}"], abs=1e-3)
        assert answer["speech_s"] == pytest.approx(recording["speech_s"], abs=0.01)
        assert answer["duration_s"] == pytest.approx(recording["duration_s"], abs=0.05)
        for d in DIMS:  # the segments' values, and the recording's speech-weighted mean
            for seg, row in zip(segments, rows, strict=True):
                assert seg["dimensions"][d] == pytest.approx(row[d], abs=0.02), (way, d)
            assert answer["dimensions"][d] == pytest.approx(recording[d], abs=0.02), (way, d)


def test_a_long_recording_judged_a_few_segments_at_a_time_answers_the_same(
    library, inputs, recognizer
):
    """What the page's streamed answers run: the pieces in groups, progress after each
    (``inference.compose_steps``): the same answer as all at once."""
    import asyncio

    from raymer.audio.decode import decode_audio
    from raymer.inference.core import Progress

    audio = decode_audio(str(inputs["paths"]["call"]))

    async def steps():
        return [s async for s in recognizer.core.arecognize_steps(audio, step=1)]

    *progress, (answer,) = asyncio.run(steps())
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].done == 3 and progress[-1].duration_s == len(audio) / 16_000
    assert all(isinstance(p, Progress) for p in progress)
    whole, streamed = library["call"], answer.to_api()
    assert streamed["label"] == whole["label"] and len(streamed["segments"]) == 3
    for a, b in zip(streamed["segments"], whole["segments"], strict=True):
        assert a["text"] == b["text"] and a["label"] == b["label"]
    for d in DIMS:
        assert streamed["dimensions"][d] == pytest.approx(whole["dimensions"][d], abs=0.02)


@pytest.mark.parametrize(("rid", "chunk_ms"), [("call", 20), ("call", 250), ("long", 2000)])
def test_a_recording_heard_live_gets_the_file_s_answer(rid, chunk_ms, library, inputs, recognizer):
    """The library's live recording (``Recognizer.live``) fed the audio in 20 ms, 250 ms and
    2 s chunks: each segment's final answer, and the recording's at the end, are the file's
    (the VAD runs over the stream with its state carried: the same cuts whatever the
    chunks); each segment's interim answer came first, as soon as its pause was heard."""
    from raymer.audio.decode import decode_audio

    audio = decode_audio(str(inputs["paths"][rid]))
    live, events, n = recognizer.live(interim=chunk_ms != 250), [], chunk_ms * 16
    for i in range(0, len(audio), n):
        events += live.feed(audio[i : i + n])
    if chunk_ms == 2000:  # the end said first: the last segments' first answers, at once
        ended = live.end()
        assert not any(e.final or e.result for e in ended)
        events += ended
    events += live.close()
    said = [e.to_api() for e in events]
    steps, last = said[:-1], said[-1]
    whole, answer = library[rid], last["result"]
    finals = [e for e in steps if e["final"]]
    assert len(finals) == len(whole["segments"]) == len(answer["segments"])
    for seg, mine in zip(whole["segments"], finals, strict=True):
        assert (mine["start"], mine["end"], mine["text"]) == (seg["start"], seg["end"], seg["text"])
        assert mine["label"] == seg["label"]
        for lab in LABELS:
            assert mine["emotions"][lab] == pytest.approx(seg["emotions"][lab], abs=1e-4)
    assert answer["label"] == whole["label"] and answer["shares"] == whole["shares"]
    interim = [e["index"] for e in steps if not e["final"]]
    if chunk_ms != 250:  # each segment answered alone first, before its final answer
        assert interim == list(range(len(finals)))
        first = {e["index"]: k for k, e in reversed(list(enumerate(steps)))}
        assert all(not steps[first[i]]["final"] for i in interim)
    else:
        assert interim == []
    with pytest.raises(RuntimeError, match="closed"):
        live.feed(audio[:n])


@pytest.mark.parametrize(("rid", "chunk_ms", "interim"), LIVE)
def test_a_recording_streamed_to_the_service_gets_the_file_s_answer(
    rid, chunk_ms, interim, library, served
):
    """The service's WebSocket (16-bit PCM in 20 ms, 250 ms and 2 s messages, through
    `raymer listen`'s client): the final segments and the recording's answer are the file's
    (within 16-bit rounding: boundaries within 0.3 s, the same labels, scores within 0.02)."""
    events = served[f"live {rid} {chunk_ms}"]
    assert events[0]["type"] == "ready" and events[-1]["type"] == "result"
    whole, answer = library[rid], events[-1]["result"]
    finals = [e for e in events if e["type"] == "segment" and e["final"]]
    assert len(finals) == len(whole["segments"]) == len(answer["segments"])
    for seg, mine in zip(whole["segments"], finals, strict=True):
        assert abs(mine["start"] - seg["start"]) < 0.3 and abs(mine["end"] - seg["end"]) < 0.3
        assert mine["label"] == seg["label"], (mine, seg)
        for lab in LABELS:
            assert mine["emotions"][lab] == pytest.approx(seg["emotions"][lab], abs=0.02)
    assert answer["label"] == whole["label"]
    interim_seen = [e["index"] for e in events if e["type"] == "segment" and not e["final"]]
    assert interim_seen == (list(range(len(finals))) if interim else [])


BLOCKED = """
import json, sys
class Block:  # what the portable runtime must never import
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio", "transformers"):
            raise ImportError(f"{name} is blocked here")
sys.meta_path.insert(0, Block())
import raymer
args = json.loads(sys.argv[1])
rec = raymer.Recognizer.from_checkpoint(args["export"], threads=1, segment=args["segment"],
                                        min_confidence=args["min_confidence"])
found = rec.predict(args["inputs"], errors="report")
# nor what only training and the corpus jobs need (a replica's memory): reported, not blocked
heavy = ("torch", "transformers", "pyarrow", "pandas", "opensmile")
print(json.dumps({"answers": found, "modules": sorted(m for m in heavy if m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def portable(trained, inputs, tmp_path_factory, free_port) -> dict:
    """The session's model exported for the portable runtime (``export --format onnx``),
    run in a process that cannot import torch or transformers, and served."""
    import json
    import subprocess
    import sys

    from raymer.config import ServeConfig
    from raymer.serving import server
    from raymer.trained.export_onnx import export_onnx

    folder = export_onnx(str(trained.output), str(tmp_path_factory.mktemp("portable") / "export"))
    ids = [i for i in inputs["paths"] if i != "rate655350"]
    args = {
        "export": folder,
        "inputs": [str(inputs["paths"][i]) for i in ids],
        "segment": SEGMENT.model_dump(),
        "min_confidence": MIN_CONFIDENCE,
    }
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, json.dumps(args)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    cfg = ServeConfig(
        checkpoint=folder, port=free_port(), segment=SEGMENT, min_confidence=MIN_CONFIDENCE,
        resources={"asr": {"num_cpus": 0.4, "threads": 1}},
    )  # fmt: skip
    url = server.start(cfg)
    try:
        served = {
            rid: requests.post(
                f"{url}/v1/recognize", data=inputs["paths"][rid].read_bytes(), timeout=120
            ).json()
            for rid in ("call", inputs["short"][0])
        }
        models = requests.get(f"{url}/v1/models", timeout=30).json()
    finally:
        server.stop()
    answers = dict(zip(ids, found["answers"], strict=True))
    return {"folder": folder, "answers": answers, "modules": found["modules"], "served": served,
            "models": models}  # fmt: skip


def test_a_portable_export_answers_as_the_model_without_torch(portable, library):
    """`raymer export --format onnx` of the session's model, loaded where torch and
    transformers cannot be imported: every recording's answer is the torch path's (labels
    equal, scores within 1e-4), the long one's segments too; `raymer serve` loads the
    export and answers the same."""
    assert portable["modules"] == []
    for rid, mine in portable["answers"].items():
        theirs = library[rid]
        assert mine.get("error") == theirs.get("error"), rid
        assert mine["label"] == theirs["label"] and mine.get("transcript") == theirs.get(
            "transcript"
        ), rid
        if theirs.get("emotions"):
            for lab in LABELS:
                assert mine["emotions"][lab] == pytest.approx(theirs["emotions"][lab], abs=1e-4), (
                    rid
                )
        for a, b in zip(mine["segments"], theirs["segments"], strict=True):
            assert (a["text"], a["label"]) == (b["text"], b["label"])
            if b["emotions"]:
                for lab in LABELS:
                    assert a["emotions"][lab] == pytest.approx(b["emotions"][lab], abs=1e-4)
    for rid, answer in portable["served"].items():
        assert answer["label"] == library[rid]["label"], rid
        for lab in LABELS:
            assert answer["emotions"][lab] == pytest.approx(library[rid]["emotions"][lab], abs=1e-4)
    assert portable["models"]["labels"] == list(LABELS)


def test_a_portable_export_refuses_what_it_cannot_trust(portable, trained, tmp_path):
    """An export from another version, a file missing or altered: the runtime says what
    and why before it runs; a fine-tune checkpoint is refused by the export itself."""
    import json
    import shutil

    import raymer
    from raymer.contract import portable as contract
    from raymer.trained.export_onnx import export_onnx

    def copied(name: str):
        folder = tmp_path / name
        shutil.copytree(
            portable["folder"], folder, ignore=shutil.ignore_patterns("whisper", "text_encoder")
        )
        return folder

    facts = json.loads((copied("old") / "export.json").read_text())
    (tmp_path / "old" / "export.json").write_text(json.dumps(facts | {"raymer": "0.0.1"}))
    missing, altered = copied("missing"), copied("altered")
    (missing / "head.onnx").unlink()
    (altered / "model.json").write_text((altered / "model.json").read_text() + " ")
    for name, says in (("old", "exported by raymer 0.0.1"), ("missing", "head.onnx is missing"),
                       ("altered", "model.json was altered")):  # fmt: skip
        with pytest.raises(contract.ExportError, match=says):
            raymer.Recognizer.from_checkpoint(str(tmp_path / name))
    from raymer.trained.checkpoint import resolve

    tuned = tmp_path / "finetune"
    shutil.copytree(resolve(str(trained.output)), tuned)
    spec = json.loads((tuned / "model.json").read_text())
    (tuned / "model.json").write_text(json.dumps(spec | {"mode": "finetune"}))
    with pytest.raises(contract.ExportError, match="fine-tune model"):
        export_onnx(str(tuned), str(tmp_path / "refused"))


def test_a_rate_no_recording_has_is_refused_everywhere(
    recognized, extracted_and_inferred, library, served
):
    says = "655,350 Hz, over the 384,000 Hz"
    assert says in recognized["errors"]["rate655350"]
    assert says in extracted_and_inferred["errors"]["rate655350"]
    assert says in library["rate655350"]["error"]
    assert served["rate655350"]["http_status"] == 422 and says in served["rate655350"]["error"]


def test_noise_gets_no_emotion_everywhere(recognized, library, served):
    assert recognized["rows"][("noise", 0)]["no_speech"]
    assert recognized["recordings"]["noise"]["label"] is None
    assert library["noise"]["no_speech"] and library["noise"]["label"] is None
    assert served["noise"]["no_speech"] and served["noise"]["label"] is None
    assert served["noise"]["emotions"] is None and library["noise"]["emotions"] is None
    assert served["noise"]["dimensions"] == library["noise"]["dimensions"] == dict.fromkeys(DIMS)
    assert recognized["recordings"]["noise"]["arousal"] is None


def test_a_50_ms_clip_is_no_speech_everywhere(recognized, library, served):
    """Too short to hold speech (less than speech.min_speech_s): one rule, one answer, in
    recognize, the library and the service alike (no 422 of its own)."""
    assert recognized["rows"][("click", 0)]["no_speech"]
    assert recognized["recordings"]["click"]["label"] is None
    assert "click" not in recognized["errors"]
    assert library["click"].get("error") is None
    assert library["click"]["no_speech"] and library["click"]["label"] is None
    assert served["click"]["http_status"] == 200, served["click"]
    assert served["click"]["no_speech"] and served["click"]["label"] is None
    assert served["click"]["duration_s"] == pytest.approx(0.05, abs=0.01)
    assert library["click"]["duration_s"] == pytest.approx(0.05, abs=0.01)


def test_the_library_shows_how_far_a_long_recording_is(
    recognizer, inputs, library, monkeypatch, capsys
):
    """``predict(progress=True)``: a line every RAYMER_PROGRESS_S seconds (the console's
    rule off a terminal), seconds of audio judged of the recording's length, to the end."""
    monkeypatch.setenv("RAYMER_PROGRESS_S", "1")
    again = recognizer.predict(inputs["paths"]["long"], progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    seconds = round(LONG_MINUTES * 60)
    assert lines and all(line.startswith("predict: ") for line in lines), lines
    assert f"predict: {seconds}/{seconds} audio s (100%)" in lines[-1], lines
    assert [s["text"] for s in again["segments"]] == [
        s["text"] for s in library["long"]["segments"]
    ]
    recognizer.predict(inputs["paths"]["long"])  # by default, nothing off a terminal
    assert capsys.readouterr().err == ""


def test_min_confidence_leaves_an_unsure_answer_unlabelled_with_its_scores(
    trained, inputs, library
):
    """The same clips with every answer under the bar (min_confidence 1): `uncertain`, the
    scores as before; and a bad value refused as a config's would be."""
    import raymer
    from raymer.config import ConfigError

    unsure = raymer.Recognizer.from_checkpoint(
        trained.output, threads=1, segment=SEGMENT, min_confidence=1.0
    )
    rid = inputs["short"][0]
    answer = unsure.predict(inputs["paths"][rid])
    assert answer["label"] == "uncertain"
    assert answer["emotions"] == pytest.approx(library[rid]["emotions"], abs=1e-4)
    with pytest.raises(ConfigError, match="min_confidence"):
        raymer.Recognizer.from_checkpoint(trained.output, min_confidence=1.5)


def test_a_diarizer_s_turns_give_the_same_parties_through_the_service_and_the_library(
    inputs, served, recognizer
):
    """The call with its turns (RTTM): uploaded with them as a form field, and given to the
    library: each segment inside a turn, with that turn's speaker; both ways the same
    segments and parties. Turns that run past the audio: 422 with the reason."""
    answer = served["turns"]
    assert answer["http_status"] == 200, answer
    library = recognizer.predict(inputs["paths"]["call"], turns=inputs["root"] / "call.rttm")
    spoken = [s for s in answer["segments"] if not s["no_speech"]]
    assert [s["speaker"] for s in spoken] == ["A", "B", "A"]
    assert not any(s["overlapped"] for s in spoken)
    assert [(s["speaker"], s["text"]) for s in library["segments"]] == [
        (s["speaker"], s["text"]) for s in answer["segments"]
    ]
    for name in ("A", "B"):
        mine, theirs = library["parties"][name], answer["parties"][name]
        assert mine["label"] == theirs["label"] and mine["speech_s"] == theirs["speech_s"]
    past = served["turns past the end"]
    assert past["http_status"] == 422 and "run past the audio's end" in past["error"]
