import numpy as np
import pytest

from raymer.training.metrics import classification_metrics, confusion_matrix

LABELS = ["angry", "happy", "sad", "neutral"]


def test_confusion_rows_are_truth():
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_ua_wa_f1_by_hand():
    y_true = [0, 0, 0, 0, 1, 1, 2, 3]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 2]
    m = classification_metrics(y_true, y_pred, LABELS)
    recalls = [3 / 4, 1 / 2, 1.0, 0.0]
    assert m["ua"] == pytest.approx(np.mean(recalls))
    assert m["wa"] == pytest.approx(5 / 8)
    precisions = [3 / 4, 1 / 2, 1 / 2, 0.0]
    f1 = [2 * p * r / (p + r) if p + r else 0 for p, r in zip(precisions, recalls, strict=True)]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["per_class"]["sad"] == {
        "recall": 1.0,
        "precision": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }
    assert sum(map(sum, m["confusion"])) == 8


def test_absent_class_is_left_out_of_ua():
    m = classification_metrics([0, 1], [0, 1], LABELS)
    assert m["ua"] == 1.0 and m["macro_f1"] == 1.0
    assert m["per_class"]["sad"]["support"] == 0
