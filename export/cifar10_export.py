"""`python -m export cifar10`: load CIFAR-10, train the reference CNN, evaluate, stage, gate and publish."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from export import cifar10_data, repository
from export.cifar10_model import build_model
from export.cli_common import add_publish_args, add_training_args, gate_policy
from export.evaluation import evaluate
from export.gate import GatePolicy
from export.image_data import stratified_limit, stratified_split
from export.publishing import PublishSettings, TrainedModel, stage_gate_publish
from export.training import TrainSettings, fit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CifarExportConfig:
    """Everything `python -m export cifar10` was asked to do."""

    data: str
    name: str = "cifar10"
    model_base_path: Path = Path("models")
    version: str = "auto"
    limit: int | None = None
    val_split: float = 0.1
    epochs: int = 25
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 42
    augment: bool = False
    early_stopping: int | None = None
    logdir: Path | None = None
    resume: bool = False
    strict: bool = False
    cache_dir: Path = Path(".cache")
    keep: int | None = None
    policy: GatePolicy = GatePolicy()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The cifar10 sub-command's options."""
    p.add_argument("--data", required=True,
                   help="a directory or archive with CIFAR-10 (python pickles, train/ test/ image folders, or "
                        "the shared cifar10-*-jpg.tar.gz), 'keras' to download, or 'synthetic' (tests only)")
    add_training_args(p, epochs=25, batch_size=64, learning_rate=1e-3)
    add_publish_args(p, name="cifar10")


def config_from_args(args: argparse.Namespace) -> CifarExportConfig:
    """Frozen config from parsed arguments."""
    return CifarExportConfig(
        data=args.data, name=args.name, model_base_path=args.model_base_path, version=args.version,
        limit=args.limit, val_split=args.val_split, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed, augment=args.augment,
        early_stopping=args.early_stopping, logdir=args.logdir, resume=args.resume, strict=args.strict,
        cache_dir=args.cache_dir, keep=args.keep, policy=gate_policy(args),
    )


def run(cfg: CifarExportConfig) -> dict:
    """Train and publish; returns the summary printed as the final JSON line."""
    model_dir = repository.make_model_path(cfg.model_base_path, cfg.name)
    version = repository.resolve_version(model_dir, cfg.version)  # fail fast, before training
    started = time.monotonic()
    splits = cifar10_data.load(cfg.data, cfg.cache_dir, strict=cfg.strict)
    train = stratified_limit(splits.train, cfg.limit, cfg.seed)
    train, val = stratified_split(train, cfg.val_split, cfg.seed)
    logger.info("data: %s — %d train, %d validation, %d test images", splits.source, len(train), len(val),
                len(splits.test))
    model = build_model(len(cifar10_data.CLASS_NAMES), augment=cfg.augment, seed=cfg.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = fit(model, train, val, TrainSettings(
        epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, logdir=cfg.logdir,
        checkpoint_dir=cfg.cache_dir / "checkpoints" / cfg.name, resume=cfg.resume,
        early_stopping=cfg.early_stopping,
    ))
    metrics = evaluate(model, splits.test)
    logger.info("test accuracy %.4f on %d images", metrics["test_accuracy"], metrics["test_images"])
    trained = TrainedModel(
        model=model, class_names=cifar10_data.CLASS_NAMES, input_size=cifar10_data.INPUT_SIZE,
        validation=val, metrics=metrics, history=history,
        details={
            "data": {
                "source": splits.source,
                "train_images": len(train), "validation_images": len(val), "test_images": len(splits.test),
                "skipped_images": len(splits.train.skipped) + len(splits.test.skipped),
                "limit": cfg.limit, "val_split": cfg.val_split,
            },
            "training": {
                "epochs": cfg.epochs, "epochs_run": len(history.get("loss", [])), "batch_size": cfg.batch_size,
                "learning_rate": cfg.learning_rate, "optimizer": "Adam", "augment": cfg.augment,
                "seed": cfg.seed, "seconds": round(time.monotonic() - started, 1),
            },
        },
    )
    settings = PublishSettings(cfg.model_base_path, cfg.name, version, cfg.keep, cfg.policy,
                               renumber=str(cfg.version) == "auto")
    return stage_gate_publish(trained, splits.test, settings)
