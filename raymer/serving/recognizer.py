"""Online recognition with the batch pipeline's own code: decode, Whisper, text encoder, head.

``Recognizer`` holds the models of one trained checkpoint and turns a batch of 16 kHz clips
into results: the transcript, language, duration, a score for every label, the top label, and
for long audio its segments with their own scores. It is plain Python (no Ray): the Serve
deployments and the library wrap it, and tests and benchmarks can call it directly.

Long audio follows ``raymer recognize``'s rule: a clip over ``segment_over_s`` is cut at its
pauses by the same VAD segmenter (``raymer.segment.split``), each segment is recognised on its
own, and the clip's label is the one with the most speech time; so the segments a service or
the library returns are the rows ``raymer recognize`` writes for the same file.

The inputs are made exactly as ``raymer extract`` made the training features: the same
``WhisperFeaturizer`` (one encoder pass feeds the decoder and the frames, same window and frame
rate) and the same ``TextEncoder`` on the transcript, with the settings the checkpoint recorded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from raymer import checkpoint
from raymer.audio import SAMPLE_RATE
from raymer.batches import LoadedModel
from raymer.checkpoint import labels_on, top_label
from raymer.errors import UsageError
from raymer.models.whisper import SpeechFeatures
from raymer.segment import Segment, SegmentOptions, SpeechRule, split


class Heads:
    """The trained head(s) of a checkpoint: the main model (fusion, or audio/text only) and,
    for ``/v1/recognize/text``, a text-only model with the same labels."""

    def __init__(self, checkpoint_uri: str, text_checkpoint: str | None = None, threads: int = 0):
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        main, default_text = checkpoint.models_of(checkpoint_uri)
        self.main = LoadedModel.load(main)
        text_uri = text_checkpoint or default_text
        self.text = None
        if text_uri:
            self.text = LoadedModel.load(text_uri)
            spec = self.text.spec
            if spec.modality != "text":
                raise UsageError(f"text_checkpoint {text_uri} is a {spec.modality} model")
            if spec.labels != self.main.spec.labels:
                raise UsageError(
                    f"text_checkpoint labels {spec.labels} differ from the main model's "
                    f"{self.main.spec.labels}"
                )
        elif self.main.spec.modality == "text":  # a text model answers texts itself
            self.text = self.main
        self.labels = self.main.spec.labels
        self.extract = self.main.spec.extract

    def info(self) -> dict:
        spec = self.main.spec
        return {
            "asr_model": self.extract.asr_model,
            "text_model": self.extract.text_model,
            "labels": self.labels,
            "loss": spec.loss,
            "checkpoint": self.main.checkpoint,
            "modality": spec.modality,
            "mode": spec.mode,
            "text_checkpoint": self.text.checkpoint if self.text else None,
            "frame_rate_hz": float(self.extract.frame_rate_hz),
            "needs_audio": self.needs_audio,
            "multi_label": self.multi_label,
            "text_multi_label": self.text_multi_label,
        }

    def score(self, frames: list, tokens: list, clips=None, texts=None, text_only=False):
        """Scores (N, L): of the main head on frames/tokens (features mode) or audio/text
        (fine-tune mode), or of the text-only head on tokens."""
        loaded = self.text if text_only else self.main
        if loaded is None:
            raise LookupError("no text-only model is loaded")
        batch = loaded.collate.live(
            frames=None if text_only or not frames else frames,
            tokens=tokens,
            clips=clips if loaded.spec.needs_audio else None,
            texts=texts,
        )
        return loaded.scores(batch).numpy()

    @property
    def needs_audio(self) -> bool:
        """Fine-tune checkpoints with an audio branch read the raw audio; features ones the
        frames only, and a text model no audio at all."""
        return self.main.spec.needs_audio

    @property
    def multi_label(self) -> bool:
        """Trained on label lists: every label whose score passes 0.5 is reported."""
        return self.main.spec.multi_label

    @property
    def text_multi_label(self) -> bool:
        """The same of the text-only model (``/v1/recognize/text``)."""
        return bool(self.text and self.text.spec.multi_label)


def judged(labels: list[str], scores: np.ndarray | None, multi_label: bool = False) -> dict:
    """A score per label and the top label; a multi-label model adds ``labels``: every label
    whose score passes 0.5 (possibly none). No scores (no speech): all of them null."""
    if scores is None:
        return {"emotions": None, "label": None} | ({"labels": None} if multi_label else {})
    out = {
        "emotions": {lab: round(float(s), 6) for lab, s in zip(labels, scores, strict=True)},
        "label": top_label(labels, scores),
    }
    if multi_label:
        out["labels"] = labels_on(labels, scores)
    return out


def listen(
    featurizer, rule: SpeechRule, clips: list[np.ndarray], heard: list[float] | None = None
) -> list[SpeechFeatures]:
    """Whisper on the clips the VAD heard speech in (``heard``: the seconds of speech in each,
    as the segmenter found them; measured here when not given): a clip of noise or silence is
    never transcribed (Whisper would make words up), only marked with its ``speech_s``."""
    heard = list(heard) if heard is not None else [rule.speech_s(clip) for clip in clips]
    todo = [i for i, s in enumerate(heard) if s >= rule.min_speech_s]
    out = [SpeechFeatures(transcript="", language="", language_prob=0.0) for _ in clips]
    if todo:
        for i, features in zip(todo, featurizer([clips[i] for i in todo]), strict=True):
            out[i] = features
    for features, seconds in zip(out, heard, strict=True):
        features.speech_s = seconds
    return out


def silent(rule: SpeechRule, sp: SpeechFeatures) -> bool:
    return rule.silent(sp.speech_s, sp.transcript, sp.no_speech_prob, sp.avg_logprob)


@dataclass(frozen=True)
class Judging:
    """What ``compose`` needs to know of the checkpoint and the serving settings."""

    labels: list[str]
    frame_rate: float
    segments_over_s: float = 30.0
    needs_audio: bool = False
    multi_label: bool = False
    rule: SpeechRule = SpeechRule()

    @property
    def cutting(self) -> SegmentOptions:
        """The long-audio rule: ``raymer recognize``'s segmenter with this threshold."""
        return SegmentOptions(
            segment_over_s=self.segments_over_s, vad_threshold=self.rule.vad_threshold
        )


