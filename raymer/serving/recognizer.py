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


class Recognizer:
    """The models of a checkpoint, ready to score clips and texts."""

    def __init__(
        self,
        checkpoint: str,
        text_checkpoint: str | None = None,
        device: str = "cpu",
        threads: int = 0,
        segments_over_s: float = 30.0,
    ) -> None:
        import torch

        from raymer.models.registry import resolve_model
        from raymer.models.text_encoder import TextEncoder
        from raymer.models.whisper import WhisperFeaturizer
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
        ex = self.main.spec.get("extract") or {}
        self.extract = ex
        self.asr_model = ex.get("asr_model", "whisper-base")
        self.text_model = ex.get("text_model", "minilm-l6")
        self.featurizer = WhisperFeaturizer(
            resolve_model(self.asr_model),
            device=device,
            compute_type=ex.get("compute_type", "default"),
            cpu_threads=threads,
            beam_size=ex.get("beam_size", 1),
            language=ex.get("language"),
            window=ex.get("window", "fit"),
            window_step_s=ex.get("window_step_s", 2.0),
            min_window_s=ex.get("min_window_s", 8.0),
            frame_rate_hz=ex.get("frame_rate_hz", 10.0),
        )
        self.encoder = TextEncoder(
            resolve_model(self.text_model),
            device=device,
            max_tokens=ex.get("max_text_tokens", 128),
        )
        self.frame_rate = float(ex.get("frame_rate_hz", 10.0))
        self.segments_over_s = segments_over_s
        self.labels = self.main.spec["labels"]

    # -- what the service says about itself ------------------------------------------------
    def info(self) -> dict:
        models = {
            "asr_model": self.asr_model,
            "text_model": self.text_model,
            "labels": self.labels,
            "loss": self.main.spec.get("loss", "bce"),
            "checkpoint": self.main.checkpoint,
            "modality": self.main.spec["modality"],
            "mode": self.main.spec.get("mode", "features"),
            "text_checkpoint": self.text.checkpoint if self.text else None,
        }
        return models

    # -- scoring ------------------------------------------------------------------------------
    def _head(self, loaded: LoadedModel, frames: list, tokens: list, clips=None, texts=None):
        """Scores (N, L) of the head on frames/tokens (features mode) or audio/text (finetune)."""
        import torch

        from raymer.training.data import collate
        from raymer.training.evaluate import label_scores
        from raymer.training.loop import make_collate

        spec = loaded.spec
        n = len(tokens) if tokens else len(texts)
        if spec.get("mode", "features") == "finetune":
            clips = clips or [np.zeros(SAMPLE_RATE // 10, dtype=np.float32)] * n
            batch = {
                "audio": np.array([c.astype(np.float32).tobytes() for c in clips], dtype=object),
                "text_source": np.array(["asr"] * n, dtype=object),
                "transcript": np.array(texts, dtype=object),
                "reference_text": np.array([None] * n, dtype=object),
                "label": np.array([self.labels[0]] * n, dtype=object),
                "id": np.array([str(i) for i in range(n)], dtype=object),
            }
            inputs = make_collate(spec)(batch)
        else:
            cols = {
                "id": np.array([str(i) for i in range(n)], dtype=object),
                "label": np.array([self.labels[0]] * n, dtype=object),
                # a text-only model reads no audio: one zero frame stands in
                "audio_frames": _objects(frames or [np.zeros((1, 1), np.float32)] * n),
                "text_tokens": _objects(tokens),
            }
            inputs = collate(cols, self.labels)
        with torch.no_grad():
            logits = loaded.model(
                inputs["audio"], inputs["audio_mask"], inputs["text"], inputs["text_mask"]
            ).logits
        return label_scores(logits, spec.get("loss", "bce")).numpy()

    def _emotions(self, scores: np.ndarray) -> tuple[dict, str]:
        emotions = {lab: round(float(s), 6) for lab, s in zip(self.labels, scores, strict=True)}
        return emotions, self.labels[int(np.argmax(scores))]

    def recognize(self, clips: list[np.ndarray]) -> list[dict]:
        """16 kHz mono float32 clips -> one result per clip."""
        if not clips:
            return []
        speech = self.featurizer(clips)
        texts = [s.transcript for s in speech]
        tokens = [t.tokens for t in self.encoder(texts)]
        scores = self._head(self.main, [s.frames for s in speech], tokens, clips, texts)
        results = []
        for clip, sp, sc in zip(clips, speech, scores, strict=True):
            emotions, label = self._emotions(sc)
            duration = len(clip) / SAMPLE_RATE
            result = {
                "transcript": sp.transcript,
                "language": sp.language,
                "duration_s": round(duration, 3),
                "emotions": emotions,
                "label": label,
            }
            if duration > self.segments_over_s and sp.segments:
                result["segments"] = self._segments(clip, sp)
            results.append(result)
        return results

    def _segments(self, clip: np.ndarray, sp) -> list[dict]:
        """Each Whisper segment scored on its own frames (and audio) and its own text."""
        frames, tokens, pieces, texts = [], [], [], []
        for seg in sp.segments:
            a = int(math.floor(seg.start * self.frame_rate))
            b = max(a + 1, int(math.ceil(seg.end * self.frame_rate)))
            frames.append(sp.frames[a:b])
            texts.append(seg.text)
            pieces.append(clip[int(seg.start * SAMPLE_RATE) : int(seg.end * SAMPLE_RATE) + 1])
        tokens = [t.tokens for t in self.encoder(texts)]
        scores = self._head(self.main, frames, tokens, pieces, texts)
        out = []
        for seg, sc in zip(sp.segments, scores, strict=True):
            emotions, label = self._emotions(sc)
            out.append(
                {"start": seg.start, "end": seg.end, "text": seg.text, "emotions": emotions}
                | {"label": label}
            )
        return out

    def recognize_text(self, texts: list[str]) -> list[dict]:
        """Texts alone, through the text-only model."""
        if self.text is None:
            raise LookupError("no text-only model is loaded")
        tokens = [t.tokens for t in self.encoder(texts)]
        scores = self._head(self.text, [], tokens, texts=texts)
        results = []
        for text, sc in zip(texts, scores, strict=True):
            emotions, label = self._emotions(sc)
            results.append({"text": text, "emotions": emotions, "label": label})
        return results


def _objects(arrays: list) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    out[:] = [np.asarray(a, dtype=np.float32) for a in arrays]
    return out
