"""`python -m export caltechown`: transfer learning (Caltech101 + your own photo classes) on the serving contract."""

from __future__ import annotations

import functools
import logging
import time

import keras
import numpy as np

from export.data.caltechown_data import load as load_caltechown
from export.data.image_data import LabeledImages, stratified_split
from export.exporters.pipeline import run_export, start_distribution, train_settings
from export.models.inference_views import with_test_time_flip
from export.models.transfer_model import build_classifier, resolve_project_model, unfreeze_top
from export.publish.publishing import TrainedModel
from export.settings import CaltechownConfig
from export.training.evaluation import evaluate
from export.training.loop import TrainSettings, fit, fit_figures
from export.training.precision import as_float32, resolve_precision, training_precision

logger = logging.getLogger(__name__)


def with_class_summaries(metrics: dict, own_classes: list[str]) -> dict:
    """Adds the own classes' accuracies on their own, which the overall figure hides: a few dozen own photos weigh
    little among 1,500 Caltech101 test images."""
    per_class = metrics["per_class_accuracy"]
    own = {name: per_class.get(name) for name in own_classes}
    own_measured = [a for a in own.values() if a is not None]
    return {**metrics, "own_class_accuracy": own,
            "own_class_mean_accuracy": float(np.mean(own_measured)) if own_measured else None}


def balanced_class_weights(train: LabeledImages) -> dict[int, float]:
    """n / (classes × count) per class, so small own classes weigh as much as large ones."""
    counts = np.bincount(train.labels, minlength=len(train.class_names)).astype(np.float64)
    present = counts > 0
    weights = np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {i: float(w) for i, w in enumerate(weights)}


def learning_rate(initial: float, schedule: str, epochs: int, steps_per_epoch: int):
    """A constant rate, or cosine decay from `initial` to 0 over the phase."""
    if schedule == "constant" or epochs * steps_per_epoch == 0:
        return initial
    return keras.optimizers.schedules.CosineDecay(initial, decay_steps=epochs * steps_per_epoch)


def run(cfg: CaltechownConfig) -> dict:
    """Load, split, train (head, then fine-tune), evaluate, stage, gate, publish."""
    return run_export(cfg, train)


def train(cfg: CaltechownConfig) -> tuple[TrainedModel | None, LabeledImages]:
    """Load and split the photos, build the classifier on its backbone, fit the head then fine-tune, evaluate."""
    started = time.monotonic()
    distribution = start_distribution(cfg)
    size = (cfg.input_size, cfg.input_size)
    data = load_caltechown(cfg.data, list(cfg.own), size, cfg.cache_dir, cfg.strict)
    rest, test = stratified_split(data.images, cfg.test_split, cfg.seed)
    train, val = stratified_split(rest, cfg.val_split, cfg.seed + 1)
    if cfg.limit:
        from export.data.image_data import stratified_limit

        train = stratified_limit(train, cfg.limit, cfg.seed)
    logger.info("split: %d train, %d validation, %d test", len(train), len(val), len(test))
    keras.utils.set_random_seed(cfg.seed)
    backbone_from = resolve_project_model(cfg.backbone_from) if cfg.backbone_from else None
    build = functools.partial(build_classifier, len(train.class_names), cfg.input_size, cfg.backbone,
                              augment=cfg.augment, seed=cfg.seed, backbone_from=backbone_from)
    weights = balanced_class_weights(train) if cfg.class_weights else None
    settings = train_settings(cfg, distribution, class_weight=weights)
    steps = -(-len(train) // cfg.batch_size)
    precision = resolve_precision(cfg.precision)
    with training_precision(precision), distribution.strategy.scope():
        model, base = build(weights=cfg.weights)
        model.compile(keras.optimizers.Adam(learning_rate(cfg.learning_rate, cfg.lr_schedule, cfg.epochs, steps)),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = fit(model, train, val, settings)
        phases = {"epochs_run": len(history.get("loss", [])), "restored_epoch": history.restored_epoch}
        if cfg.fine_tune_epochs:
            opened = unfreeze_top(base, cfg.fine_tune_layers)
            logger.info("fine-tuning %d backbone layers at learning rate %g", opened, cfg.fine_tune_learning_rate)
            rate = learning_rate(cfg.fine_tune_learning_rate, cfg.lr_schedule, cfg.fine_tune_epochs, steps)
            model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
            tuned = fit(model, train, val, TrainSettings(**{**settings.__dict__, "epochs": cfg.fine_tune_epochs,
                                                            "resume": False}))
            phases.update(fine_tune_epochs_run=len(tuned.get("loss", [])),
                          fine_tune_restored_epoch=tuned.restored_epoch)
            history = {k: history.get(k, []) + tuned.get(k, []) for k in set(history) | set(tuned)}
    if not distribution.is_chief:
        logger.info("%s: training done; the chief evaluates and publishes", distribution.task.name)
        return None, test
    # Evaluated, gated and exported in float32 whatever trained it and outside any distribution strategy; the copy's
    # backbone is built without downloading weights (the trained ones replace them).
    model = as_float32(model, lambda: build(weights="none")[0], rebuild=distribution.distributed)
    plain = None
    if cfg.test_time_flip:
        plain = evaluate(model, test)["test_accuracy"]
        model = with_test_time_flip(model)
        logger.info("test-time flip: test accuracy without it %.4f", plain)
    metrics = with_class_summaries(evaluate(model, test), data.own_classes)
    logger.info("test accuracy %.4f on %d images, mean per-class %.4f", metrics["test_accuracy"],
                metrics["test_images"], metrics["mean_per_class_accuracy"] or 0.0)
    for name, accuracy in metrics["own_class_accuracy"].items():
        logger.info("own class %s: test accuracy %s", name, "n/a" if accuracy is None else f"{accuracy:.4f}")
    trained = TrainedModel(
        model=model, class_names=train.class_names, input_size=size, validation=val, metrics=metrics,
        history=history,
        details={
            "data": {"source": data.source, "caltech_classes": len(data.caltech_classes),
                     "own_classes": data.own_classes, "train_images": len(train), "validation_images": len(val),
                     "test_images": len(test), "skipped_images": len(data.images.skipped),
                     "small_classes": data.small_classes, "class_order": "case-insensitive, own classes last"},
            "training": {"backbone": "project:" + str(backbone_from) if backbone_from else cfg.backbone,
                         "weights": None if backbone_from else cfg.weights, "epochs": cfg.epochs,
                         "fine_tune_epochs": cfg.fine_tune_epochs, "fine_tune_layers": cfg.fine_tune_layers,
                         "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
                         "fine_tune_learning_rate": cfg.fine_tune_learning_rate, "lr_schedule": cfg.lr_schedule,
                         "input_size": cfg.input_size, "augment": cfg.augment,
                         "test_time_flip": cfg.test_time_flip, "test_accuracy_without_flip": plain,
                         "class_weights": cfg.class_weights, "precision": precision, "seed": cfg.seed,
                         "distribution": distribution.metadata(cfg.batch_size),
                         # both phases' time and images/s; `phases` then gives each phase's own epochs_run
                         **fit_figures(history, len(train)), **phases,
                         "seconds": round(time.monotonic() - started, 1)},
        },
    )
    return trained, test
