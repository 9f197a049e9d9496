"""A recording's answer (``prediction.Prediction``) in the files people open it with:
WebVTT and SRT subtitles (a player), a Praat TextGrid (Praat, ELAN, emotion researchers) and
a CSV of the segments (a spreadsheet). ``raymer recognize`` writes them per recording
(``formats``), the service gives them for ``?format=`` or an ``Accept`` type, the library
from ``Recognizer.export``: one writer each, here.

- **vtt**, **srt**: a cue per segment with speech (its time span; ``<v speaker>`` in WebVTT
  where the segment has a speaker), the label with its score, then the transcript:
  ``angry 0.82: I am furious about this``. ``uncertain`` (under ``min_confidence``) with the
  top score.
- **textgrid**: Praat's long text format, interval tiers ``transcript``, ``label`` and one
  per emotion dimension (``arousal``, ``valence``), each covering the whole recording (the
  segments' intervals, empty ones between them), prefixed ``speaker: `` per speaker where
  the segments have speakers.
- **csv**: one row per segment, the columns of ``raymer recognize``'s Parquet rows (but the
  recording's ``id``/``path``): ``segment``, ``start_s``, ``end_s``, ``speech_s``,
  ``transcript``, ``language``, ``no_speech``, ``label``, ``score_<label>``, each dimension.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable, Sequence
from typing import get_args

from raymer.config.recognize import ExportFormat
from raymer.inference.prediction import Prediction, SegmentPrediction

FORMATS: tuple[str, ...] = get_args(ExportFormat)
EXTENSIONS = {"vtt": "vtt", "srt": "srt", "textgrid": "TextGrid", "csv": "csv"}
MEDIA_TYPES = {
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "textgrid": "text/praat-textgrid",
    "csv": "text/csv",
}


def export(answer: Prediction, fmt: str, labels: Sequence[str], dimensions: Sequence[str] = ()):
    """``answer`` as the text of a ``fmt`` file (one of ``FORMATS``); ``labels`` and
    ``dimensions``: the model's, for the CSV's columns and the TextGrid's tiers."""
    writers: dict[str, Callable[[], str]] = {
        "vtt": lambda: vtt(answer.segments),
        "srt": lambda: srt(answer.segments),
        "textgrid": lambda: textgrid(answer.segments, answer.duration_s, dimensions),
        "csv": lambda: segments_csv(answer.segments, labels, dimensions),
    }
    if fmt not in writers:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return writers[fmt]()


def cue_text(piece: SegmentPrediction) -> str:
    """A cue's words: the label with its score (the top one), then the transcript on one
    line (a subtitle line may not hold a blank line, nor WebVTT's ``-->``)."""
    words = " ".join(piece.transcript.split()).replace("-->", "->")
    if piece.label is None or not piece.scores:
        return words
    top = piece.scores.get(piece.label, max(piece.scores.values()))
    return f"{piece.label} {top:.2f}: {words}" if words else f"{piece.label} {top:.2f}"


def _spoken(pieces: Sequence[SegmentPrediction]) -> list[SegmentPrediction]:
    return [p for p in pieces if not p.no_speech and p.end_s > p.start_s]


def _clock(seconds: float, decimal: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def _escape_vtt(text: str) -> str:
    return html.escape(text, quote=False)  # &, < and >: what a WebVTT cue may not hold


def vtt(pieces: Sequence[SegmentPrediction]) -> str:
    """WebVTT: a cue per segment with speech, ``<v speaker>`` where it has a speaker."""
    out = ["WEBVTT", ""]
    for p in _spoken(pieces):
        text = _escape_vtt(cue_text(p))
        who = p.speaker
        if who:
            text = f"<v {_escape_vtt(who)}>{text}"
        out += [
            f"segment-{p.segment}",
            f"{_clock(p.start_s, '.')} --> {_clock(p.end_s, '.')}",
            text,
            "",
        ]
    return "\n".join(out)


def srt(pieces: Sequence[SegmentPrediction]) -> str:
    """SubRip: a numbered cue per segment with speech (``speaker: `` before the words
    where it has a speaker)."""
    out = []
    for n, p in enumerate(_spoken(pieces), 1):
        who = p.speaker
        text = cue_text(p)
        out += [
            str(n),
            f"{_clock(p.start_s, ',')} --> {_clock(p.end_s, ',')}",
            f"{who}: {text}" if who else text,
            "",
        ]
    return "\n".join(out)


def _praat(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _tier(name: str, spans: list[tuple[float, float, str]], end: float) -> list[str]:
    """An interval tier covering 0..``end``: the spans (in order, none overlapping) and
    empty intervals between them."""
    intervals, at = [], 0.0
    for start, stop, text in spans:
        start = max(start, at)
        if stop <= start:
            continue
        if start > at:
            intervals.append((at, start, ""))
        intervals.append((start, stop, text))
        at = stop
    if end > at or not intervals:
        intervals.append((at, max(end, at), ""))
    lines = [
        '        class = "IntervalTier"',
        f"        name = {_praat(name)}",
        "        xmin = 0",
        f"        xmax = {intervals[-1][1]!r}",
        f"        intervals: size = {len(intervals)}",
    ]
    for i, (a, b, text) in enumerate(intervals, 1):
        lines += [
            f"        intervals [{i}]:",
            f"            xmin = {a!r}",
            f"            xmax = {b!r}",
            f"            text = {_praat(text)}",
        ]
    return lines


def textgrid(
    pieces: Sequence[SegmentPrediction], duration_s: float, dimensions: Sequence[str] = ()
) -> str:
    """A Praat TextGrid (long text format): tiers transcript, label and each dimension
    (its value to 3 decimals), per speaker where the segments have speakers."""
    spoken = _spoken(pieces)
    end = max([duration_s, *(p.end_s for p in spoken)], default=duration_s)
    speakers = list(dict.fromkeys(p.speaker for p in spoken)) or [None]
    tiers = []
    for who in speakers:
        mine = sorted((p for p in spoken if p.speaker == who), key=lambda p: p.start_s)
        prefix = f"{who}: " if who else ""
        tiers.append((prefix + "transcript", [(p.start_s, p.end_s, p.transcript) for p in mine]))
        tiers.append((prefix + "label", [(p.start_s, p.end_s, p.label or "") for p in mine]))
        for d in dimensions:
            values = [(p, (p.dimensions or {}).get(d)) for p in mine]
            spans = [(p.start_s, p.end_s, f"{v:.3f}") for p, v in values if v is not None]
            tiers.append((prefix + d, spans))
    out = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {end!r}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for i, (name, spans) in enumerate(tiers, 1):
        out += [f"    item [{i}]:", *_tier(name, spans, end)]
    return "\n".join(out) + "\n"


def segments_csv(
    pieces: Sequence[SegmentPrediction], labels: Sequence[str], dimensions: Sequence[str] = ()
) -> str:
    """The segments as CSV rows: the columns of ``raymer recognize``'s prediction rows
    (``SegmentPrediction.columns``), a ``speaker`` column where the segments have one."""
    speakers = any(p.speaker for p in pieces)
    columns = ["segment", "start_s", "end_s", "speech_s", "transcript", "language"]
    columns += ["no_speech", "label", *(f"score_{lab}" for lab in labels), *dimensions]
    columns = (["speaker"] if speakers else []) + columns
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for p in pieces:
        row = p.columns(list(labels), multi_label=False)
        if speakers:
            row["speaker"] = p.speaker
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()
