"""The skeleton every exporter runs, written once: reserve the version → (load → split → build → fit → evaluate:
the exporter's own `train`) → stage, gate and publish.

The version is reserved first so that a run whose version exists is refused before any data is read or any step
trained; the gate and the atomic publish are the same for every model (`export.publish.publishing`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from export.data.image_data import LabeledImages
from export.publish import repository
from export.publish.publishing import PublishSettings, TrainedModel, stage_gate_publish
from export.settings import PublishOptions, TrainingOptions
from export.training.loop import TrainSettings

Config = TypeVar("Config", bound=PublishOptions)
# An exporter's own steps: load, split, build, fit and evaluate; the trained model and the test images to gate on.
Train = Callable[[Config], tuple[TrainedModel, LabeledImages]]


def run_export(cfg: Config, train: Train) -> dict:
    """Run one export end to end; returns the summary printed as the final JSON line (GateFailed when refused)."""
    model_dir = repository.make_model_path(cfg.model_base_path, cfg.name)
    version = repository.resolve_version(model_dir, cfg.version)  # fail fast, before training
    trained, test = train(cfg)
    settings = PublishSettings(cfg.model_base_path, cfg.name, version, cfg.keep, cfg.policy,
                               renumber=str(cfg.version) == "auto", tflite=cfg.tflite)
    return stage_gate_publish(trained, test, settings)


def train_settings(cfg: TrainingOptions, **overrides) -> TrainSettings:
    """The fit settings every training exporter takes from its command line (checkpoints per model name)."""
    values = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, logdir=cfg.logdir,
                  checkpoint_dir=cfg.cache_dir / "checkpoints" / cfg.name, resume=cfg.resume,
                  early_stopping=cfg.early_stopping, log_every_steps=cfg.log_every_steps)
    return TrainSettings(**{**values, **overrides})
