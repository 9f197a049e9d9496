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
from dataclasses import dataclass

import numpy as np

from raymer import storage
from raymer.audio import SAMPLE_RATE
from raymer.training.metrics import labels_on


@dataclass
class LoadedModel:
    model: object
    spec: dict
    checkpoint: str


def checkpoints_of(uri: str) -> tuple[str, str | None]:
    """(fusion, text-only) checkpoint URIs for ``uri``: a ``raymer compare`` output gives both
    (its fusion and text runs); a train output or checkpoint folder gives itself only."""
    if storage.exists(storage.join(uri, "comparison.json")):
        return storage.join(uri, "fusion"), storage.join(uri, "text")
    return uri, None


class Heads:
    """The trained head(s) of a checkpoint: the main model (fusion, or audio/text only) and,
    for ``/v1/recognize/text``, a text-only model with the same labels."""

    def __init__(self, checkpoint: str, text_checkpoint: str | None = None, threads: int = 0):
        import torch

        from raymer.training.evaluate import load_model

        if threads > 0:
            torch.set_num_threads(threads)
        fusion, default_text = checkpoints_of(checkpoint)
        model, spec = load_model(fusion)
        self.main = LoadedModel(model, spec, spec["checkpoint"])
        text_uri = text_checkpoint or default_text
        self.text = None
        if text_uri:
            model, spec = load_model(text_uri)
            if spec["modality"] != "text":
                raise ValueError(f"text_checkpoint {text_uri} is a {spec['modality']} model")
            if spec["labels"] != self.main.spec["labels"]:
                raise ValueError(
                    f"text_checkpoint labels {spec['labels']} differ from the main model's "
                    f"{self.main.spec['labels']}"
                )
            self.text = LoadedModel(model, spec, spec["checkpoint"])
        elif self.main.spec["modality"] == "text":  # a text model answers texts itself
            self.text = self.main
        self.labels = self.main.spec["labels"]
        self.extract = self.main.spec.get("extract") or {}

    def info(self) -> dict:
        return {
            "asr_model": self.extract.get("asr_model", "whisper-base"),
            "text_model": self.extract.get("text_model", "minilm-l6"),
            "labels": self.labels,
            "loss": self.main.spec.get("loss", "bce"),
            "checkpoint": self.main.checkpoint,
            "modality": self.main.spec["modality"],
            "mode": self.main.spec.get("mode", "features"),
            "text_checkpoint": self.text.checkpoint if self.text else None,
            "frame_rate_hz": float(self.extract.get("frame_rate_hz", 10.0)),
            "needs_audio": self.needs_audio,
            "multi_label": self.multi_label,
            "text_multi_label": self.text_multi_label,
        }

    def score(self, frames: list, tokens: list, clips=None, texts=None, text_only=False):
        """Scores (N, L): of the main head on frames/tokens (features mode) or audio/text
        (fine-tune mode), or of the text-only head on tokens."""
        import torch

        from raymer.training.data import collate
        from raymer.training.evaluate import label_scores
        from raymer.training.loop import make_collate

        loaded = self.text if text_only else self.main
        if loaded is None:
            raise LookupError("no text-only model is loaded")
        spec = loaded.spec
        n = len(tokens) if tokens else len(texts)
        if spec.get("mode", "features") == "finetune":
            batch = {
                "text_source": np.array(["asr"] * n, dtype=object),
                "transcript": np.array(texts, dtype=object),
                "reference_text": np.array([None] * n, dtype=object),
                "id": np.array([str(i) for i in range(n)], dtype=object),
            }
            if spec["modality"] != "text":  # a text model reads no audio
                clips = clips or [np.zeros(SAMPLE_RATE // 10, dtype=np.float32)] * n
                batch["audio"] = np.array(
                    [c.astype(np.float32).tobytes() for c in clips], dtype=object
                )
            inputs = make_collate(spec)(batch)
        else:
            cols = {
                "id": np.array([str(i) for i in range(n)], dtype=object),
                # a text-only model reads no audio: one zero frame stands in
                "audio_frames": _objects(
                    [np.zeros((1, 1), np.float32)] * n if text_only or not frames else frames
                ),
                "text_tokens": _objects(tokens),
            }
            inputs = collate(cols, self.labels)
        with torch.no_grad():
            logits = loaded.model(
                inputs["audio"], inputs["audio_mask"], inputs["text"], inputs["text_mask"]
            ).logits
        return label_scores(logits, spec.get("loss", "bce")).numpy()

    @property
    def needs_audio(self) -> bool:
        """Fine-tune checkpoints with an audio branch read the raw audio; features ones the
        frames only, and a text model no audio at all."""
        spec = self.main.spec
        return spec.get("mode", "features") == "finetune" and spec["modality"] != "text"

    @property
    def multi_label(self) -> bool:
        """Trained on label lists: every label whose score passes 0.5 is reported."""
        return bool(self.main.spec.get("multi_label"))

    @property
    def text_multi_label(self) -> bool:
        """The same of the text-only model (``/v1/recognize/text``)."""
        return bool(self.text and self.text.spec.get("multi_label"))


def make_featurizer(extract: dict, device: str = "cpu", threads: int = 0):
    """The extraction pipeline's Whisper featurizer with the settings a checkpoint recorded."""
    from raymer.models.registry import resolve_model
    from raymer.models.whisper import WhisperFeaturizer

    return WhisperFeaturizer(
        resolve_model(extract.get("asr_model", "whisper-base")),
        device=device,
        compute_type=extract.get("compute_type", "default"),
        cpu_threads=threads,
        beam_size=extract.get("beam_size", 1),
        language=extract.get("language"),
        window=extract.get("window", "fit"),
        window_step_s=extract.get("window_step_s", 2.0),
        min_window_s=extract.get("min_window_s", 8.0),
        frame_rate_hz=extract.get("frame_rate_hz", 10.0),
    )


def make_text_encoder(extract: dict, device: str = "cpu", threads: int = 0):
    """The extraction pipeline's text encoder with the settings a checkpoint recorded."""
    import torch

    from raymer.models.registry import resolve_model
    from raymer.models.text_encoder import TextEncoder

    if threads > 0:
        torch.set_num_threads(threads)
    return TextEncoder(
        resolve_model(extract.get("text_model", "minilm-l6")),
        device=device,
        max_tokens=extract.get("max_text_tokens", 128),
    )


def judged(labels: list[str], scores: np.ndarray, multi_label: bool = False) -> dict:
    """A score per label and the top label; a multi-label model adds ``labels``: every label
    whose score passes 0.5 (possibly none)."""
    out = {
        "emotions": {lab: round(float(s), 6) for lab, s in zip(labels, scores, strict=True)},
        "label": labels[int(np.argmax(scores))],
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
        self.heads = Heads(checkpoint, text_checkpoint, threads)
        self.extract = self.heads.extract
        self.featurizer = make_featurizer(self.extract, device, threads)
        self.encoder = make_text_encoder(self.extract, device)
        self.frame_rate = float(self.extract.get("frame_rate_hz", 10.0))
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


def _objects(arrays: list) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    out[:] = [np.asarray(a, dtype=np.float32) for a in arrays]
    return out
