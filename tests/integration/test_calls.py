"""Two-party calls: a stereo call with a different voice on each channel (talking over each
other in places), recognized with ``segment.channels: split``: each segment its party's, with
that party's words; a stereo file whose channels are one signal heard once; a file of more
channels than parties refused from its header."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from raymer.wer import normalize_words

RATE = 16_000
NAMES = ["agent", "customer"]


@pytest.fixture(scope="module")
def call(multi_speaker_corpus, tmp_path_factory) -> dict:
    """Left (agent): three clips of en-us_f2; right (customer): three of en-gb_m3, each
    starting 0.6 s before the agent's clip ends (both talk at once), with pauses."""
    corpus = multi_speaker_corpus.parent / "corpus"
    rows = list(csv.DictReader((corpus / "manifest.csv").open()))
    voices = {}
    for speaker in ("en-us_f2", "en-gb_m3"):
        clips = [r for r in rows if r["speaker"] == speaker][:3]
        voices[speaker] = [
            (soundfile.read(corpus / r["path"], dtype="float32")[0], r["text"]) for r in clips
        ]
    left, right, placed, at = [], [], [], 0.5
    for (a, a_text), (b, b_text) in zip(voices["en-us_f2"], voices["en-gb_m3"], strict=True):
        placed.append(("agent", at, at + len(a) / RATE, a_text))
        b_at = at + len(a) / RATE - 0.6
        placed.append(("customer", b_at, b_at + len(b) / RATE, b_text))
        at = b_at + len(b) / RATE + 1.5
    length = int((at + 0.5) * RATE)
    left, right = np.zeros(length, np.float32), np.zeros(length, np.float32)
    for (speaker, start, _, _), audio in zip(
        placed, [x for pair in zip(*voices.values(), strict=True) for x, _ in pair], strict=True
    ):
        side = left if speaker == "agent" else right
        side[int(start * RATE) : int(start * RATE) + len(audio)] += audio
    root = tmp_path_factory.mktemp("call")
    soundfile.write(root / "call.wav", np.stack([left, right], 1), RATE)
    soundfile.write(root / "same.wav", np.stack([left + right, left + right], 1) / 2, RATE)
    soundfile.write(root / "three.wav", np.stack([left, right, left], 1), RATE)
    soundfile.write(root / "mono.wav", (left + right) / 2, RATE)  # one channel, and turns:
    (root / "mono.rttm").write_text(
        "".join(
            f"SPEAKER mono 1 {start:.3f} {end - start:.3f} <NA> <NA> {who} <NA> <NA>\n"
            for who, start, end, _ in placed
        )
    )
    return {"root": root, "placed": placed, "length_s": length / RATE}


@pytest.fixture(scope="module")
def split_recognizer(trained):
    import raymer

    return raymer.Recognizer.from_checkpoint(
        trained.output, threads=1, segment={"channels": "split", "channel_names": NAMES}
    )


def _found(said: str, text: str) -> float:
    """The share of the words said that are words of ``text``."""
    words, known = normalize_words(said), set(normalize_words(text))
    return sum(w in known for w in words) / max(1, len(words))


def _words_under(segment: dict, placed: list) -> str:
    """The words of the placed clip a segment lies over most."""

    def over(p):
        return min(segment["end"], p[2]) - max(segment["start"], p[1])

    return max(placed, key=over)[3]


def test_each_party_s_segments_carry_its_name_and_its_words(call, split_recognizer):
    answer = split_recognizer.predict(call["root"] / "call.wav")
    assert answer["channels"] == "split"
    spoken = [s for s in answer["segments"] if not s["no_speech"]]
    assert {s["speaker"] for s in spoken} == set(NAMES)
    assert [s["start"] for s in answer["segments"]] == sorted(
        s["start"] for s in answer["segments"]
    )
    for s in spoken:  # (a sentence may be cut at a pause inside it: its words, not all of them)
        text = _words_under(s, [p for p in call["placed"] if p[0] == s["speaker"]])
        others = [p[3] for p in call["placed"] if p[0] != s["speaker"]]
        mine = _found(s["text"], text)
        assert mine >= 0.4, (s, text)  # the right party's words (tiny.en on espeak voices)
        assert all(_found(s["text"], other) < mine for other in others), (s, others)
    # both kept where they talk at once
    overlapping = [
        (a, b)
        for a in spoken
        for b in spoken
        if a["speaker"] == "agent"
        and b["speaker"] == "customer"
        and a["end"] > b["start"] > a["start"]
    ]
    assert overlapping
    parties = answer["parties"]
    assert list(parties) == NAMES
    for name in NAMES:
        mine = [s for s in answer["segments"] if s.get("speaker") == name]
        assert parties[name]["speech_s"] == pytest.approx(
            sum(s["speech_s"] for s in mine), abs=0.01
        )
        assert parties[name]["label"] in {*split_recognizer.labels, "uncertain"}
        assert sum(parties[name]["shares"].values()) == pytest.approx(1.0, abs=1e-6)
    assert answer["duration_s"] == pytest.approx(call["length_s"], abs=0.05)