async def compose(clips: list[np.ndarray], speech, encode, score, judging: Judging) -> list[dict]:
    """Clips -> results, given the three stages as async callables on lists:
    ``speech(clips, heard) -> [SpeechFeatures]`` (``listen``), ``encode(texts) -> [tokens]``
    and ``score(frames, tokens, clips, texts) -> scores (N, L)``. The in-process
    ``Recognizer`` and the split Serve deployments both run this, so their answers are the
    same. Each clip is cut as ``raymer recognize`` cuts it (``split``: a clip up to
    ``segments_over_s`` is one piece); every piece without speech (``SpeechRule``) gets
    ``no_speech: true``, an empty transcript and null emotions: noise is never given an
    emotion."""
    if not clips:
        return []
    cuts = [list(split(iter([clip]), judging.cutting)) for clip in clips]
    pieces = [seg for cut in cuts for seg in cut]
    speech_out = await speech([p.audio for p in pieces], [p.speech_s for p in pieces])
    spoken = [i for i, sp in enumerate(speech_out) if not silent(judging.rule, sp)]
    scores: list = [None] * len(pieces)
    if spoken:
        found = await _scored(
            [speech_out[i].frames for i in spoken],
            [speech_out[i].transcript for i in spoken],
            [pieces[i].audio for i in spoken],
            encode,
            score,
            judging,
        )
        for i, sc in zip(spoken, found, strict=True):
            scores[i] = sc
    results, at = [], 0
    for clip, cut in zip(clips, cuts, strict=True):
        parts = [_piece(p, speech_out[at + k], scores[at + k], judging) for k, p in enumerate(cut)]
        at += len(cut)
        duration = len(clip) / SAMPLE_RATE
        if duration > judging.segments_over_s:
            results.append(_recording(parts, duration, judging))
        else:
            (part,) = parts
            results.append({k: v for k, v in part.items() if k not in ("start", "end")})
    return results


async def _scored(frames, texts, clips, encode, score, judging: Judging) -> list:
    tokens = await encode(texts)
    return list(await score(frames, tokens, clips if judging.needs_audio else None, texts))


def _piece(seg: Segment, sp: SpeechFeatures, scores, judging: Judging) -> dict:
    """One piece's answer (a row of ``raymer recognize``'s predictions)."""
    return {
        "start": round(seg.start_s, 3),
        "end": round(seg.end_s, 3),
        "transcript": sp.transcript if scores is not None else "",
        "language": sp.language or None,
        "duration_s": round(seg.end_s - seg.start_s, 3),
        "speech_s": round(sp.speech_s, 3) if sp.speech_s is not None else None,
        "no_speech": scores is None,
    } | judged(judging.labels, scores, judging.multi_label)


