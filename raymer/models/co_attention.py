"""Alternating co-attention (Lu et al. 2016), as Leung & Deng (2022) apply it to speech and text.

Pure torch. The attention operator of the paper::

    Λ(X; g):  H = tanh(W_x X + (W_g g) 1ᵀ),  a = softmax(w_hᵀ H) over valid positions,
              x̂ = Σ_i a_i x_i

applied three times: the speech with g = 0, the text guided by the attended speech, and the
speech again guided by the attended text.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class CoAttentionWeights(NamedTuple):
    """Attention weights of the three steps, for inspection (rows sum to 1 over valid positions)."""

    speech_first: Tensor  # (B, T_a)
    text: Tensor  # (B, T_t)
    speech: Tensor  # (B, T_a)


class GuidedAttentionPool(nn.Module):
    """Λ(X; g): attention pooling of a sequence, guided by a vector."""

    def __init__(self, dim: int, guide_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w_x = nn.Linear(dim, hidden_dim, bias=False)
        self.w_g = nn.Linear(guide_dim, hidden_dim)
        self.w_h = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, x: Tensor, mask: Tensor, guide: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), mask (B, T) True on real positions, guide (B, G) -> (B, D), weights (B, T)."""
        h = torch.tanh(self.w_x(x) + self.w_g(guide).unsqueeze(1))
        scores = self.w_h(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        # A sequence with no valid position (an empty transcript) pools to zeros, not NaN.
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        return torch.einsum("bt,btd->bd", weights, x), weights


class AlternatingCoAttention(nn.Module):
    """Speech (g = 0) -> text (g = attended speech) -> speech (g = attended text)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.speech_first = GuidedAttentionPool(dim, dim, hidden_dim)
        self.text = GuidedAttentionPool(dim, dim, hidden_dim)
        self.speech = GuidedAttentionPool(dim, dim, hidden_dim)

    def forward(
        self, x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor
    ) -> tuple[Tensor, Tensor, CoAttentionWeights]:
        """x (B, T_a, D), y (B, T_t, D), masks True on real positions -> x̂ (B, D), ŷ (B, D), weights."""
        zero = x.new_zeros(x.shape[0], self.dim)
        s1, a1 = self.speech_first(x, x_mask, zero)
        y_hat, b = self.text(y, y_mask, s1)
        x_hat, a2 = self.speech(x, x_mask, y_hat)
        return x_hat, y_hat, CoAttentionWeights(a1, b, a2)