def test_the_service_s_path_hears_an_upload_s_channels_alike(call, split_recognizer):
    """What a Serve replica runs on an upload (``Checked``, through ``compose``): the same
    segments and parties as the library's file."""
    from raymer.audio.decode import Checked
    from raymer.config import DecodeConfig

    data = (call["root"] / "call.wav").read_bytes()
    upload = Checked.check(data, DecodeConfig(), 300.0)
    assert upload.channel_count == 2
    (answer,) = split_recognizer.core.recognize([upload])
    library = split_recognizer.predict(call["root"] / "call.wav")
    assert answer.heard_channels == "split" and answer.to_api()["parties"] == library["parties"]
    assert [(s.speaker, s.transcript) for s in answer.segments] == [
        (s["speaker"], s["text"]) for s in library["segments"]
    ]


def test_a_call_s_subtitles_name_each_party(call, split_recognizer, tmp_path):
    import webvtt

    path = tmp_path / "call.vtt"
    path.write_text(split_recognizer.export(call["root"] / "call.wav", "vtt"))
    voices = [cue.voice for cue in webvtt.read(str(path))]
    assert set(voices) == set(NAMES) and len(voices) >= 6


def test_one_signal_on_two_channels_is_heard_once_and_more_channels_are_refused(
    call, split_recognizer
):
    from raymer.errors import AudioError

    same = split_recognizer.predict(call["root"] / "same.wav")
    assert same["channels"] == "identical" and "parties" not in same
    assert all("speaker" not in s for s in same["segments"])
    heard = set(same["transcript"].lower().replace(",", "").replace(".", "").split())
    for _, _, _, text in call["placed"]:  # both parties' words, in one stream
        words = set(text.lower().replace(",", "").replace(".", "").replace("!", "").split())
        assert len(words & heard) >= len(words) / 2, (text, same["transcript"])
    with pytest.raises(AudioError, match=r"3 channels, and channels: split names 2 parties"):
        split_recognizer.predict(call["root"] / "three.wav")
    result = split_recognizer.predict([Path(call["root"] / "three.wav")], errors="report")[0]
    assert "channel_names" in result["error"]


def test_one_channel_and_a_diarizer_s_turns_give_the_same_speakers(call, trained):
    """The call mixed to one channel, with its turns in RTTM (as pyannote writes them): a
    party per speaker, segments cut inside their turns (overlapped speech flagged), each
    with the speaker the two-channel call gives it; turn files that name another
    recording, run past the audio or do not parse cost only their recording."""
    import raymer

    plain = raymer.Recognizer.from_checkpoint(trained.output, threads=1)
    stereo = raymer.Recognizer.from_checkpoint(
        trained.output, threads=1, segment={"channels": "split", "channel_names": NAMES}
    ).predict(call["root"] / "call.wav")
    mono, rttm = call["root"] / "mono.wav", call["root"] / "mono.rttm"
    answer = plain.predict(mono, turns=rttm)
    spoken = [s for s in answer["segments"] if not s["no_speech"]]
    assert {s["speaker"] for s in spoken} == set(NAMES) and list(answer["parties"]) == NAMES
    for s in spoken:  # inside one of its speaker's turns, and the stereo call agrees
        turns = [p for p in call["placed"] if p[0] == s["speaker"]]
        assert any(a - 0.5 <= s["start"] and s["end"] <= b + 0.5 for _, a, b, _ in turns), s

        def shared(t, s=s):
            return min(t["end"], s["end"]) - max(t["start"], s["start"])

        assert max(stereo["segments"], key=shared)["speaker"] == s["speaker"], s
        others = [p for p in call["placed"] if p[0] != s["speaker"]]
        talk_over = any(a < s["end"] and b > s["start"] for _, a, b, _ in others)
        assert s["overlapped"] is talk_over, s
    assert any(s["overlapped"] for s in spoken)
    text = rttm.read_text()
    bad = [
        text.replace("SPEAKER mono", "SPEAKER other"),
        text + "SPEAKER mono 1 20.0 99.0 <NA> <NA> agent <NA> <NA>\n",
        text + "SPEAKER mono 1 two 1.0 <NA> <NA> agent <NA> <NA>\n",
    ]
    found = plain.predict([mono, mono, mono, mono], turns=[*bad, rttm], errors="report")
    assert "no SPEAKER turns of recording 'mono' (it has turns of other)" in found[0]["error"]
    assert "run past the audio's end" in found[1]["error"]
    assert "line 7: onset 'two'" in found[2]["error"]
    assert "error" not in found[3] and found[3]["parties"] == answer["parties"]


