"""Calibration (``raymer.trained.calibration``) and the min_confidence rule
(``checkpoint.top_label``, ``prediction.speech_time``): pure numpy, no model."""

import numpy as np
import pytest

from raymer.inference.prediction import speech_time
from raymer.trained import calibration
from raymer.trained.checkpoint import UNCERTAIN, top_label

LABELS = ["angry", "happy", "neutral", "sad"]


def _drawn(temperature: float, n: int = 6000, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): a model whose scores
    at temperature ``temperature`` are exactly right."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 4))
    p = calibration.softmax(logits, temperature)
    y = np.array([rng.choice(4, p=row) for row in p])
    return logits, y


@pytest.mark.parametrize("truth", [0.4, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at(truth):
    logits, y = _drawn(truth)
    assert calibration.fit_temperature(logits, y) == pytest.approx(truth, rel=0.12)


def test_calibration_lowers_the_error_of_an_overconfident_model():
    logits, y = _drawn(2.5, seed=1)
    before = calibration.calibration(calibration.softmax(logits), y)
    t = calibration.fit_temperature(logits, y)
    after = calibration.calibration(calibration.softmax(logits, t), y)
    assert before["confidence"] > before["accuracy"] + 0.1  # says more than it knows
    assert before["ece"] > 0.1 and after["ece"] < 0.03
    assert after["brier"] < before["brier"]
    assert after["accuracy"] == before["accuracy"]  # one temperature: the same top labels
    assert sum(b["n"] for b in after["bins"]) == len(y)


def test_error_and_brier_of_plain_cases():
    one_hot = np.eye(4)[[0, 1, 2, 3]]
    exact = calibration.calibration(one_hot, np.array([0, 1, 2, 3]))
    assert exact["ece"] == 0 and exact["brier"] == 0 and exact["accuracy"] == 1
    wrong = calibration.calibration(one_hot, np.array([1, 2, 3, 0]))
    assert wrong["ece"] == 1 and wrong["brier"] == 2  # sure and always wrong
    assert calibration.calibration(np.zeros((0, 4)), np.zeros(0, int))["n"] == 0
    with pytest.raises(ValueError, match="no labelled clips"):
        calibration.fit_temperature(np.zeros((0, 4)), np.zeros(0, int))


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_a_models_own_scores_give_back_its_logits(loss):
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (50, 4))
    scores = 1 / (1 + np.exp(-logits)) if loss == "bce" else calibration.softmax(logits)
    back = calibration.logits_of(scores, loss)
    # a softmax's logits come back up to a constant per clip, which a softmax ignores
    np.testing.assert_allclose(calibration.softmax(back), calibration.softmax(logits), atol=1e-6)
    if loss == "bce":
        np.testing.assert_allclose(back, logits, atol=1e-5)


def test_coverage_says_what_each_threshold_leaves_unlabelled():
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.8, 0.2]])
    y = np.array([0, 1, 1, 0])
    rows = {r["min_confidence"]: r for r in calibration.coverage(scores, y, (0.5, 0.7, 0.95))}
    assert rows[0.5] == {"min_confidence": 0.5, "unlabelled": 0.0, "accuracy": 0.75}
    assert rows[0.7]["unlabelled"] == 0.5 and rows[0.7]["accuracy"] == 1.0
    assert rows[0.95]["unlabelled"] == 1.0 and rows[0.95]["accuracy"] is None


def test_an_answer_under_min_confidence_is_uncertain_with_its_scores():
    scores = [0.2, 0.45, 0.3, 0.05]
    assert top_label(LABELS, scores) == "happy"
    assert top_label(LABELS, scores, 0.45) == "happy"  # at the threshold: labelled
    assert top_label(LABELS, scores, 0.5) == UNCERTAIN
    assert top_label([], [], 0.5) is None  # a model of dimensions alone has no label


def test_a_recordings_label_counts_only_the_pieces_it_was_sure_of():
    label, shares = speech_time(LABELS, [("sad", 2.0), (UNCERTAIN, 10.0), ("happy", 1.0)])
    assert label == "sad" and shares == {"angry": 0, "happy": 1 / 3, "neutral": 0, "sad": 2 / 3}
    label, shares = speech_time(LABELS, [(UNCERTAIN, 3.0), (None, 2.0)])
    assert label == UNCERTAIN and set(shares.values()) == {0.0}
    assert speech_time(LABELS, [(None, 2.0)]) == (None, None)  # no speech at all
