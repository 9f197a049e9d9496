"""What one piece of audio, or one clip, is found to hold: the typed records every entry
point answers with. A ``SegmentPrediction``'s fields are the columns of a row ``raymer
recognize`` writes; a ``Prediction`` is a clip's answer, whose ``to_api`` is the service's
JSON and the library's result. ``speech_time`` is the one rule for a recording's label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raymer.checkpoint import labels_on, top_label
from raymer.models.whisper import SpeechFeatures


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass
class SegmentPrediction:
    """One piece's answer; its fields are the columns of a row ``raymer recognize`` writes
    (``scores``: ``score_<label>``; null emotions where the piece holds no speech)."""

    segment: int
    start_s: float
    end_s: float
    speech_s: float | None
    transcript: str
    language: str | None
    no_speech: bool
    no_speech_prob: float | None
    label: str | None
    scores: dict[str, float] | None
    labels: list[str] | None = None  # multi-label models: every label over 0.5

    def columns(self, labels: list[str], multi_label: bool) -> dict:
        """The row ``raymer recognize`` writes (but the recording's ``id``/``path``)."""
        row = {
            k: getattr(self, k)
            for k in ("segment", "start_s", "end_s", "speech_s", "transcript", "language")
        } | {"no_speech": self.no_speech, "no_speech_prob": self.no_speech_prob}
        row["label"] = self.label
        for lab in labels:
            row[f"score_{lab}"] = self.scores[lab] if self.scores is not None else None
        if multi_label:
            row["labels"] = self.labels
        return row

    def to_api(self, multi_label: bool) -> dict:
        """A segment of the service's answer (``segments[i]``)."""
        return {
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "text": self.transcript,
            "speech_s": _r(self.speech_s, 3),
            "no_speech": self.no_speech,
        } | _judged(self.scores, self.label, self.labels, multi_label)


@dataclass
class Prediction:
    """A clip's answer: one piece (``long`` False) or a recording cut at its pauses (the
    label with the most speech time, each label's ``shares`` of it, the pieces' scores
    weighted by their length) with its ``segments``."""

    duration_s: float
    speech_s: float | None
    transcript: str
    language: str | None
    no_speech: bool
    label: str | None
    scores: dict[str, float] | None
    labels: list[str] | None
    segments: list[SegmentPrediction]
    long: bool = False
    shares: dict[str, float] | None = None
    multi_label: bool = False

    def to_api(self) -> dict:
        """The service's JSON answer (``/v1/recognize``); ``segments`` for long audio only."""
        out = {
            "transcript": self.transcript,
            "language": self.language,
            "duration_s": round(self.duration_s, 3),
            "speech_s": _r(self.speech_s, 3),
            "no_speech": self.no_speech,
        } | _judged(self.scores, self.label, self.labels, self.multi_label)
        if self.shares is not None:
            out["shares"] = {lab: round(s, 6) for lab, s in self.shares.items()}
        if self.long:
            out["segments"] = [s.to_api(self.multi_label) for s in self.segments]
        return out


def _judged(scores, label, labels, multi_label: bool) -> dict:
    out = {
        "emotions": None if scores is None else {k: _r(v) for k, v in scores.items()},
        "label": label,
    }
    if multi_label:
        out["labels"] = labels
    return out


def judged(labels: list[str], scores: np.ndarray | None, multi_label: bool = False) -> dict:
    """A score per label and the top label; a multi-label model adds ``labels``: every label
    whose score passes 0.5 (possibly none). No scores (no speech): all of them null."""
    if scores is None:
        return _judged(None, None, None, multi_label)
    named = {lab: float(s) for lab, s in zip(labels, scores, strict=True)}
    on = labels_on(labels, scores) if multi_label else None
    return _judged(named, top_label(labels, scores), on, multi_label)


def piece(
    segment: int,
    start_s: float,
    end_s: float,
    sp: SpeechFeatures,
    scores: np.ndarray | None,
    labels: list[str],
    multi_label: bool,
) -> SegmentPrediction:
    """One piece's answer from Whisper's output and the head's scores (None: no speech)."""
    spoken = scores is not None
    return SegmentPrediction(
        segment=segment,
        start_s=float(start_s),
        end_s=float(end_s),
        speech_s=None if sp.speech_s is None else float(sp.speech_s),
        transcript=sp.transcript if spoken else "",
        language=sp.language or None,
        no_speech=not spoken,
        no_speech_prob=sp.no_speech_prob,
        label=top_label(labels, scores) if spoken else None,
        scores={lab: float(s) for lab, s in zip(labels, scores, strict=True)} if spoken else None,
        labels=labels_on(labels, list(scores)) if spoken and multi_label else None,
    )


def speech_time(
    labels: list[str], spans: list[tuple[str | None, float]]
) -> tuple[str | None, dict[str, float] | None]:
    """A recording's label and each label's share of its speech time, from its pieces'
    ``(label, seconds)`` (label None: no speech): the label with the most speech time.
    ``raymer recognize``'s recordings and the service's long answers both use it."""
    seconds = dict.fromkeys(labels, 0.0)
    for label, s in spans:
        if label is not None:
            seconds[label] += s
    total = sum(seconds.values())
    if total <= 0:
        return None, None
    return max(seconds, key=seconds.get), {lab: s / total for lab, s in seconds.items()}


def single(part: SegmentPrediction, duration: float, multi_label: bool) -> Prediction:
    """A clip of one piece (up to ``segment_over_s``): the piece's answer is the clip's."""
    return Prediction(
        duration_s=duration,
        speech_s=part.speech_s,
        transcript=part.transcript,
        language=part.language,
        no_speech=part.no_speech,
        label=part.label,
        scores=part.scores,
        labels=part.labels,
        segments=[part],
        multi_label=multi_label,
    )


def recording(
    pieces: list[SegmentPrediction], duration: float, labels: list[str], multi_label: bool
) -> Prediction:
    """A long clip's answer from its pieces, as ``raymer recognize``'s recordings row."""
    spoken = [p for p in pieces if not p.no_speech]
    label, shares = speech_time(labels, [(p.label, p.end_s - p.start_s) for p in pieces])
    scores = None
    if spoken:
        weights = np.array([p.end_s - p.start_s for p in spoken])
        table = np.array([[p.scores[lab] for lab in labels] for p in spoken])
        mean = weights @ table / max(weights.sum(), 1e-9)
        scores = {lab: float(s) for lab, s in zip(labels, mean, strict=True)}
    return Prediction(
        duration_s=duration,
        speech_s=sum(p.speech_s or 0.0 for p in pieces),
        transcript=" ".join(p.transcript for p in spoken),
        language=next((p.language for p in spoken if p.language), None),
        no_speech=not spoken,
        label=label,
        scores=scores,
        labels=labels_on(labels, list(scores.values())) if scores and multi_label else None,
        segments=pieces,
        long=True,
        shares=shares,
        multi_label=multi_label,
    )
