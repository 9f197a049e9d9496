"""What one piece of audio, or one clip, is found to hold: the typed records every entry
point answers with. A ``SegmentPrediction``'s fields are the columns of a row ``raymer
recognize`` writes; a ``Prediction`` is a clip's answer, whose ``to_api`` is the service's
JSON and the library's result. ``speech_time`` is the one rule for a recording's label,
``speech_means`` for its emotion dimensions (a model trained with ``targets`` beyond the
label answers ``arousal``, ``valence``, ``dominance`` in -1..1 beside it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raymer.models.whisper import SpeechFeatures
from raymer.trained.checkpoint import UNCERTAIN, labels_on, top_label


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
    # a model with emotion dimensions: each one's value (None where no speech); else None
    dimensions: dict[str, float | None] | None = None
    # who spoke it, where the recording's parties are known (exports: ``<v speaker>``, a
    # TextGrid's tiers per speaker, a CSV column); None: one stream
    speaker: str | None = None
    overlapped: bool | None = None  # with a diarizer's turns: another speaker's overlaps it

    def columns(self, labels: list[str], multi_label: bool) -> dict:
        """The row ``raymer recognize`` writes (but the recording's ``id``/``path``): a
        column per dimension too (``arousal``, ...) for a model with them."""
        row = {
            k: getattr(self, k)
            for k in ("segment", "start_s", "end_s", "speech_s", "transcript", "language")
        } | {"no_speech": self.no_speech, "no_speech_prob": self.no_speech_prob}
        row["label"] = self.label
        for lab in labels:
            row[f"score_{lab}"] = self.scores[lab] if self.scores is not None else None
        if multi_label:
            row["labels"] = self.labels
        return row | (self.dimensions or {})

    @classmethod
    def of_row(
        cls, row: dict, labels: list[str], dimensions: list[str] | tuple = ()
    ) -> SegmentPrediction:
        """A row ``raymer recognize`` wrote (``columns``) -> the piece's answer again."""
        spoken = not row["no_speech"]
        return cls(
            **{k: row[k] for k in ("segment", "start_s", "end_s", "speech_s", "transcript")},
            language=row.get("language"),
            no_speech=row["no_speech"],
            no_speech_prob=row.get("no_speech_prob"),
            label=row["label"],
            scores={lab: row[f"score_{lab}"] for lab in labels} if spoken else None,
            labels=row.get("labels"),
            dimensions={d: row.get(d) for d in dimensions} if dimensions else None,
            speaker=row.get("speaker"),
            overlapped=row.get("overlapped"),
        )

    def to_api(self, multi_label: bool) -> dict:
        """A segment of the service's answer (``segments[i]``); ``speaker`` where known."""
        out = {
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "text": self.transcript,
            "speech_s": _r(self.speech_s, 3),
            "no_speech": self.no_speech,
        } | _judged(self.scores, self.label, self.labels, multi_label, self.dimensions)
        out |= {"speaker": self.speaker} if self.speaker else {}
        return out | ({"overlapped": self.overlapped} if self.overlapped is not None else {})


@dataclass
class Party:
    """One speaker's part of a recording (``parties``): their speech seconds, each label's
    share of it, the label with the most of it, and their dimensions weighted by it."""

    speech_s: float
    label: str | None
    shares: dict[str, float] | None
    dimensions: dict[str, float | None] | None = None

    def to_api(self) -> dict:
        out = {"speech_s": round(self.speech_s, 3), "label": self.label}
        out["shares"] = (
            None if self.shares is None else {k: round(v, 6) for k, v in self.shares.items()}
        )
        if self.dimensions is not None:
            out["dimensions"] = {k: _r(v) for k, v in self.dimensions.items()}
        return out


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
    dimensions: dict[str, float | None] | None = None  # long: the pieces' speech_means
    parties: dict[str, Party] | None = None  # long, where its pieces have speakers
    # how a many-channel file was heard (``segment.channels: split``): "split" (a party per
    # channel), "identical" (its channels one signal: heard once); None: mixed, or mono
    heard_channels: str | None = None

    def to_api(self) -> dict:
        """The service's JSON answer (``/v1/recognize``); ``segments`` for long audio only."""
        out = {
            "transcript": self.transcript,
            "language": self.language,
            "duration_s": round(self.duration_s, 3),
            "speech_s": _r(self.speech_s, 3),
            "no_speech": self.no_speech,
        } | _judged(self.scores, self.label, self.labels, self.multi_label, self.dimensions)
        if self.shares is not None:
            out["shares"] = {lab: round(s, 6) for lab, s in self.shares.items()}
        if self.long:
            out["segments"] = [s.to_api(self.multi_label) for s in self.segments]
        if self.parties is not None:
            out["parties"] = {name: p.to_api() for name, p in self.parties.items()}
        if self.heard_channels is not None:
            out["channels"] = self.heard_channels
        return out


def _judged(scores, label, labels, multi_label: bool, dimensions=None) -> dict:
    out = {
        "emotions": None if scores is None else {k: _r(v) for k, v in scores.items()},
        "label": label,
    }
    if multi_label:
        out["labels"] = labels
    if dimensions is not None:
        out["dimensions"] = {k: _r(v) for k, v in dimensions.items()}
    return out


def outputs(
    values: np.ndarray | None, labels: list[str], dimensions: list[str] | tuple = ()
) -> tuple[np.ndarray | None, dict[str, float | None] | None]:
    """A model's answers on one item (``batches.scores_of``: a score per label, then a value
    per dimension) -> the label scores and the named dimensions (each None where
    ``values`` is None: no speech; the dict None for a model without dimensions)."""
    if not dimensions:
        return values, None
    if values is None:
        return None, dict.fromkeys(dimensions)
    values = np.asarray(values)
    n = len(labels)
    named = {d: float(v) for d, v in zip(dimensions, values[n:], strict=True)}
    return values[:n], named


def judged(
    labels: list[str],
    scores: np.ndarray | None,
    multi_label: bool = False,
    dimensions: list[str] | tuple = (),
    min_confidence: float = 0.0,
) -> dict:
    """A score per label and the top label (``uncertain`` under ``min_confidence``); a
    multi-label model adds ``labels``: every label whose score passes 0.5 (possibly none),
    a model with ``dimensions`` their values (``scores``: a model's answers, as ``outputs``
    reads them). No scores (no speech): all of them null."""
    scores, dims = outputs(scores, labels, dimensions)
    if scores is None:
        return _judged(None, None, None, multi_label, dims)
    named = {lab: float(s) for lab, s in zip(labels, scores, strict=True)}
    on = labels_on(labels, scores) if multi_label else None
    return _judged(named, top_label(labels, scores, min_confidence), on, multi_label, dims)


def piece(
    segment: int,
    start_s: float,
    end_s: float,
    sp: SpeechFeatures,
    scores: np.ndarray | None,
    labels: list[str],
    multi_label: bool,
    dimensions: list[str] | tuple = (),
    min_confidence: float = 0.0,
) -> SegmentPrediction:
    """One piece's answer from Whisper's output and the model's answers (None: no speech;
    a score per label, then a value per dimension, as ``outputs`` reads them); its label
    ``uncertain`` where the top score is under ``min_confidence``."""
    spoken = scores is not None
    scores, dims = outputs(scores, labels, dimensions)
    return SegmentPrediction(
        segment=segment,
        start_s=float(start_s),
        end_s=float(end_s),
        speech_s=None if sp.speech_s is None else float(sp.speech_s),
        transcript=sp.transcript if spoken else "",
        language=sp.language or None,
        no_speech=not spoken,
        no_speech_prob=sp.no_speech_prob,
        label=top_label(labels, scores, min_confidence) if spoken else None,
        scores={lab: float(s) for lab, s in zip(labels, scores, strict=True)} if spoken else None,
        labels=labels_on(labels, list(scores)) if spoken and multi_label else None,
        dimensions=dims,
    )


def speech_time(
    labels: list[str], spans: list[tuple[str | None, float]]
) -> tuple[str | None, dict[str, float] | None]:
    """A recording's label and each label's share of its speech time, from its pieces'
    ``(label, seconds)`` (label None: no speech): the label with the most speech time.
    Pieces the model was unsure of (``UNCERTAIN``, under ``min_confidence``) have no
    label to count; a recording of such pieces alone is ``UNCERTAIN``.
    ``raymer recognize``'s recordings and the service's long answers both use it."""
    seconds = dict.fromkeys(labels, 0.0)
    unsure = 0.0
    for label, s in spans:
        if label == UNCERTAIN:
            unsure += s
        elif label is not None:
            seconds[label] += s
    total = sum(seconds.values())
    if total <= 0:
        return (UNCERTAIN, dict.fromkeys(labels, 0.0)) if unsure > 0 else (None, None)
    return max(seconds, key=seconds.get), {lab: s / total for lab, s in seconds.items()}


def speech_means(
    dimensions: list[str] | tuple, spans: list[tuple[dict | None, float]]
) -> dict[str, float | None] | None:
    """A recording's emotion dimensions from its pieces' ``(dimensions, seconds)``: each
    one's mean over the pieces with speech, weighted by their length (as ``speech_time``
    weighs the labels); None each without speech, None for a model without dimensions.
    ``raymer recognize``'s recordings and the service's long answers both use it."""
    if not dimensions:
        return None
    out: dict[str, float | None] = {}
    for d in dimensions:
        rated = [(v[d], s) for v, s in spans if v is not None and v.get(d) is not None]
        total = sum(s for _, s in rated)
        out[d] = sum(x * s for x, s in rated) / total if rated and total > 0 else None
    return out


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
        dimensions=part.dimensions,
    )


