"""A recording's answer as WebVTT, SRT, a Praat TextGrid and CSV, each opened by the reader
people use (webvtt-py, srt, praatio, csv): every cue and interval is its segment's."""

import csv
import html
import io

import pytest

from raymer.inference.exports import FORMATS, export
from raymer.inference.prediction import Prediction, SegmentPrediction

LABELS = ["angry", "happy", "neutral", "sad"]
DIMS = ["arousal", "valence"]


def _piece(i, start, end, text, label, top, speaker=None, spoken=True):
    scores = None
    if spoken:
        rest = (1 - top) / 3
        scores = {lab: (top if lab == label else rest) for lab in LABELS}
        if label == "uncertain":
            scores = {"angry": 0.3, "happy": 0.3, "neutral": 0.2, "sad": 0.2}
    return SegmentPrediction(
        segment=i,
        start_s=start,
        end_s=end,
        speech_s=end - start if spoken else 0.0,
        transcript=text if spoken else "",
        language="en" if spoken else None,
        no_speech=not spoken,
        no_speech_prob=0.01 if spoken else 0.9,
        label=label if spoken else None,
        scores=scores,
        dimensions={"arousal": 0.5 - i / 10, "valence": -0.25} if spoken else dict.fromkeys(DIMS),
        speaker=speaker,
    )


def _seconds(clock: str) -> float:
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _answer(speakers=(None, None, None, None)):
    pieces = [
        _piece(0, 0.32, 2.5, 'I said "no" & <meant> it --> now', "angry", 0.81, speakers[0]),
        _piece(1, 2.5, 4.0, "", None, 0.0, speakers[1], spoken=False),
        _piece(2, 4.0, 3671.25, "fine,\nthank you", "uncertain", 0.3, speakers[2]),
        _piece(3, 3671.0, 3680.5, "lovely day", "happy", 0.9, speakers[3]),
    ]
    return Prediction(3700.0, 10.0, "", "en", False, "happy", None, None, pieces, long=True)


@pytest.mark.parametrize("speakers", [(None,) * 4, ("agent", "agent", "customer", "agent")])
def test_every_cue_and_interval_is_its_segment_s(speakers, tmp_path):
    import srt
    import webvtt
    from praatio import textgrid

    answer = _answer(speakers)
    spoken = [p for p in answer.segments if not p.no_speech]

    path = tmp_path / "a.vtt"
    path.write_text(export(answer, "vtt", LABELS, DIMS))
    cues = webvtt.read(str(path))
    assert len(cues) == len(spoken) == 3
    for cue, p in zip(cues, spoken, strict=True):
        assert abs(_seconds(cue.start) - p.start_s) < 0.002
        assert abs(_seconds(cue.end) - p.end_s) < 0.002
        assert cue.voice == p.speaker
        words = " ".join(p.transcript.split()).replace("-->", "->")
        text = html.unescape(cue.text)
        assert text.endswith(words) and text.startswith(p.label)
    assert cues[0].text.startswith("angry 0.81: ") and cues[1].text.startswith("uncertain 0.30")

    subs = list(srt.parse(export(answer, "srt", LABELS, DIMS)))
    assert [s.index for s in subs] == [1, 2, 3]
    for sub, p in zip(subs, spoken, strict=True):
        assert abs(sub.start.total_seconds() - p.start_s) < 0.002
        assert abs(sub.end.total_seconds() - p.end_s) < 0.002
        prefix = f"{p.speaker}: " if p.speaker else ""
        assert sub.content.startswith(prefix + p.label) and "\n" not in sub.content

    path = tmp_path / "a.TextGrid"
    path.write_text(export(answer, "textgrid", LABELS, DIMS))
    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    assert grid.maxTimestamp == 3700.0
    who = list(dict.fromkeys(p.speaker for p in spoken))
    names = [f"{w}: {t}" if w else t for w in who for t in ("transcript", "label", *DIMS)]
    assert list(grid.tierNames) == names
    for w in who:
        prefix = f"{w}: " if w else ""
        mine = [p for p in spoken if p.speaker == w]
        labels = grid.getTier(prefix + "label").entries
        arousal = grid.getTier(prefix + "arousal").entries
        said = grid.getTier(prefix + "transcript").entries
        assert [e.label for e in labels] == [p.label for p in mine]
        assert [float(e.label) for e in arousal] == [
            round(p.dimensions["arousal"], 3) for p in mine
        ]
        assert [e.label for e in said] == [p.transcript for p in mine]
        for e, p in zip(labels, mine, strict=True):
            assert e.end == p.end_s and abs(e.start - p.start_s) < 0.3  # (overlap trimmed)
    full = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    tier = full.getTier(full.tierNames[0])
    assert tier.entries[0].start == 0 and tier.entries[-1].end == 3700.0

    rows = list(csv.DictReader(io.StringIO(export(answer, "csv", LABELS, DIMS))))
    assert len(rows) == len(answer.segments)
    for row, p in zip(rows, answer.segments, strict=True):
        assert float(row["start_s"]) == p.start_s and float(row["end_s"]) == p.end_s
        assert row["transcript"] == p.transcript and row["label"] == (p.label or "")
        assert row["no_speech"] == str(p.no_speech)
        for lab in LABELS:
            want = "" if p.scores is None else p.scores[lab]
            assert row[f"score_{lab}"] == str(want)
        assert row.get("speaker") == p.speaker


