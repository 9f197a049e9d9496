"""Emotion recognition metrics: UA, WA, macro-F1, per-class recall, confusion matrix; and
for emotion dimensions (arousal, valence, dominance) the concordance correlation coefficient,
Pearson's r and RMSE.

UA (unweighted accuracy) is the mean of the per-class recalls, the field's headline number on
imbalanced corpora such as IEMOCAP; WA (weighted accuracy) is plain accuracy. CCC (Lin 1989)
is the dimensional field's headline number: it is 1 only when predictions equal the ratings,
and, unlike Pearson's r, falls when they are shifted or scaled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """(L, L) counts; rows are the true label, columns the prediction."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict:
    """UA, WA, macro-F1, per-class recall / precision / F1 / support, and the confusion matrix.

    Classes absent from ``y_true`` are left out of UA and macro-F1 (their recall is undefined).
    """
    cm = confusion_matrix(y_true, y_pred, len(labels))
    return _per_label(np.diag(cm), cm.sum(axis=1), cm.sum(axis=0), labels) | {
        "confusion": cm.tolist(),
        "n": int(cm.sum()),
    }


def _per_label(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray, labels) -> dict:
    """From per-label true positives, supports and prediction counts: per-label recall,
    precision, F1; UA (mean recall), WA (pooled recall) and macro-F1 over present labels."""
    recall = np.divide(tp, support, out=np.zeros(len(labels)), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(labels)), where=denom > 0)
    present = support > 0
    total = int(support.sum())
    return {
        "ua": float(recall[present].mean()) if present.any() else 0.0,
        "wa": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            label: {
                "recall": float(recall[i]),
                "precision": float(precision[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
    }


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Metrics of multi-label predictions (``y_true``, ``y_pred``: (N, L) booleans).

    Per label: recall, precision, F1, support (clips that carry it). UA is the mean per-label
    recall and WA the recall pooled over labels (support-weighted), as for single labels;
    macro-F1 averages the per-label F1 (labels present in ``y_true``); micro-F1 pools every
    decision; exact_match is the share of clips whose predicted set equals the true one.
    """
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    tp = (y_true & y_pred).sum(0)
    support, predicted = y_true.sum(0), y_pred.sum(0)
    pooled = 2 * tp.sum() + (predicted.sum() - tp.sum()) + (support.sum() - tp.sum())
    return _per_label(tp, support, predicted, labels) | {
        "micro_f1": float(2 * tp.sum() / pooled) if pooled else 0.0,
        "exact_match": float((y_true == y_pred).all(1).mean()) if len(y_true) else 0.0,
        "n": int(len(y_true)),
        "multi_label": True,
    }


def ccc(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Concordance correlation coefficient: 2 cov / (var_t + var_p + (mean_t - mean_p)^2)."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if len(t) < 2:
        return 0.0
    denom = t.var() + p.var() + (t.mean() - p.mean()) ** 2
    return float(2 * np.mean((t - t.mean()) * (p - p.mean())) / denom) if denom > 0 else 0.0


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict:
    """CCC, Pearson's r, RMSE and n of one dimension's predictions; clips without a rating
    (NaN or None in ``y_true``) are left out."""
    t = np.array([np.nan if v is None else v for v in y_true], dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    rated = ~np.isnan(t)
    t, p = t[rated], p[rated]
    r = 0.0
    if len(t) > 1 and t.std() > 0 and p.std() > 0:
        r = float(np.corrcoef(t, p)[0, 1])
    rmse = float(np.sqrt(np.mean((t - p) ** 2))) if len(t) else 0.0
    return {"ccc": ccc(t, p), "pearson": r, "rmse": rmse, "n": int(len(t))}


def dimension_metrics(y_true: np.ndarray, y_pred: np.ndarray, dimensions: Sequence[str]) -> dict:
    """``regression_metrics`` of each dimension (``y_true``, ``y_pred``: (N, D))."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1, len(dimensions))
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1, len(dimensions))
    return {d: regression_metrics(y_true[:, i], y_pred[:, i]) for i, d in enumerate(dimensions)}