def test_recognize_hears_calls_as_the_library_does(call, split_recognizer, trained, tmp_path):
    """``raymer recognize`` with ``segment.channels: split`` over a manifest of the stereo
    call, the one-signal stereo file, and the mono call with its turns (a manifest column)
    and with turns of another recording: each segment with the library's speaker, words and
    label, in time order; each party's summary in the recordings row; the bad turn file is
    its recording's error row, the rest written; the timeline draws a lane per speaker."""
    import pyarrow.parquet as pq

    import raymer
    from raymer.config.recognize import RecognizeConfig
    from raymer.pipeline.recognize import recognize

    root = call["root"]
    other = tmp_path / "other.rttm"
    other.write_text((root / "mono.rttm").read_text().replace("SPEAKER mono", "SPEAKER other"))
    manifest = tmp_path / "calls.csv"
    manifest.write_text(
        "id,path,turns\n"
        f"call,{root / 'call.wav'},\nsame,{root / 'same.wav'},\n"
        f"mono,{root / 'mono.wav'},{root / 'mono.rttm'}\nwrong,{root / 'mono.wav'},other.rttm\n"
    )
    out = tmp_path / "out"
    summary = recognize(
        RecognizeConfig(
            input=str(manifest),
            checkpoint=str(trained.output),
            output=str(out),
            segment={"channels": "split", "channel_names": NAMES},
            resources={"asr": {"actors": 1, "num_cpus": 0.5, "threads": 1}},
            formats=["vtt"],
        )
    )
    assert (summary.recordings, summary.failed) == (3, 1)
    (error,) = pq.read_table(out / "errors" / "errors.parquet").to_pylist()
    assert error["id"] == "wrong" and error["stage"] == "turns"
    assert "no SPEAKER turns of recording 'mono' (it has turns of other)" in error["error"]
    rows = sorted(pq.read_table(out / "predictions").to_pylist(), key=lambda r: r["segment"])
    recordings = {r["id"]: r for r in pq.read_table(out / "recordings").to_pylist()}
    plain = raymer.Recognizer.from_checkpoint(trained.output, threads=1)
    library = {
        "call": split_recognizer.predict(root / "call.wav"),
        "same": split_recognizer.predict(root / "same.wav"),
        "mono": plain.predict(root / "mono.wav", turns=root / "mono.rttm"),
    }
    for rid, answer in library.items():
        mine = [r for r in rows if r["id"] == rid]
        # (a recording heard as one stream and kept whole is one segment, the answer itself)
        segments = answer.get("segments") or [{"text": answer["transcript"]} | answer]
        assert [r["segment"] for r in mine] == list(range(len(mine)))
        assert [(r["speaker"], r["transcript"], r["label"]) for r in mine] == [
            (s.get("speaker"), s["text"], s["label"]) for s in segments
        ], rid
        assert [r["overlapped"] for r in mine] == [s.get("overlapped") for s in segments]
        record = recordings[rid]
        assert record["channels"] == answer.get("channels") and record["label"] == answer["label"]
        parties = {p["speaker"]: p for p in record["parties"]}
        assert list(parties) == list(answer.get("parties", {})), rid
        for name, party in answer.get("parties", {}).items():
            assert parties[name]["speech_s"] == pytest.approx(party["speech_s"], abs=1e-3)
            assert parties[name]["label"] == party["label"]
    assert recordings["call"]["channels"] == "split" and recordings["same"]["channels"] == (
        "identical"
    )
    assert any(r["overlapped"] for r in rows if r["id"] == "mono")
    assert (out / "plots" / "call.png").stat().st_size > 10_000
    assert "<v customer>" in (out / "exports" / "call.vtt").read_text()


