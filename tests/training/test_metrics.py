"""Metrics: accuracy, top-k accuracy, confusion matrix."""

import numpy as np
import pytest

from cnnumpy import metrics

SCORES = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.4, 0.35, 0.25]]
)
LABELS = np.array([0, 1, 1, 2])


def test_accuracy_with_ids_and_one_hot():
    assert metrics.accuracy(LABELS, SCORES) == 0.5
    assert metrics.accuracy(np.eye(3)[LABELS], SCORES) == 0.5
    # a single sigmoid output is thresholded at 0.5
    assert metrics.accuracy(np.array([1, 0, 1]), np.array([[0.9], [0.2], [0.4]])) == (
        pytest.approx(2 / 3)
    )
    with pytest.raises(ValueError, match="accuracy: 3 labels for 4 predictions"):
        metrics.accuracy(LABELS[:3], SCORES)


def test_top_k_accuracy():
    assert metrics.top_k_accuracy(LABELS, SCORES, k=1) == 0.5
    assert metrics.top_k_accuracy(LABELS, SCORES, k=2) == 0.75
    assert metrics.top_k_accuracy(LABELS, SCORES, k=3) == 1.0
    assert metrics.get("top2")(LABELS, SCORES) == 0.75
    with pytest.raises(ValueError, match=r"1 <= k <= K, got shape \(4, 3\) and k=4"):
        metrics.top_k_accuracy(LABELS, SCORES, k=4)


def test_confusion_matrix_and_per_class_accuracy():
    matrix = metrics.confusion_matrix(LABELS, SCORES)
    expected = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(LABELS, SCORES.argmax(1), 3), expected
    )
    assert matrix.sum() == len(LABELS)
    np.testing.assert_allclose(metrics.per_class_accuracy(matrix), [1.0, 0.5, 0.0])


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1")