def recording(
    pieces: list[SegmentPrediction],
    duration: float,
    labels: list[str],
    multi_label: bool,
    dimensions: list[str] | tuple = (),
) -> Prediction:
    """A long clip's answer from its pieces, as ``raymer recognize``'s recordings row."""
    spoken = [p for p in pieces if not p.no_speech]
    label, shares = speech_time(labels, [(p.label, p.end_s - p.start_s) for p in pieces])
    dims = speech_means(dimensions, [(p.dimensions, p.end_s - p.start_s) for p in spoken])
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
        dimensions=dims,
        parties=parties(pieces, labels, dimensions),
    )


def parties(
    pieces: list[SegmentPrediction], labels: list[str], dimensions: list[str] | tuple = ()
) -> dict[str, Party] | None:
    """Each speaker's ``Party`` (by the order they first speak), by the rules of a whole
    recording (``speech_time``, ``speech_means``) over their own pieces; None where no
    piece has a speaker (one stream)."""
    names = list(dict.fromkeys(p.speaker for p in pieces if p.speaker))
    if not names:
        return None
    out = {}
    for name in names:
        mine = [p for p in pieces if p.speaker == name]
        spans = [(p.label, p.end_s - p.start_s) for p in mine]
        label, shares = speech_time(labels, spans)
        spoken = [(p.dimensions, p.end_s - p.start_s) for p in mine if not p.no_speech]
        speech = sum(p.speech_s or 0.0 for p in mine)
        out[name] = Party(speech, label, shares, speech_means(dimensions, spoken))
    return out
