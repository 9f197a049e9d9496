"""End-to-end model for fine-tuning: Whisper encoder + text encoder + the co-attention head.

Pure torch. The encoders are the pretrained ones (transformers' ``WhisperEncoder`` converted
from the registry's CTranslate2 weights, and MiniLM); the head is the same
``CoAttentionFusion`` that features mode trains on cached frames, so both modes see the same
inputs: Whisper frames averaged to the feature frame rate, and the text encoder's token states.

Progressive unfreezing (the paper's schedule) is ``set_stage``: ``head`` trains the fusion
head only, ``top`` adds the last layers of both encoders, ``all`` trains everything.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .fusion import CoAttentionFusion, FusionOutput
from .whisper_encoder import encode

Stage = Literal["head", "top", "all"]
STAGES: tuple[Stage, ...] = ("head", "top", "all")


def masked_pool(frames: Tensor, mask: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Average groups of ``factor`` frames over the valid ones: (B, T, D) -> (B, ceil(T/f), D).

    A group with no valid frame is zero and masked out; on valid frames this is
    ``raymer.audio.decode.pool_frames``, the pooling of the cached features.
    """
    if factor <= 1:
        return frames, mask
    b, t, d = frames.shape
    pad = (-t) % factor
    weights = mask.to(frames.dtype)
    if pad:
        frames = nn.functional.pad(frames, (0, 0, 0, pad))
        weights = nn.functional.pad(weights, (0, pad))
    sums = (frames * weights.unsqueeze(-1)).reshape(b, -1, factor, d).sum(2)
    counts = weights.reshape(b, -1, factor).sum(2)
    return sums / counts.clamp(min=1).unsqueeze(-1), counts > 0


def _layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a Whisper encoder or a BERT-like text encoder."""
    if isinstance(getattr(encoder, "layers", None), nn.ModuleList):
        return encoder.layers
    inner = getattr(encoder, "encoder", None)
    if inner is not None and isinstance(getattr(inner, "layer", None), nn.ModuleList):
        return inner.layer
    raise TypeError(f"cannot find the transformer layers of {type(encoder).__name__}")


class EmotionRecognizer(nn.Module):
    """log-mel audio and text token ids -> emotion logits, through the co-attention head."""

    def __init__(
        self,
        audio_encoder: nn.Module | None,
        text_encoder: nn.Module | None,
        head: CoAttentionFusion,
        pool: int = 5,
    ) -> None:
        super().__init__()
        self.audio_encoder, self.text_encoder, self.head, self.pool = (
            audio_encoder,
            text_encoder,
            head,
            pool,
        )
        # Only the encoders a modality uses take part (DDP refuses parameters without grads).
        self.uses_audio = head.modality in ("fusion", "audio")
        self.uses_text = head.modality in ("fusion", "text")
        if not self.uses_audio:
            self.audio_encoder = None
        if not self.uses_text:
            self.text_encoder = None

    def forward(
        self, mel: Tensor, audio_mask: Tensor, input_ids: Tensor, text_mask: Tensor
    ) -> FusionOutput:
        """mel (B, n_mels, 2T), audio_mask (B, T) at the encoder's 50 Hz, input_ids and
        text_mask (B, L) -> FusionOutput (logits, joint embedding, attention weights)."""
        if self.uses_audio:
            frames = encode(self.audio_encoder, mel)
            frames, audio_mask = masked_pool(frames, audio_mask[:, : frames.shape[1]], self.pool)
        else:
            frames = mel.new_zeros(mel.shape[0], 1, 1)
            audio_mask = torch.ones(mel.shape[0], 1, dtype=torch.bool, device=mel.device)
        if self.uses_text:
            tokens = self.text_encoder(
                input_ids=input_ids, attention_mask=text_mask.long()
            ).last_hidden_state
        else:
            tokens = frames.new_zeros(input_ids.shape[0], 1, 1)
            text_mask = torch.ones(input_ids.shape[0], 1, dtype=torch.bool, device=mel.device)
        return self.head(frames, audio_mask, tokens, text_mask.bool())

    def encoders(self) -> list[nn.Module]:
        return [m for m in (self.audio_encoder, self.text_encoder) if m is not None]

    def set_stage(self, stage: Stage, top_layers: int = 2) -> None:
        """Progressive unfreezing: which parameters train in this stage."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
        self.head.requires_grad_(True)
        for encoder in self.encoders():
            encoder.requires_grad_(stage == "all")
            if stage == "top":
                for layer in list(_layers(encoder))[-top_layers:]:
                    layer.requires_grad_(True)
                norm = getattr(encoder, "layer_norm", None)  # Whisper's final LayerNorm
                if norm is not None:
                    norm.requires_grad_(True)
        if self.audio_encoder is not None:  # fixed sinusoids in Whisper, never trained
            self.audio_encoder.embed_positions.requires_grad_(False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.encoders() for p in m.parameters()]


def stage_at(epoch: int, top_at: int, all_at: int) -> Stage:
    """The unfreezing stage of an epoch (0-based): head, then top layers, then all."""
    return "all" if epoch >= all_at else "top" if epoch >= top_at else "head"
