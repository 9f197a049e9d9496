"""Online recognition with the batch pipeline's own code: decode, Whisper, text encoder, head.

``Recognizer`` holds the models of one trained checkpoint and turns a batch of 16 kHz clips
into results: the transcript, language, duration, a score for every label, the top label, and
for long audio the Whisper segments with their own scores. It is plain Python (no Ray): the
Serve deployment wraps it, and tests and benchmarks can call it directly.

The inputs are made exactly as ``raymer extract`` made the training features: the same
``WhisperFeaturizer`` (one encoder pass feeds the decoder and the frames, same window and frame
rate) and the same ``TextEncoder`` on the transcript, with the settings the checkpoint recorded.
"""

from __future__ import annotations

import math

import numpy as np

from raymer import checkpoint
from raymer.audio import SAMPLE_RATE
from raymer.batches import LoadedModel
from raymer.checkpoint import labels_on, top_label


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
                raise ValueError(f"text_checkpoint {text_uri} is a {spec.modality} model")
            if spec.labels != self.main.spec.labels:
                raise ValueError(
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


def judged(labels: list[str], scores: np.ndarray, multi_label: bool = False) -> dict:
    """A score per label and the top label; a multi-label model adds ``labels``: every label
    whose score passes 0.5 (possibly none)."""
    out = {
        "emotions": {lab: round(float(s), 6) for lab, s in zip(labels, scores, strict=True)},
        "label": top_label(labels, scores),
    }
    if multi_label:
        out["labels"] = labels_on(labels, scores)
    return out


async def compose(
    clips: list[np.ndarray],
    speech,
    encode,
    score,
    labels: list[str],
    frame_rate: float,
    segments_over_s: float,
    needs_audio: bool = False,
    multi_label: bool = False,
) -> list[dict]:
    """Clips -> results, given the three stages as async callables on lists:
    ``speech(clips) -> [SpeechFeatures]``, ``encode(texts) -> [tokens]`` and
    ``score(frames, tokens, clips, texts) -> scores (N, L)``. The in-process ``Recognizer``
    and the split Serve deployments both run this, so their answers are the same."""
    if not clips:
        return []
    speech_out = await speech(clips)
    texts = [s.transcript for s in speech_out]
    tokens = await encode(texts)
    audio = clips if needs_audio else None
    scores = await score([s.frames for s in speech_out], tokens, audio, texts)
    results = []
    for clip, sp, sc in zip(clips, speech_out, scores, strict=True):
        duration = len(clip) / SAMPLE_RATE
        result = {
            "transcript": sp.transcript,
            "language": sp.language,
            "duration_s": round(duration, 3),
        } | judged(labels, sc, multi_label)
        if duration > segments_over_s and sp.segments:
            # each Whisper segment scored on its own frames (and audio) and its own text
            frames, pieces, seg_texts = [], [], []
            for seg in sp.segments:
                a = int(math.floor(seg.start * frame_rate))
                b = max(a + 1, int(math.ceil(seg.end * frame_rate)))
                frames.append(sp.frames[a:b])
                seg_texts.append(seg.text)
                pieces.append(clip[int(seg.start * SAMPLE_RATE) : int(seg.end * SAMPLE_RATE) + 1])
            seg_scores = await score(
                frames, await encode(seg_texts), pieces if needs_audio else None, seg_texts
            )
            result["segments"] = []
            for seg, ssc in zip(sp.segments, seg_scores, strict=True):
                result["segments"].append(
                    {"start": seg.start, "end": seg.end, "text": seg.text}
                    | judged(labels, ssc, multi_label)
                )
        results.append(result)
    return results


def text_results(
    labels: list[str], texts: list[str], scores: np.ndarray, multi_label: bool = False
) -> list[dict]:
    return [
        {"text": text} | judged(labels, sc, multi_label)
        for text, sc in zip(texts, scores, strict=True)
    ]


class Recognizer:
    """The three stages of a checkpoint in one process, ready to score clips and texts."""

    def __init__(
        self,
        checkpoint: str,
        text_checkpoint: str | None = None,
        device: str = "cpu",
        threads: int = 0,
        segments_over_s: float = 30.0,
    ) -> None:
        from raymer.models.builders import build_featurizer, build_text_encoder

        self.heads = Heads(checkpoint, text_checkpoint, threads)
        self.extract = self.heads.extract
        self.featurizer = build_featurizer(self.extract, device, threads)
        self.encoder = build_text_encoder(self.extract, device, threads)
        self.frame_rate = float(self.extract.frame_rate_hz)
        self.segments_over_s = segments_over_s
        self.labels = self.heads.labels

    @property
    def text(self) -> LoadedModel | None:
        return self.heads.text

    def info(self) -> dict:
        return self.heads.info()

    async def arecognize(self, clips: list[np.ndarray]) -> list[dict]:
        async def speech(c):
            return self.featurizer(c)

        async def encode(t):
            return [e.tokens for e in self.encoder(t)]

        async def score(f, t, a, x):
            return self.heads.score(f, t, a, x)

        return await compose(
            clips,
            speech,
            encode,
            score,
            self.labels,
            self.frame_rate,
            self.segments_over_s,
            self.heads.needs_audio,
            self.heads.multi_label,
        )

    def recognize(self, clips: list[np.ndarray]) -> list[dict]:
        """16 kHz mono float32 clips -> one result per clip."""
        import asyncio

        return asyncio.run(self.arecognize(clips))

    def recognize_text(self, texts: list[str]) -> list[dict]:
        """Texts alone, through the text-only model."""
        tokens = [t.tokens for t in self.encoder(texts)]
        return text_results(
            self.labels,
            texts,
            self.heads.score([], tokens, texts=texts, text_only=True),
            self.heads.text_multi_label,
        )
