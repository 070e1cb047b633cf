"""`python -m export cifar10|cifar100`: load the data, train the reference CNN, evaluate, stage, gate and publish."""

from __future__ import annotations

import logging
import time

from export import cifar10_data, repository
from export.cifar10_recipe import loss, model_builder, optimizer, optimizer_name
from export.evaluation import evaluate
from export.image_data import limit_then_split
from export.precision import as_float32, resolve_precision, training_precision
from export.publishing import PublishSettings, TrainedModel, stage_gate_publish
from export.settings import Cifar100ExportConfig, CifarExportConfig
from export.test_time_augmentation import view_count, with_test_time_views
from export.training import TrainSettings, fit, fit_figures

logger = logging.getLogger(__name__)


def load_splits(cfg: CifarExportConfig) -> cifar10_data.CifarSplits:
    """CIFAR-10 (any of its loaders) or, for a `Cifar100ExportConfig`, CIFAR-100 with the chosen label mode."""
    if isinstance(cfg, Cifar100ExportConfig):
        from export import cifar100_data

        return cifar100_data.load(cfg.data, cfg.label_mode)
    return cifar10_data.load(cfg.data, cfg.cache_dir, strict=cfg.strict)


def run(cfg: CifarExportConfig) -> dict:
    """Train and publish; returns the summary printed as the final JSON line."""
    model_dir = repository.make_model_path(cfg.model_base_path, cfg.name)
    version = repository.resolve_version(model_dir, cfg.version)  # fail fast, before training
    flip, shift = cfg.resolved("test_time_flip"), cfg.resolved("test_time_shift")
    vertical = cfg.resolved("test_time_vertical")
    started = time.monotonic()
    splits = load_splits(cfg)
    class_names = list(splits.train.class_names)
    train, val = limit_then_split(splits.train, cfg.limit, cfg.val_split, cfg.seed)
    logger.info("data: %s — %d train, %d validation, %d test images", splits.source, len(train), len(val),
                len(splits.test))
    build = model_builder(cfg, len(class_names))
    steps_per_epoch = max(1, -(-len(train) // cfg.batch_size))
    precision = resolve_precision(cfg.resolved("precision"))
    with training_precision(precision):
        model = build()
        model.compile(
            optimizer=optimizer(cfg, steps_per_epoch),
            loss=loss(cfg, len(class_names)),
            metrics=["accuracy"],
        )
        fit_started = time.monotonic()
        history = fit(model, train, val, TrainSettings(
            epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, logdir=cfg.logdir,
            checkpoint_dir=cfg.cache_dir / "checkpoints" / cfg.name, resume=cfg.resume,
            early_stopping=cfg.early_stopping, log_every_steps=cfg.log_every_steps,
        ), test_each_epoch=splits.test if cfg.test_each_epoch else None)
    model = as_float32(model, build)  # evaluated, gated and exported in float32 whatever trained it
    speed = fit_figures(history, len(train), fallback_seconds=time.monotonic() - fit_started)
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
                "train_images": len(train), "validation_images": len(val), "test_images": len(splits.test),
                "skipped_images": len(splits.train.skipped) + len(splits.test.skipped),
                "limit": cfg.limit, "val_split": cfg.val_split,
                **({"label_mode": cfg.label_mode} if isinstance(cfg, Cifar100ExportConfig) else {}),
            },
            "training": {
                "epochs": cfg.epochs, "epochs_run": speed["epochs_run"], "restored_epoch": history.restored_epoch,
                "batch_size": cfg.batch_size,
                "learning_rate": cfg.resolved("learning_rate"),
                "optimizer": optimizer_name(cfg),
                "weight_decay": cfg.resolved("weight_decay"), "augment": cfg.augments,
                "conv_dropout": cfg.resolved("conv_dropout"), "dense_dropout": cfg.resolved("dense_dropout"),
                "random_erasing": cfg.resolved("random_erasing"),
                "shift_interpolation": cfg.resolved("shift_interpolation") if cfg.augments else None,
                "shift_fraction": cfg.resolved("shift_fraction") if cfg.augments else None,
                "label_smoothing": cfg.resolved("label_smoothing"),
                "test_time_flip": flip, "test_time_shift": shift,
                "test_time_vertical": vertical, "test_time_views": views,
                "test_accuracy_without_flip": plain, "test_accuracy_flip_only": flip_only,
                "recipe": cfg.recipe, "lr_schedule": "constant" if cfg.recipe == "reference" else "warmup+cosine",
                "precision": precision, "seed": cfg.seed, "test_each_epoch": cfg.test_each_epoch,
                "seconds": round(time.monotonic() - started, 1),
                "fit_seconds": speed["fit_seconds"], "images_per_second": speed["images_per_second"],
            },
        },
    )
    settings = PublishSettings(cfg.model_base_path, cfg.name, version, cfg.keep, cfg.policy,
                               renumber=str(cfg.version) == "auto")
    return stage_gate_publish(trained, splits.test, settings)