def test_an_answer_without_speech_gives_empty_files_that_still_parse(tmp_path):
    import webvtt
    from praatio import textgrid

    silent = _piece(0, 0.0, 3.0, "", None, 0.0, spoken=False)
    answer = Prediction(3.0, 0.0, "", None, True, None, None, None, [silent])
    (tmp_path / "a.vtt").write_text(export(answer, "vtt", LABELS))
    assert len(webvtt.read(str(tmp_path / "a.vtt"))) == 0
    assert export(answer, "srt", LABELS) == ""
    (tmp_path / "a.TextGrid").write_text(export(answer, "textgrid", LABELS))
    grid = textgrid.openTextgrid(str(tmp_path / "a.TextGrid"), includeEmptyIntervals=True)
    assert grid.maxTimestamp == 3.0 and list(grid.tierNames) == ["transcript", "label"]
    assert len(list(csv.DictReader(io.StringIO(export(answer, "csv", LABELS))))) == 1
    with pytest.raises(ValueError, match="choose one of vtt, srt, textgrid, csv"):
        export(answer, "docx", LABELS)
    assert FORMATS == ("vtt", "srt", "textgrid", "csv")


def test_each_party_of_a_call_gets_its_own_summary():
    """A recording whose pieces have speakers: per speaker, the speech seconds, each label's
    share of them, the label with the most and the speech-weighted dimensions, by the
    rules of a whole recording (uncertain pieces count for no label); none in one stream."""
    from raymer.inference.prediction import recording

    pieces = _answer(("agent", "agent", "customer", "agent")).segments
    answer = recording(pieces, 3700.0, LABELS, False, DIMS)
    agent, customer = answer.parties["agent"], answer.parties["customer"]
    assert list(answer.parties) == ["agent", "customer"]
    assert agent.speech_s == pytest.approx(2.18 + 9.5) and agent.label == "happy"
    assert agent.shares["happy"] == pytest.approx(9.5 / (9.5 + 2.18))
    assert agent.dimensions["arousal"] == pytest.approx((0.5 * 2.18 + 0.2 * 9.5) / (2.18 + 9.5))
    assert customer.label == "uncertain" and set(customer.shares.values()) == {0.0}
    api = answer.to_api()["parties"]
    assert api["agent"]["label"] == "happy" and api["customer"]["speech_s"] == 3667.25
    assert recording(_answer().segments, 3700.0, LABELS, False, DIMS).parties is None
    assert "parties" not in recording(_answer().segments, 3700.0, LABELS, False).to_api()
