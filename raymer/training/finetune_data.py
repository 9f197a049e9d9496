"""Fine-tune mode's data: the audio behind each extracted clip, and a collate to log-mel + ids.

The features Parquet says which clips exist, their labels, speakers, audio ``path`` and text
(the transcript, or the reference text when extraction embedded that). The audio is read and
decoded with the extraction pipeline's own decoder; the collate computes Whisper's log-mel
features in a window fitted to the batch (as extraction does) and tokenizes the text.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from raymer.audio import SAMPLE_RATE
from raymer.training.data import targets

logger = logging.getLogger(__name__)

FINETUNE_COLUMNS = [
    "id",
    "label",
    "speaker",
    "session",
    "path",
    "transcript",
    "reference_text",
    "text_source",
]
MAX_SAMPLES = 30 * SAMPLE_RATE  # Whisper's encoder window: longer clips are cut to 30 s
ENCODER_HOP = SAMPLE_RATE // 50  # samples per encoder frame (20 ms)


def decode_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data batch -> the same rows with ``audio`` (float32 bytes, at most 30 s); a clip
    that no longer decodes is dropped with a warning (it decoded at extraction time)."""
    from raymer.pipeline.stages import decode_batch

    out = decode_batch(batch, max_duration_s=math.inf)
    keep = [i for i, error in enumerate(out["error"]) if error is None]
    for i, error in enumerate(out["error"]):
        if error is not None:
            logger.warning("fine-tune: skipping %s: %s", out["id"][i], error)
    audio = np.empty(len(keep), dtype=object)
    audio[:] = [bytes(out["audio"][i][: 4 * MAX_SAMPLES]) for i in keep]
    result = {k: out[k][keep] for k in FINETUNE_COLUMNS + _extra(batch) if k in out}
    result["audio"] = audio
    return result


def _extra(batch: dict) -> list[str]:
    return [k for k in batch if k not in FINETUNE_COLUMNS]


def text_of(row_source: str | None, transcript: str | None, reference: str | None) -> str:
    """The text the features' text encoder read: the transcript, or the reference text."""
    return (reference if row_source == "reference" else transcript) or ""


class FinetuneCollate:
    """Column batch (decoded audio, text) -> log-mel, encoder-rate audio mask, token ids."""

    def __init__(
        self,
        labels: list[str],
        text_model_dir: str,
        n_mels: int,
        max_tokens: int,
        multi_label: bool = False,
    ):
        self.labels, self.text_model_dir = labels, text_model_dir
        self.n_mels, self.max_tokens, self.multi_label = n_mels, max_tokens, multi_label
        self._tokenizer = self._extractor = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict:
        import torch

        if self._tokenizer is None:  # built lazily, on the worker that collates
            from faster_whisper.feature_extractor import FeatureExtractor
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.text_model_dir)
            self._extractor = FeatureExtractor(feature_size=self.n_mels)
        if "audio" in batch:
            mel, mask = self._audio(batch["audio"])
        else:  # a text model: no audio was decoded, an empty placeholder stands in
            mel = np.zeros((len(batch["id"]), self.n_mels, 2), dtype=np.float32)
            mask = np.zeros((len(batch["id"]), 1), dtype=bool)
        texts = [
            text_of(s, t, r)
            for s, t, r in zip(
                batch["text_source"], batch["transcript"], batch["reference_text"], strict=True
            )
        ]
        tokens = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return {
            "audio": torch.from_numpy(mel),
            "audio_mask": torch.from_numpy(mask),
            "text": tokens["input_ids"],
            "text_mask": tokens["attention_mask"].bool(),
            "label": targets(batch, self.labels, self.multi_label),
            "id": [str(x) for x in batch["id"]],
        }

    def _audio(self, audio) -> tuple[np.ndarray, np.ndarray]:
        """Decoded clips -> log-mel in a window fitted to the batch, and the encoder-rate mask."""
        from raymer.models.whisper import log_mel, mel_window

        clips = [np.frombuffer(b, dtype=np.float32)[:MAX_SAMPLES] for b in audio]
        n_frames = mel_window([len(c) / SAMPLE_RATE for c in clips])
        mel = np.stack([log_mel(self._extractor, c, n_frames) for c in clips])
        mask = np.zeros((len(clips), n_frames // 2), dtype=bool)
        for i, clip in enumerate(clips):
            mask[i, : max(1, math.ceil(len(clip) / ENCODER_HOP))] = True
        return mel, mask
