"""The fusion classifier: projections, optional transformer blocks, co-attention, head.

Pure torch; modules take numbers, never config objects (a builder reads the config).
``modality`` selects the paper's comparison: ``fusion`` (both), ``audio`` or ``text`` alone,
each with the same head.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from .co_attention import (
    AlternatingCoAttention,
    CoAttentionWeights,
    GuidedAttentionPool,
)

Modality = Literal["fusion", "audio", "text"]


class FusionOutput(NamedTuple):
    logits: Tensor  # (B, L)
    embedding: Tensor  # (B, H): the joint representation z
    weights: CoAttentionWeights | Tensor  # co-attention weights, or (B, T) for one modality
    dims: Tensor | None = None  # (B, D): emotion dimensions in -1..1 (regression head)


def _encoder(dim: int, layers: int, heads: int, dropout: float) -> nn.Module | None:
    if layers == 0:
        return None
    block = nn.TransformerEncoderLayer(
        dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(block, layers, enable_nested_tensor=False)


class CoAttentionFusion(nn.Module):
    """Audio frames and text tokens -> emotion logits through alternating co-attention."""

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        hidden_dim: int,
        num_labels: int,
        num_layers: int = 0,
        num_heads: int = 4,
        dropout: float = 0.1,
        modality: Modality = "fusion",
        audio_adapter: nn.Module | None = None,
        audio_norm: str = "none",
        prosody_mean: list[float] | None = None,
        prosody_std: list[float] | None = None,
        num_dims: int = 0,
    ) -> None:
        super().__init__()
        self.modality = modality
        # "recording": each recording's frames standardised over its own frames, first
        self.audio_norm = audio_norm
        # Prosody: the last len(prosody_mean) audio columns, standardised with the training
        # set's statistics (fixed, from the spec: not parameters, not in the state dict).
        self.prosody_dim = len(prosody_mean or [])
        if self.prosody_dim:
            std = torch.tensor(prosody_std, dtype=torch.float32).clamp_min(1e-3)
            self.register_buffer("prosody_mean", torch.tensor(prosody_mean), persistent=False)
            self.register_buffer("prosody_std", std, persistent=False)
        # An optional module in front of the audio frames (the temporal embedding g);
        # audio_dim is its output width then.
        self.audio_adapter = audio_adapter
        # Only the modules a modality uses exist: DDP refuses parameters that get no gradient.
        use_audio, use_text = modality in ("fusion", "audio"), modality in ("fusion", "text")
        self.audio_proj = nn.Linear(audio_dim, hidden_dim) if use_audio else None
        self.text_proj = nn.Linear(text_dim, hidden_dim) if use_text else None
        self.audio_encoder = (
            _encoder(hidden_dim, num_layers, num_heads, dropout) if use_audio else None
        )
        self.text_encoder = (
            _encoder(hidden_dim, num_layers, num_heads, dropout) if use_text else None
        )
        if modality == "fusion":
            self.co_attention = AlternatingCoAttention(hidden_dim, hidden_dim)
        else:
            self.pool = GuidedAttentionPool(hidden_dim, hidden_dim, hidden_dim)
        self.out_audio = nn.Linear(hidden_dim, hidden_dim) if use_audio else None  # W_xᵀ
        self.out_text = nn.Linear(hidden_dim, hidden_dim) if use_text else None  # W_yᵀ
        self.norm = nn.LayerNorm(hidden_dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_dim, num_labels))
        # Multi-task: emotion dimensions (arousal, valence, ...) from the same z, in -1..1.
        self.dims_head = None
        if num_dims:
            self.dims_head = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(hidden_dim, num_dims), nn.Tanh()
            )

    def _adapt(self, audio: Tensor, mask: Tensor) -> Tensor:
        if self.prosody_dim:
            p = self.prosody_dim
            prosody = (audio[..., -p:] - self.prosody_mean) / self.prosody_std
            audio = torch.cat([audio[..., :-p], prosody * mask.unsqueeze(-1)], dim=-1)
        if self.audio_norm == "recording":
            audio = standardize(audio, mask)
        return audio if self.audio_adapter is None else self.audio_adapter(audio)

    def _encode(
        self, seq: Tensor, mask: Tensor, proj: nn.Module, encoder: nn.Module | None
    ) -> Tensor:
        h = proj(seq)
        if encoder is not None:
            h = encoder(h, src_key_padding_mask=~mask)
        return h

    def forward(
        self, audio: Tensor, audio_mask: Tensor, text: Tensor, text_mask: Tensor
    ) -> FusionOutput:
        """audio (B, T_a, D_a), text (B, T_t, D_t), masks True on real frames -> logits (B, L)."""
        if self.modality == "text":
            y = self._encode(text, text_mask, self.text_proj, self.text_encoder)
            y_hat, weights = self.pool(y, text_mask, y.new_zeros(y.shape[0], y.shape[-1]))
            z = self.norm(self.out_text(y_hat))
        elif self.modality == "audio":
            x = self._encode(
                self._adapt(audio, audio_mask), audio_mask, self.audio_proj, self.audio_encoder
            )
            x_hat, weights = self.pool(x, audio_mask, x.new_zeros(x.shape[0], x.shape[-1]))
            z = self.norm(self.out_audio(x_hat))
        else:
            x = self._encode(
                self._adapt(audio, audio_mask), audio_mask, self.audio_proj, self.audio_encoder
            )
            y = self._encode(text, text_mask, self.text_proj, self.text_encoder)
            x_hat, y_hat, weights = self.co_attention(x, audio_mask, y, text_mask)
            z = self.norm(self.out_audio(x_hat) + self.out_text(y_hat))
        dims = None if self.dims_head is None else self.dims_head(z)
        return FusionOutput(self.head(z), z, weights, dims)


def standardize(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Each sequence of ``x`` (B, T, D) standardised per dimension over its own real frames
    (``mask`` (B, T), True on them): mean 0, variance 1; padding stays 0."""
    m = mask.unsqueeze(-1).to(x.dtype)
    n = m.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * m).sum(1, keepdim=True) / n
    var = ((x - mean) ** 2 * m).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * m
