"""How sure a model's scores are, and making them mean what they say: temperature scaling
(Guo et al. 2017), the expected calibration error, the Brier score and a reliability table.
Pure numpy; no Ray, no torch.

A single-label model is fitted one temperature ``T`` on its validation clips at the end of
training (``fit_temperature``: the softmax cross-entropy of ``logits / T``), and ``T`` is
kept in its spec (``ModelSpec.temperature``). Its scores are then ``softmax(logits / T)``
in every entry point (``raymer.trained.checkpoint.label_scores``): a distribution over its
labels whose top score says how often such an answer is right. Dividing the logits by one
number never changes which label is on top. A model's uncalibrated scores can be turned
back into logits (``logits_of``: a sigmoid's inverse; a softmax's log, up to a constant the
softmax ignores), so a temperature is fitted from scores alone.
"""

from __future__ import annotations

import numpy as np

BINS = 10  # the reliability table's equal-width confidence bins
T_RANGE = (0.02, 50.0)  # the temperatures searched (log-spaced): a sharp model to a flat one
_EPS = 1e-7


def logits_of(scores: np.ndarray, loss: str) -> np.ndarray:
    """A model's uncalibrated scores (sigmoids for ``bce``, a softmax for ``ce``) -> its
    logits (for ``ce``, up to a constant per clip, which a softmax ignores)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p) if loss == "bce" else np.log(p)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The calibrated scores: ``softmax(logits / temperature)`` over each clip's labels."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)[np.arange(len(y)), y]
    return float(-np.log(np.clip(p, _EPS, 1)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature whose softmax of ``logits / T`` has the least cross-entropy on
    labelled clips (``y``: each one's label index): a log-spaced search refined twice
    around its best point (the loss has one minimum in T)."""
    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(y, dtype=int)
    if len(y) == 0:
        raise ValueError("no labelled clips to fit a temperature on")
    grid = np.geomspace(*T_RANGE, 60)
    for _ in range(3):
        best = int(np.argmin([_nll(logits, y, t) for t in grid]))
        grid = np.geomspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], 21)
    return float(grid[int(np.argmin([_nll(logits, y, t) for t in grid]))])


def calibration(scores: np.ndarray, y: np.ndarray, bins: int = BINS) -> dict:
    """How well the top score says how often the top label is right, on labelled clips:
    ``ece`` (the expected calibration error: the clip-weighted mean gap between the top
    score and the accuracy in equal-width confidence bins), ``brier`` (the mean squared
    distance of the scores from the one-hot label, summed over labels), ``accuracy``,
    ``confidence`` (the mean top score) and ``bins`` (each bin's range, clips, mean
    confidence and accuracy: the reliability diagram)."""
    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y, dtype=int)
    n = len(y)
    if n == 0:
        return {"ece": 0.0, "brier": 0.0, "accuracy": 0.0, "confidence": 0.0, "n": 0, "bins": []}
    top = scores.max(1)
    right = (scores.argmax(1) == y).astype(np.float64)
    hot = np.eye(scores.shape[1])[y]
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(top, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            conf, acc = float(top[inside].mean()), float(right[inside].mean())
            ece += inside.sum() / n * abs(conf - acc)
            table.append(
                {"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(inside.sum()),
                 "confidence": conf, "accuracy": acc}
            )  # fmt: skip
    return {
        "ece": float(ece),
        "brier": float(((scores - hot) ** 2).sum(1).mean()),
        "accuracy": float(right.mean()),
        "confidence": float(top.mean()),
        "n": int(n),
        "bins": table,
    }


def coverage(scores: np.ndarray, y: np.ndarray, thresholds=(0.3, 0.4, 0.5, 0.6, 0.7)) -> list:
    """What ``min_confidence`` would do on labelled clips: for each threshold, the share
    of clips left without a label (top score under it) and the accuracy on the rest."""
    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y, dtype=int)
    top, right = scores.max(1), scores.argmax(1) == y
    out = []
    for t in thresholds:
        kept = top >= t
        out.append(
            {"min_confidence": float(t), "unlabelled": float(1 - kept.mean()) if len(y) else 0.0,
             "accuracy": float(right[kept].mean()) if kept.any() else None}
        )  # fmt: skip
    return out
