"""Emotion recognition metrics: UA, WA, macro-F1, per-class recall, confusion matrix.

UA (unweighted accuracy) is the mean of the per-class recalls, the field's headline number on
imbalanced corpora such as IEMOCAP; WA (weighted accuracy) is plain accuracy.
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
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
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
        "confusion": cm.tolist(),
        "labels": list(labels),
        "n": total,
    }
