"""`python -m export cifar10|cifar100`: load the data, train the reference CNN, evaluate, stage, gate and publish."""

from __future__ import annotations

import dataclasses
import logging
import time

from export.data import cifar10_data
from export.data.image_data import LabeledImages, limit_then_split
from export.exporters.pipeline import run_export, start_distribution, train_settings
from export.models.cifar10_recipe import loss, model_builder, optimizer, optimizer_name
from export.models.inference_views import view_count, with_test_time_views
from export.publish.publishing import TrainedModel
from export.settings import Cifar100ExportConfig, CifarExportConfig
from export.training.evaluation import evaluate
from export.training.loop import fit, fit_figures
from export.training.precision import as_float32, resolve_precision, training_precision

logger = logging.getLogger(__name__)


def load_splits(cfg: CifarExportConfig) -> cifar10_data.CifarSplits:
    """CIFAR-10 (any of its loaders) or, for a `Cifar100ExportConfig`, CIFAR-100 with the chosen label mode."""
    if isinstance(cfg, Cifar100ExportConfig):
        from export.data import cifar100_data

        return cifar100_data.load(cfg.data, cfg.label_mode)
    return cifar10_data.load(cfg.data, cfg.cache_dir, strict=cfg.strict)


def run(cfg: CifarExportConfig) -> dict:
    """Train and publish; returns the summary printed as the final JSON line."""
    return run_export(cfg, train)


def train(cfg: CifarExportConfig) -> tuple[TrainedModel | None, LabeledImages]:
    """Load, split, build the CNN of the recipe, fit, add the test-time views, evaluate."""
    recipe = cfg.recipe_values
    flip, shift, vertical = recipe.test_time_flip, recipe.test_time_shift, recipe.test_time_vertical
    started = time.monotonic()
    distribution = start_distribution(cfg)
    splits = load_splits(cfg)
    class_names = list(splits.train.class_names)
    train_images, val = limit_then_split(splits.train, cfg.limit, cfg.val_split, cfg.seed)
    logger.info("data: %s — %d train, %d validation, %d test images", splits.source, len(train_images), len(val),
                len(splits.test))
    build = model_builder(cfg, len(class_names))
    steps_per_epoch = max(1, -(-len(train_images) // cfg.batch_size))
    precision = resolve_precision(recipe.precision)
    with training_precision(precision), distribution.strategy.scope():
        model = build()
        model.compile(
            optimizer=optimizer(cfg, steps_per_epoch),
            loss=loss(cfg, len(class_names)),
            metrics=["accuracy"],
        )
        fit_started = time.monotonic()
        settings = train_settings(cfg, distribution, random_jpeg=recipe.random_jpeg,
                                  random_jpeg_min_quality=recipe.random_jpeg_min_quality)
        history = fit(model, train_images, val, settings,
                      test_each_epoch=splits.test if cfg.test_each_epoch else None)
    if not distribution.is_chief:
        logger.info("%s: training done; the chief evaluates and publishes", distribution.task.name)
        return None, splits.test
    # evaluated, gated and exported in float32 whatever trained it, and outside any distribution strategy
    model = as_float32(model, build, rebuild=distribution.distributed)
    speed = fit_figures(history, len(train_images), fallback_seconds=time.monotonic() - fit_started)
    plain = flip_only = None
    views = view_count(flip, shift, vertical)
    if views > 1:
        plain = evaluate(model, splits.test)["test_accuracy"]
        logger.info("test-time augmentation (%d views): test accuracy of the image alone %.4f", views, plain)
        if flip and shift:
            flip_only = evaluate(with_test_time_views(model, flip=True), splits.test)["test_accuracy"]
            logger.info("test accuracy of the image and its mirror image alone %.4f", flip_only)
        model = with_test_time_views(model, flip=flip, shift=shift, vertical=vertical)
    metrics = evaluate(model, splits.test)
    logger.info("test accuracy %.4f on %d images", metrics["test_accuracy"], metrics["test_images"])
    trained = TrainedModel(
        model=model, class_names=class_names, input_size=cifar10_data.INPUT_SIZE,
        validation=val, metrics=metrics, history=history,
        details={
            "data": {
                "source": splits.source,
                "train_images": len(train_images), "validation_images": len(val), "test_images": len(splits.test),
                "skipped_images": len(splits.train.skipped) + len(splits.test.skipped),
                "limit": cfg.limit, "val_split": cfg.val_split,
                **({"label_mode": cfg.label_mode} if isinstance(cfg, Cifar100ExportConfig) else {}),
            },
            "training": {
                # the recipe's concrete values, as trained (the optimizer by what was built, the shift settings only
                # where training shifted), then this run's own figures
                **{k: v for k, v in dataclasses.asdict(recipe).items() if k != "name"},
                "recipe": recipe.name, "optimizer": optimizer_name(cfg), "precision": precision,
                "shift_interpolation": recipe.shift_interpolation if recipe.augment else None,
                "shift_fraction": recipe.shift_fraction if recipe.augment else None,
                "test_time_views": views,
                "test_accuracy_without_flip": plain, "test_accuracy_flip_only": flip_only,
                "epochs": cfg.epochs, "epochs_run": speed["epochs_run"], "restored_epoch": history.restored_epoch,
                "batch_size": cfg.batch_size, "seed": cfg.seed,
                "distribution": distribution.metadata(cfg.batch_size), "test_each_epoch": cfg.test_each_epoch,
                "seconds": round(time.monotonic() - started, 1),
                "fit_seconds": speed["fit_seconds"], "images_per_second": speed["images_per_second"],
            },
        },
    )
    return trained, splits.test