def _recording(parts: list[dict], duration: float, judging: Judging) -> dict:
    """A long clip's answer from its segments, as ``raymer recognize``'s recordings row: the
    label with the most speech time, each label's share of it, the segments' scores
    weighted by their length, and the segments themselves."""
    spoken = [p for p in parts if not p["no_speech"]]
    seconds = {lab: 0.0 for lab in judging.labels}
    for p in spoken:
        seconds[p["label"]] += p["end"] - p["start"]
    speech_s = sum(seconds.values())
    scores = None
    if spoken:
        weights = np.array([p["end"] - p["start"] for p in spoken])
        table = np.array([[p["emotions"][lab] for lab in judging.labels] for p in spoken])
        scores = weights @ table / max(weights.sum(), 1e-9)
    out = {
        "transcript": " ".join(p["transcript"] for p in spoken),
        "language": next((p["language"] for p in spoken if p["language"]), None),
        "duration_s": round(duration, 3),
        "speech_s": round(sum(p["speech_s"] or 0.0 for p in parts), 3),
        "no_speech": not spoken,
    } | judged(judging.labels, scores, judging.multi_label)
    if spoken:
        out["label"] = max(seconds, key=seconds.get)
        out["shares"] = {lab: round(s / speech_s, 6) for lab, s in seconds.items()}
    out["segments"] = [
        {"start": p["start"], "end": p["end"], "text": p["transcript"]}
        | {k: p[k] for k in ("speech_s", "no_speech", "emotions", "label", "labels") if k in p}
        for p in parts
    ]
    return out


def text_results(
    labels: list[str], texts: list[str], scores: np.ndarray, multi_label: bool = False
) -> list[dict]:
    return [
        {"text": text} | judged(labels, sc, multi_label)
        for text, sc in zip(texts, scores, strict=True)
    ]


class Recognizer:
    """The three stages of a checkpoint in one process, ready to score clips and texts.

    ``rule`` is the no-speech rule (``SpeechRule``): a clip it finds silent gets no emotion.
    """

    def __init__(
        self,
        checkpoint: str,
        text_checkpoint: str | None = None,
        device: str = "cpu",
        threads: int = 0,
        segments_over_s: float = 30.0,
        rule: SpeechRule | None = None,
    ) -> None:
        from raymer.models.builders import build_featurizer, build_text_encoder

        self.heads = Heads(checkpoint, text_checkpoint, threads)
        self.extract = self.heads.extract
        self.featurizer = build_featurizer(self.extract, device, threads)
        self.encoder = build_text_encoder(self.extract, device, threads)
        self.labels = self.heads.labels
        self.rule = rule or SpeechRule()
        self.judging = Judging(
            labels=self.labels,
            frame_rate=float(self.extract.frame_rate_hz),
            segments_over_s=segments_over_s,
            needs_audio=self.heads.needs_audio,
            multi_label=self.heads.multi_label,
            rule=self.rule,
        )

    @property
    def text(self) -> LoadedModel | None:
        return self.heads.text

    def info(self) -> dict:
        return self.heads.info()

    async def arecognize(self, clips: list[np.ndarray]) -> list[dict]:
        async def speech(c, heard):
            return listen(self.featurizer, self.rule, c, heard)

        async def encode(t):
            return [e.tokens for e in self.encoder(t)]

        async def score(f, t, a, x):
            return self.heads.score(f, t, a, x)

        return await compose(clips, speech, encode, score, self.judging)

    def recognize(self, clips: list[np.ndarray]) -> list[dict]:
        """16 kHz mono float32 clips -> one result per clip (inside a running event loop
        too)."""
        return run_sync(self.arecognize(clips))

    def recognize_text(self, texts: list[str]) -> list[dict]:
        """Texts alone, through the text-only model."""
        tokens = [t.tokens for t in self.encoder(texts)]
        return text_results(
            self.labels,
            texts,
            self.heads.score([], tokens, texts=texts, text_only=True),
            self.heads.text_multi_label,
        )


def run_sync(coro):
    """Run a coroutine to its end from sync code, inside a running event loop too (Jupyter):
    there, in a thread of its own with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="raymer-predict") as pool:
        return pool.submit(asyncio.run, coro).result()
