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
from export.training import distribution as distribution_lib
from export.training.distribution import Distribution
from export.training.loop import TrainSettings

Config = TypeVar("Config", bound=PublishOptions)
# An exporter's own steps: load, split, build, fit and evaluate; the trained model and the test images to gate on
# (no model on a worker of a multi-worker run that is not the chief: it trains, and the chief publishes).
Train = Callable[[Config], tuple[TrainedModel | None, LabeledImages]]


def run_export(cfg: Config, train: Train) -> dict:
    """Run one export end to end; returns the summary printed as the final JSON line (GateFailed when refused)."""
    model_dir = repository.make_model_path(cfg.model_base_path, cfg.name)
    version = repository.resolve_version(model_dir, cfg.version)  # fail fast, before training
    trained, test = train(cfg)
    if trained is None:
        return {"name": cfg.name, "version": None, "published": False,
                "reason": "a worker of a multi-worker run: training done, the chief gates and publishes"}
    settings = PublishSettings(cfg.model_base_path, cfg.name, version, cfg.keep, cfg.policy,
                               renumber=str(cfg.version) == "auto", tflite=cfg.tflite)
    return stage_gate_publish(trained, test, settings)


def train_settings(cfg: TrainingOptions, distribution: Distribution | None = None, **overrides) -> TrainSettings:
    """The fit settings every training exporter takes from its command line (checkpoints per model name) and,
    in a multi-worker run, this worker's task."""
    values = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, logdir=cfg.logdir,
                  checkpoint_dir=cfg.cache_dir / "checkpoints" / cfg.name, resume=cfg.resume,
                  early_stopping=cfg.early_stopping, log_every_steps=cfg.log_every_steps)
    if distribution is not None and distribution.multi_worker and distribution.task is not None:
        values.update(task=distribution.task.name, chief=distribution.is_chief)
    return TrainSettings(**{**values, **overrides})


def start_distribution(cfg: TrainingOptions) -> Distribution:
    """The strategy of --distribute and TF_CONFIG, created before anything else touches TensorFlow (as
    MultiWorkerMirroredStrategy requires); refuses a global batch the replicas cannot share."""
    distribution = distribution_lib.resolve(cfg.distribute, worker_timeout_s=cfg.worker_timeout)
    if cfg.batch_size % distribution.replicas:
        raise ValueError(f"--batch-size {cfg.batch_size} is the global batch: it must divide evenly among the "
                         f"{distribution.replicas} replicas")
    return distribution
