"""The training losses (pure torch): the label's (binary or softmax cross-entropy) and the
emotion dimensions' (1 - the concordance correlation coefficient, the dimensional field's
metric, optimised directly as in Atmaja & Akagi 2021 and audeering's wav2vec2 models)."""

from __future__ import annotations

import torch


def loss_fn(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target``: label indices (B,), or multi-hot (B, L) for multi-label (bce only)."""
    if kind == "ce":
        return torch.nn.functional.cross_entropy(logits, target)
    if target.dim() == 1:
        target = torch.nn.functional.one_hot(target, logits.shape[-1])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of 1 - CCC (concordance correlation) of a batch's predictions
    ``pred`` (B, D) and ratings ``target`` (B, D); a clip without a rating (NaN) is left out
    of its dimension, a dimension with fewer than two rated clips adds nothing."""
    losses = []
    for d in range(target.shape[1]):
        rated = ~torch.isnan(target[:, d])
        if int(rated.sum()) < 2:
            continue
        p, t = pred[rated, d], target[rated, d]
        cov = ((p - p.mean()) * (t - t.mean())).mean()
        denom = p.var(unbiased=False) + t.var(unbiased=False) + (p.mean() - t.mean()) ** 2
        losses.append(1 - 2 * cov / (denom + 1e-8))
    return torch.stack(losses).mean() if losses else pred.sum() * 0.0
