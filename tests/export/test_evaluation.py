"""Evaluation metrics shared by every exporter."""

import numpy as np

from export.evaluation import metrics_from_predictions


def test_metrics_give_per_class_accuracies_their_mean_and_the_confusion_matrix():
    labels, predicted = np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 0, 1, 1, 0])
    metrics = metrics_from_predictions(labels, predicted, ["a", "b", "c"])
    assert metrics["test_accuracy"] == 4 / 6 and metrics["test_images"] == 6
    assert metrics["per_class_accuracy"] == {"a": 0.75, "b": 0.5, "c": None}  # c: no test images
    assert metrics["mean_per_class_accuracy"] == 0.625  # over the classes with test images
    assert metrics["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 0, 0]]
