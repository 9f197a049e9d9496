"""Model batches: the padded tensors a checkpoint's model reads, made one way everywhere.

Two kinds of model (``ModelSpec.mode``):

- ``features``: the stored Whisper frames (T, D_a) and text token states (L, D_t), zero-padded,
  with masks True on real steps;
- ``finetune``: the log-mel of the audio, in a window fitted to the batch as extraction fits
  it, with the encoder-rate mask, and the text's token ids.

``Collate(spec)`` makes both, from two entry points: ``collate(columns)`` for a column batch of
stored rows (a Ray Data numpy batch; ``from_table`` for an Arrow table), ``collate.live(...)``
for inputs computed now (serving, the library); the model reads the first ``audio_dim`` frame
columns (stored frames may carry prosody it was trained without). (``run_batch``, the
batch-then-item rule: ``raymer.itemwise``.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from raymer.audio.decode import SAMPLE_RATE
from raymer.audio.normalize import FrameStats, standardize
from raymer.trained.checkpoint import ModelSpec, load_model
from raymer.trained.targets import (
    Columns,
    arrow_targets,
    dimension_targets,
    objects,
    targets,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import torch

logger = logging.getLogger(__name__)

INPUTS = ("audio", "audio_mask", "text", "text_mask")  # the model's forward, in order
MAX_SAMPLES = 30 * SAMPLE_RATE  # Whisper's encoder window: longer clips are cut to 30 s
ENCODER_HOP = SAMPLE_RATE // 50  # samples per Whisper encoder frame (20 ms)


def stack(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged (T_i, D) sequences -> zero-padded (B, T, D) and mask (B, T), True on real steps.
    A missing sequence (no audio in a text corpus: None, or NaN in an all-null numpy
    column) is empty, all masked."""
    seqs = [
        np.asarray(
            [np.asarray(f, dtype=np.float32) for f in (r if np.ndim(r) else [])],
            dtype=np.float32,
        )
        for r in rows
    ]
    dim = next((s.shape[1] for s in seqs if s.ndim == 2 and len(s)), 1)
    longest = max(1, max(len(s) for s in seqs))
    out = np.zeros((len(seqs), longest, dim), dtype=np.float32)
    mask = np.zeros((len(seqs), longest), dtype=bool)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = s
            mask[i, : len(s)] = True
    return out, mask


def stack_arrow(column) -> tuple[np.ndarray, np.ndarray]:
    """``stack`` for an Arrow ``list<list<float>>`` column, without a Python object per row or
    per frame: the frames are cut from the flat values by the list offsets and scattered into
    the padded array in one step. A null or empty sequence is empty, all masked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    frames = column.flatten()  # the steps of every sequence, in order (nulls contribute none)
    widths = pc.list_value_length(frames).to_numpy(zero_copy_only=False) if len(frames) else []
    dim = int(widths[0]) if len(widths) else 1
    if len(widths) and np.any(widths != dim):
        raise ValueError(f"steps of unequal width in one column ({sorted(set(widths))[:4]})")
    flat = frames.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    longest = max(1, int(lengths.max()) if n else 1)
    out = np.zeros((n, longest, dim), dtype=np.float32)
    mask = np.zeros((n, longest), dtype=bool)
    if flat.size:
        rows = np.repeat(np.arange(n), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        steps = np.arange(len(rows)) - starts
        out[rows, steps] = flat.reshape(-1, dim)
        mask[rows, steps] = True
    return out, mask


def text_of(source: str | None, transcript: str | None, reference: str | None) -> str:
    """The text a clip's text encoder read: its transcript, or its reference text."""
    return (reference if source == "reference" else transcript) or ""


