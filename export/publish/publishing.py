"""Stage, gate and publish a trained image model as `<base>/<name>/<version>/` (shared by every exporter)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from export.data.image_data import LabeledImages
from export.data.preprocessing import PREPROCESSING_DESCRIPTION
from export.publish import repository
from export.publish.gate import METADATA_PATH, MIN_GATE_IMAGES, GatePolicy, previous_accuracy, run_gate
from export.publish.signatures import SIGNATURE_NAMES, top_k_for, write_saved_model
from export.publish.warmup import warmup_requests, write_warmup_file
from export.training.evaluation import write_artifacts
from serving.lifecycle.model_paths import version_dirs

logger = logging.getLogger(__name__)

GATE_IMAGES = 128


class GateFailed(Exception):
    """The staged version did not pass the validation gate; nothing was published."""

    def __init__(self, summary: dict):
        super().__init__("; ".join(summary["gate"]["reasons"]))
        self.summary = summary


@dataclass(frozen=True)
class PublishSettings:
    """Where and how to publish."""

    model_base_path: Path
    name: str
    version: int
    keep: int | None
    policy: GatePolicy
    renumber: bool = False  # --version auto: take the next free number if a concurrent export took this one
    tflite: bool = False  # --tflite: also model.tflite (export.publish.tflite_export)


@dataclass
class TrainedModel:
    """A trained Keras model (float32 0..255 input) and what the export records about it."""

    model: keras.Model
    class_names: list[str]
    input_size: tuple[int, int]
    validation: LabeledImages
    metrics: dict
    history: dict
    details: dict = field(default_factory=dict)


def gate_images(trained: TrainedModel, fallback: LabeledImages) -> tuple[list[bytes], np.ndarray]:
    """Up to GATE_IMAGES validation images (topped up from `fallback`) as lossless PNG bytes and pixels."""
    pools = [trained.validation.images, fallback.images]
    pixels = np.concatenate([p[:GATE_IMAGES] for p in pools])[:GATE_IMAGES]
    encoded = [tf.io.encode_png(img).numpy() for img in pixels]
    return encoded, pixels


def git_commit() -> str:
    """The project's current git commit, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_metadata(trained: TrainedModel, settings: PublishSettings) -> dict:
    """The `assets.extra/export_metadata.json` document."""
    return {
        "model_name": settings.name,
        "version": settings.version,
        "class_names": trained.class_names,
        "num_classes": len(trained.class_names),
        "top_k": top_k_for(len(trained.class_names)),
        "input_size": {"height": trained.input_size[0], "width": trained.input_size[1], "channels": 3},
        "preprocessing": PREPROCESSING_DESCRIPTION,
        "signatures": list(SIGNATURE_NAMES),
        "metrics": {k: v for k, v in trained.metrics.items() if k != "confusion_matrix"},
        "history": trained.history,
        "parameter_count": int(trained.model.count_params()),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "git_commit": git_commit(),
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **trained.details,
    }


def stage_gate_publish(trained: TrainedModel, test: LabeledImages, settings: PublishSettings) -> dict:
    """Write the version into a hidden staging dir, run the gate, rename into place; return the summary."""
    model_dir = repository.make_model_path(settings.model_base_path, settings.name)
    for stale in repository.clean_stale_staging(model_dir):
        logger.warning("removed stale staging directory %s/%s from an interrupted export", model_dir, stale)
    existing = repository.list_versions(model_dir)
    if settings.version in existing:
        raise repository.RepositoryError(f"version {settings.version} already exists in {model_dir}")
    previous = previous_accuracy(model_dir, existing)
    newest = max(existing, default=None)  # the latency baseline: the version serving now, whatever it recorded
    baseline = (newest, version_dirs(model_dir).get(newest, model_dir / str(newest))) if newest is not None else None
    encoded, pixels = gate_images(trained, test)
    if len(encoded) < MIN_GATE_IMAGES:
        logger.warning("only %d images available for the signature check", len(encoded))
    with repository.staging_dir(model_dir) as staged:
        logger.info("writing SavedModel to %s", staged)
        write_saved_model(trained.model, trained.class_names, trained.input_size, staged)
        tflite = None
        if settings.tflite:  # before the warmup file: with a TF Lite model it may hold only their shared signature
            from export.publish.tflite_export import TFLITE_SIGNATURES, write_tflite_model

            tflite = write_tflite_model(staged)
        write_warmup_file(staged, warmup_requests(settings.name, encoded, pixels,
                                                  only=TFLITE_SIGNATURES if tflite else None))
        extra = staged / "assets.extra"
        if "confusion_matrix" in trained.metrics:
            write_artifacts(extra / "evaluation", trained.metrics, trained.class_names, trained.history)
        # The Keras model too, so later exports can start from it (python -m export caltechown --backbone-from).
        trained.model.save(extra / "keras_model.keras")
        metadata = build_metadata(trained, settings)
        gate = run_gate(staged, settings.name, trained.model, encoded, trained.input_size,
                        trained.metrics["test_accuracy"], previous, settings.policy, tflite=tflite is not None,
                        baseline=baseline)
        metadata["gate"] = gate.to_json()
        metadata["serving_cost"] = gate.checks.get("serving_cost")
        if tflite:
            metadata["tflite"] = {**tflite, "max_abs_diff": gate.checks["tflite"].get("max_abs_diff")}
        (staged / METADATA_PATH).write_text(json.dumps(metadata, indent=2) + "\n")
        summary = {
            "name": settings.name,
            "version": settings.version,
            "path": str(model_dir / str(settings.version)),
            "published": gate.passed,
            "metrics": {"test_accuracy": trained.metrics["test_accuracy"],
                        "test_images": trained.metrics["test_images"]},
            "gate": gate.to_json(),
            "infra_validation": gate.checks.get("infra_validation"),
            "serving_cost": {k: v for k, v in (gate.checks.get("serving_cost") or {}).items() if k != "requests_from"},
        }
        if not gate.passed:
            raise GateFailed(summary)
        with repository.publish_lock(model_dir):  # one publisher at a time per model directory
            version = _final_version(model_dir, settings)
            if version != settings.version:
                metadata["version"] = summary["version"] = version
                summary["path"] = str(model_dir / str(version))
                (staged / METADATA_PATH).write_text(json.dumps(metadata, indent=2) + "\n")
            repository.publish(staged, model_dir, version)
            if settings.keep:
                summary["pruned"] = repository.prune(model_dir, settings.keep)
    return summary


def _final_version(model_dir: Path, settings: PublishSettings) -> int:
    """The version to publish as, decided under the publish lock: the planned one, or with `--version auto` the
    next free one when a concurrent export published the planned number meanwhile."""
    taken = repository.list_versions(model_dir)
    if settings.version not in taken:
        return settings.version
    if not settings.renumber:
        raise repository.RepositoryError(f"version {settings.version} appeared in {model_dir} while exporting "
                                         f"(another export?); nothing published")
    version = repository.next_version(taken)
    logger.warning("version %d was published by a concurrent export meanwhile; publishing as version %d",
                   settings.version, version)
    return version
