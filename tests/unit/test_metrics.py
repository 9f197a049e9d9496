import numpy as np
import pytest

from raymer.trained.checkpoint import labels_on
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


def test_multilabel_metrics_by_hand():
    from raymer.training.metrics import multilabel_metrics

    labels = ["anger", "joy", "sadness"]
    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=bool)
    y_pred = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    m = multilabel_metrics(y_true, y_pred, labels)
    # anger: tp 2 of 2, predicted 2; joy: tp 1 of 1, predicted 2; sadness: tp 1 of 2, predicted 1
    assert m["per_class"]["anger"] == {"recall": 1.0, "precision": 1.0, "f1": 1.0, "support": 2}
    assert m["per_class"]["joy"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["sadness"]["recall"] == pytest.approx(0.5)
    assert m["ua"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["wa"] == pytest.approx(4 / 5)  # 4 true labels found of 5
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))  # tp 4, fp 1, fn 1
    assert m["exact_match"] == pytest.approx(2 / 4)
    assert m["multi_label"] and m["n"] == 4


def test_labels_on_passes_the_threshold_only():
    labels = ["anger", "joy", "neutral"]
    assert labels_on(labels, [0.51, 0.5, 0.9]) == ["anger", "neutral"]
    assert labels_on(labels, np.array([0.1, 0.2, 0.3])) == []
    with pytest.raises(ValueError):
        labels_on(labels, [0.9, 0.9])