def test_extract_and_infer_hear_a_call_s_channels_as_its_parties(call, trained, tmp_path):
    """``raymer extract`` with ``segment.channels: split`` (and ``raymer infer`` after it):
    a row per channel of the call, each with its channel, its party's name as speaker (the
    manifest's speaker kept as manifest_speaker) and that party's words; the one-signal
    file one row; the three-channel file an error row that says why, the rest written;
    another channels setting over the same output is refused."""
    import pyarrow.parquet as pq

    from raymer.config import ExtractConfig, load_config
    from raymer.errors import UsageError
    from raymer.pipeline.extract import extract
    from raymer.training.infer import infer

    root = call["root"]
    manifest = tmp_path / "calls.csv"
    manifest.write_text(
        "id,path,speaker\n"
        + "".join(f"{n},{root / f'{n}.wav'},caller-{n}\n" for n in ("call", "same", "three"))
    )
    out = tmp_path / "features"
    split = {"channels": "split", "channel_names": NAMES}

    def run(segment):
        cfg = load_config(ExtractConfig, "configs/extract/tiny.yaml", [])
        return extract(
            cfg.model_copy(update={"input": str(manifest), "output": str(out)})
            if segment is None
            else ExtractConfig.model_validate(
                cfg.model_dump() | {"input": str(manifest), "output": str(out), "segment": segment}
            )
        )

    summary = run(split)
    assert (summary.clips_ok, summary.clips_failed) == (3, 1)
    (error,) = pq.read_table(out / "errors" / "errors.parquet").to_pylist()
    assert error["id"] == "three" and error["stage"] == "decode"
    assert "3 channels, and channels: split names 2 parties" in error["error"]
    rows = sorted(
        pq.read_table(out / "features").to_pylist(), key=lambda r: (r["id"], r["channel"] or 0)
    )
    heard = [(r["id"], r["channel"], r["speaker"], r["channels"]) for r in rows]
    assert heard == [
        ("call", 0, "agent", "split"),
        ("call", 1, "customer", "split"),
        ("same", None, None, "identical"),
    ]
    assert [r["manifest_speaker"] for r in rows] == ["caller-call", "caller-call", "caller-same"]
    for row in rows[:2]:  # each channel's transcript: its party's words, not the other's
        mine = " ".join(p[3] for p in call["placed"] if p[0] == row["speaker"])
        theirs = " ".join(p[3] for p in call["placed"] if p[0] != row["speaker"])
        assert _found(row["transcript"], mine) >= 0.6 > _found(row["transcript"], theirs), row
    with pytest.raises(UsageError, match="segment"):
        run(None)  # mixed channels over features of split ones: refused, says which setting
    infer(str(trained.output), str(out), str(tmp_path / "infer"))
    predicted = pq.read_table(tmp_path / "infer" / "predictions").to_pylist()
    assert sorted((p["id"], p["speaker"], p["channel"]) for p in predicted) == [
        ("call", "agent", 0),
        ("call", "customer", 1),
        ("same", None, None),
    ]
    assert all(isinstance(p["predicted"], str) for p in predicted)


def test_the_page_draws_a_lane_per_party(call, split_recognizer, browser, tmp_path):
    """The page (as the service serves it) showing the service's answer for the call: a lane
    per party, named, each segment's band in its speaker's lane, the rows naming the speaker."""
    from selenium.webdriver.common.by import By

    from raymer.audio.decode import Checked
    from raymer.config import DecodeConfig

    upload = Checked.check((call["root"] / "call.wav").read_bytes(), DecodeConfig(), 300.0)
    (answer,) = split_recognizer.core.recognize([upload])
    answer = json.loads(json.dumps(answer.to_api()))  # as the service sends it
    from raymer.serving.web import page_html

    page = tmp_path / "page.html"
    page.write_text(page_html(auth=False))
    driver = browser()
    try:
        driver.get(page.as_uri())
        driver.execute_script("show(arguments[0])", answer)
        lanes = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#tl text.lane")]
        assert lanes == NAMES
        bands = driver.find_elements(By.CSS_SELECTOR, "#tl rect.segment")
        assert len(bands) == len(answer["segments"])
        tops = {}
        for band, segment in zip(bands, answer["segments"], strict=True):
            assert band.get_attribute("data-speaker") == segment["speaker"]
            tops.setdefault(segment["speaker"], set()).add(float(band.get_attribute("y")))
        assert all(len(ys) == 1 for ys in tops.values()) and tops["agent"] != tops["customer"]
        rows = driver.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
        assert [r.text.split(",")[0] for r in rows] == [s["speaker"] for s in answer["segments"]]
    finally:
        driver.quit()
