"""Evaluation metrics shared by every exporter."""

import numpy as np

from export.training.evaluation import metrics_from_predictions


def test_metrics_give_per_class_accuracies_their_mean_and_the_confusion_matrix():
    labels, predicted = np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 0, 1, 1, 0])
    metrics = metrics_from_predictions(labels, predicted, ["a", "b", "c"])
    assert metrics["test_accuracy"] == 4 / 6 and metrics["test_images"] == 6
    assert metrics["per_class_accuracy"] == {"a": 0.75, "b": 0.5, "c": None}  # c: no test images
    assert metrics["mean_per_class_accuracy"] == 0.625  # over the classes with test images
    assert metrics["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_learning_curve_ends_a_shorter_series_at_the_last_epoch(tmp_path, monkeypatch):
    """A run resumed with `--test-each-epoch` added has test figures for its last epochs only: they are drawn at
    those epochs, not from epoch 1."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    from export.training.evaluation import write_artifacts

    drawn: dict[str, list[int]] = {}
    plot = Axes.plot

    def recording_plot(self, x, *args, **kwargs):
        drawn[kwargs["label"]] = list(x)
        return plot(self, x, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", recording_plot)
    metrics = metrics_from_predictions(np.array([0, 1]), np.array([0, 1]), ["a", "b"])
    history = {"loss": [1.0, 0.8, 0.6, 0.5], "accuracy": [0.5, 0.6, 0.7, 0.8], "test_loss": [0.7, 0.6],
               "test_accuracy": [0.65, 0.75]}
    written = write_artifacts(tmp_path, metrics, ["a", "b"], history)
    assert drawn == {"loss": [1, 2, 3, 4], "test_loss": [3, 4], "accuracy": [1, 2, 3, 4], "test_accuracy": [3, 4]}
    assert (tmp_path / "learning_curve.png") in written and (tmp_path / "learning_curve.png").stat().st_size > 0