class Collate:
    """The batch maker of one model (its ``ModelSpec``): stored rows or live inputs ->
    ``{audio, audio_mask, text, text_mask, label, dims, id}`` (``label``, ``dims``: None
    without targets; ``dims``: the spec's dimensions, NaN where a clip has no rating)."""

    def __init__(self, spec: ModelSpec, stats: FrameStats | None = None) -> None:
        self.spec, self.stats = spec, stats  # audio_norm speaker: per-speaker statistics
        self._tokenizer = self._extractor = None  # fine-tune: built on first use, per worker

    def __call__(self, batch: Columns) -> dict:
        """A column batch of stored rows: features (``audio_frames``, ``text_tokens``), or for
        fine-tune the decoded ``audio`` (float32 bytes; none for a text model) and the text
        columns (``text_source``, ``transcript``, ``reference_text``)."""
        if self.spec.finetune:
            clips = None
            if "audio" in batch:
                clips = [np.frombuffer(b, dtype=np.float32) for b in batch["audio"]]
            texts = [
                text_of(s, t, r)
                for s, t, r in zip(
                    batch["text_source"], batch["transcript"], batch["reference_text"], strict=True
                )
            ]
            out = self._finetune(clips, texts)
        else:
            groups = list(batch["speaker"]) if "speaker" in batch else None
            out = self._features(list(batch["audio_frames"]), list(batch["text_tokens"]), groups)
        out["label"] = targets(batch, self.spec.labels, self.spec.multi_label)
        out["dims"] = dimension_targets(batch, self.spec.dimensions)
        out["id"] = [str(x) for x in batch["id"]]
        return out

    def from_table(self, table: pa.Table) -> dict:
        """An Arrow table of stored rows (the columns ``__call__`` reads). In features mode
        the frames and tokens go from Arrow to the padded arrays by their offsets (no Python
        object per row), the labels by a dictionary lookup."""
        if self.spec.finetune:
            return self(columns(table))
        import torch

        audio, audio_mask = stack_arrow(table.column("audio_frames"))
        text, text_mask = stack_arrow(table.column("text_tokens"))
        has = "speaker" in table.column_names
        groups = table.column("speaker").to_pylist() if has else None
        return {
            "audio": torch.from_numpy(self._columns(audio, audio_mask, groups)),
            "audio_mask": torch.from_numpy(audio_mask),
            "text": torch.from_numpy(text),
            "text_mask": torch.from_numpy(text_mask),
            "label": arrow_targets(table, self.spec.labels, self.spec.multi_label),
            "dims": dimension_targets(
                {d: table.column(d) for d in self.spec.dimensions if d in table.column_names},
                self.spec.dimensions,
            ),
            "id": table.column("id").cast("string").to_pylist(),
        }

    def live(
        self,
        *,
        frames: Sequence[np.ndarray] | None = None,
        tokens: Sequence[np.ndarray] | None = None,
        clips: Sequence[np.ndarray] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict:
        """Inputs computed now: Whisper ``frames`` and text ``tokens`` (features mode; a text
        model needs no frames), or 16 kHz ``clips`` and ``texts`` (fine-tune mode)."""
        if self.spec.finetune:
            if self.spec.needs_audio and clips is None:
                raise ValueError("a fine-tune model with an audio branch needs the clips")
            out = self._finetune(None if clips is None else list(clips), list(texts or []))
        else:
            import torch

            # a text-only model reads no audio: one zero frame stands in (live_arrays)
            arrays = self.live_arrays(frames=frames, tokens=tokens)
            out = {k: torch.from_numpy(v) for k, v in arrays.items()}
        n = len(out["audio"])
        return out | {"label": None, "dims": None, "id": [str(i) for i in range(n)]}

    def live_arrays(self, *, frames=None, tokens=None) -> dict:
        """``live``'s features-mode inputs as numpy arrays (what a portable head reads)."""
        n = len(tokens or [])
        frames = frames if frames is not None else [np.zeros((1, 1), np.float32)] * n
        return self._arrays(list(frames), list(tokens or []))

    def _arrays(self, frames: list, tokens: list, groups: list | None = None) -> dict:
        audio, audio_mask = stack(frames)
        text, text_mask = stack(tokens)
        audio = self._columns(audio, audio_mask, groups)
        return {"audio": audio, "audio_mask": audio_mask, "text": text, "text_mask": text_mask}

    def _features(self, frames: list, tokens: list, groups: list | None = None) -> dict:
        import torch

        return {k: torch.from_numpy(v) for k, v in self._arrays(frames, tokens, groups).items()}

    def _columns(self, audio: np.ndarray, mask: np.ndarray, groups: list | None) -> np.ndarray:
        """The model's audio input: the first ``audio_dim`` frame columns (stored frames may
        carry prosody it was trained without); ``audio_norm: speaker``: standardised by
        speaker where ``groups`` and the stats know it, else with the checkpoint's pooled
        training statistics (``raymer.audio.normalize``)."""
        dim = self.spec.audio_dim
        audio = np.ascontiguousarray(audio[..., :dim]) if 0 < dim < audio.shape[-1] else audio
        if self.spec.audio_norm == "speaker":
            pooled = (self.spec.frame_mean, self.spec.frame_std) if self.spec.frame_mean else None
            audio = standardize(audio, mask, groups, self.stats, pooled)
        return audio

    def _finetune(self, clips: list[np.ndarray] | None, texts: list[str]) -> dict:
        import torch

        tokenizer = self._tools()
        n = len(texts)
        if clips is not None and self.spec.needs_audio:
            mel, mask = self._mel(clips)
        else:  # a text model: no audio was decoded, an empty placeholder stands in
            mel = np.zeros((n, self.spec.n_mels, 2), dtype=np.float32)
            mask = np.zeros((n, 1), dtype=bool)
        ids = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.spec.max_text_tokens,
            return_tensors="pt",
        )
        return {
            "audio": torch.from_numpy(mel),
            "audio_mask": torch.from_numpy(mask),
            "text": ids["input_ids"],
            "text_mask": ids["attention_mask"].bool(),
        }

    def _tools(self):
        if self._tokenizer is None:
            from faster_whisper.feature_extractor import FeatureExtractor
            from transformers import AutoTokenizer

            from raymer.models.registry import resolve_model

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(self.spec.text_encoder))
            self._extractor = FeatureExtractor(feature_size=self.spec.n_mels)
        return self._tokenizer

    def _mel(self, clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Clips -> log-mel in a window fitted to the batch, and the encoder-rate mask."""
        from raymer.models.whisper_input import log_mel, mel_window

        clips = [np.asarray(c, dtype=np.float32)[:MAX_SAMPLES] for c in clips]
        n_frames = mel_window([len(c) / SAMPLE_RATE for c in clips])
        mel = np.stack([log_mel(self._extractor, c, n_frames) for c in clips])
        mask = np.zeros((len(clips), n_frames // 2), dtype=bool)
        for i, clip in enumerate(clips):
            mask[i, : max(1, math.ceil(len(clip) / ENCODER_HOP))] = True
        return mel, mask


def forward(model, batch: dict, device: Any = "cpu"):
    """The model's output (``FusionOutput``) on a batch from ``Collate``."""
    return model(*(batch[k].to(device) for k in INPUTS))


def columns(table: pa.Table) -> Columns:
    """An Arrow table -> a column batch as Ray Data gives one (object arrays of row values)."""
    return {c: objects(table.column(c).to_pylist()) for c in table.column_names}


def scores_of(model, collate: Collate, batch: dict) -> torch.Tensor:
    """The model's answers on a batch, on the CPU (no gradients; the batch goes to the
    model's device): a score per label (B, L), as ``label_scores`` makes them, then a value
    per emotion dimension of the spec (B, D): (B, L + D) (``prediction.outputs`` splits it)."""
    import torch

    from raymer.trained.checkpoint import label_scores

    device = next(model.parameters()).device
    with torch.no_grad():
        out = forward(model, batch, device)
        scores = label_scores(out.logits, collate.spec.loss, collate.spec.temperature)
        if out.dims is not None:
            scores = torch.cat([scores, out.dims.to(scores.dtype)], dim=-1)
        return scores.cpu()


@dataclass
class LoadedModel:
    """A checkpoint's model, its spec and the batch maker of its inputs."""

    model: Any
    spec: ModelSpec
    collate: Collate

    @classmethod
    def load(cls, uri: str, device: str = "cpu") -> LoadedModel:
        model, spec = load_model(uri, device)
        return cls(model, spec, Collate(spec))

    @property
    def checkpoint(self) -> str | None:
        return self.spec.checkpoint

    def scores(self, batch: dict) -> torch.Tensor:
        """Scores (B, L) then dimensions (B, D) on a batch from ``self.collate``."""
        return scores_of(self.model, self.collate, batch)

    def answer(self, frames=None, tokens=None, clips=None, texts=None) -> np.ndarray:
        """Scores then dimensions (N, L + D) of inputs computed now (``Collate.live``)."""
        batch = self.collate.live(frames=frames, tokens=tokens, clips=clips, texts=texts)
        return self.scores(batch).numpy()
