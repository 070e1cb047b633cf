"""Evaluation artifacts: accuracy, per-class accuracy, confusion matrix (JSON + PNG), learning curve (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from export.data.image_data import LabeledImages


def predict_probabilities(model: keras.Model, data: LabeledImages, batch_size: int = 256) -> np.ndarray:
    """Inference-mode probabilities for every image (float32 0..255 input contract)."""
    probs = [
        np.asarray(model(data.images[i : i + batch_size].astype(np.float32), training=False))
        for i in range(0, len(data), batch_size)
    ]
    return np.concatenate(probs) if probs else np.zeros((0, len(data.class_names)), np.float32)


def metrics_from_predictions(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class accuracy, their mean over the classes with test images (what an unbalanced test set's
    overall figure hides) and the confusion matrix (rows: true class, columns: predicted)."""
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = {
        name: (float(confusion[i, i] / support[i]) if support[i] else None) for i, name in enumerate(class_names)
    }
    return {
        "test_accuracy": float((labels == predicted).mean()) if len(labels) else 0.0,
        "test_images": int(len(labels)),
        "per_class_accuracy": per_class,
        "mean_per_class_accuracy": float(np.mean(measured)) if (measured := [a for a in per_class.values()
                                                                               if a is not None]) else None,
        "confusion_matrix": confusion.tolist(),
    }


def evaluate(model: keras.Model, test: LabeledImages) -> dict:
    """Metrics of `model` on `test`."""
    predicted = predict_probabilities(model, test).argmax(axis=1)
    return metrics_from_predictions(test.labels, predicted, test.class_names)


def write_artifacts(directory: Path, metrics: dict, class_names: list[str], history: dict) -> list[Path]:
    """Write metrics.json, confusion_matrix.json/.png and learning_curve.png into `directory`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    summary = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    (directory / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    cm = {"labels": class_names, "rows": "true class", "columns": "predicted class",
          "matrix": metrics["confusion_matrix"]}
    (directory / "confusion_matrix.json").write_text(json.dumps(cm) + "\n")
    written += [directory / "metrics.json", directory / "confusion_matrix.json"]

    matrix = np.asarray(metrics["confusion_matrix"])
    size = max(6.0, 0.12 * len(class_names) + 4)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_title(f"Confusion matrix (test accuracy {metrics['test_accuracy']:.3f})")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 20:
        ax.set_xticks(range(len(class_names)), class_names, rotation=90)
        ax.set_yticks(range(len(class_names)), class_names)
        for (i, j), v in np.ndenumerate(matrix):
            colour = "black" if v < matrix.max() / 2 else "white"
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=colour)
    fig.tight_layout()
    fig.savefig(directory / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = len(history.get("loss", []))
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        for prefix, style in (("", "-"), ("val_", "--"), ("test_", ":")):
            values = history.get(prefix + key)
            if values:  # a series shorter than the fit's (say --test-each-epoch added on --resume) ends with it
                first = max(1, epochs - len(values) + 1)
                ax.plot(range(first, first + len(values)), values, style, marker="o", label=prefix + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "learning_curve.png", dpi=100)
    plt.close(fig)
    written += [directory / "confusion_matrix.png", directory / "learning_curve.png"]
    return written
