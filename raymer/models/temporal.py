"""The paper's temporal audio embedding: frames close in time embed closer than frames far apart.

Leung & Deng learn g so that ``||g(x_i) - g(x_j)|| <= ||g(x_i) - g(x_k)||`` when
``|i - j| <= |i - k|``, with a triplet margin loss. Here g is a small projection over Whisper
encoder frames; anchor and positive lie within ``k`` frames of each other, the negative lies
more than ``far`` frames away in the same clip, or in another clip. Pure torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class TemporalEmbedding(nn.Module):
    """g: (…, D_in) -> (…, D_out), L2-normalised."""

    def __init__(self, in_dim: int, out_dim: int = 128, hidden_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim)
        )
        self.out_dim = out_dim

    def forward(self, frames: Tensor) -> Tensor:
        """frames (B, T, D_in) or (N, D_in) -> same leading shape, D_out."""
        return nn.functional.normalize(self.net(frames), dim=-1)


def sample_triplets(
    lengths: list[int], n: int, k: int, far: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, 3) rows of (clip, frame) index pairs flattened as global frame indices.

    Frames are numbered clip after clip (``offsets``). Positive: within ``k`` frames of the
    anchor in its clip. Negative: more than ``far`` frames away in the clip, or (when the clip
    is too short for that, or by a coin flip) any frame of another clip.
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    usable = [c for c, t in enumerate(lengths) if t >= 2]
    out = np.empty((n, 3), dtype=np.int64)
    for row in range(n):
        c = usable[rng.integers(len(usable))]
        t = lengths[c]
        a = int(rng.integers(t))
        p = int(np.clip(a + rng.choice([d for d in range(-k, k + 1) if d != 0]), 0, t - 1))
        if p == a:
            p = a + 1 if a + 1 < t else a - 1
        far_frames = [i for i in range(t) if abs(i - a) > far]
        if far_frames and (len(lengths) == 1 or rng.random() < 0.5):
            neg = offsets[c] + int(rng.choice(far_frames))
        else:
            other = int(rng.choice([o for o in range(len(lengths)) if o != c and lengths[o] > 0]))
            neg = offsets[other] + int(rng.integers(lengths[other]))
        out[row] = (offsets[c] + a, offsets[c] + p, neg)
    return out


def fit_temporal_embedding(
    clips: list[np.ndarray],
    out_dim: int = 128,
    k: int = 2,
    far: int = 10,
    steps: int = 300,
    batch: int = 256,
    margin: float = 0.2,
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[TemporalEmbedding, list[float]]:
    """Train g on the frames of ``clips`` (each (T_i, D)); returns g (frozen) and the losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    frames = torch.from_numpy(np.concatenate(clips).astype(np.float32))
    lengths = [len(c) for c in clips]
    model = TemporalEmbedding(frames.shape[1], out_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.TripletMarginLoss(margin=margin)
    losses = []
    for _ in range(steps):
        idx = torch.from_numpy(sample_triplets(lengths, batch, k, far, rng))
        emb = model(frames[idx.reshape(-1)]).reshape(batch, 3, -1)
        loss = loss_fn(emb[:, 0], emb[:, 1], emb[:, 2])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), losses
