"""The validation gate run on a staged SavedModel before it is published."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from export.preprocessing import decode_batch
from export.signatures import CLASSIFY, PREDICT_PIXELS, SERVING_DEFAULT, example_for, top_k_for

logger = logging.getLogger(__name__)

MIN_GATE_IMAGES = 64
SIGNATURE_TOLERANCE = 1e-5
METADATA_PATH = Path("assets.extra") / "export_metadata.json"


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the gate."""

    min_accuracy: float = 0.0
    max_regression: float = 0.01
    force: bool = False


@dataclass
class GateResult:
    """What the gate checked and whether the version may be published."""

    passed: bool
    checks: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-friendly form for the final line and the metadata."""
        return {"passed": self.passed, "checks": self.checks, "reasons": self.reasons}


def check_signatures(
    saved_model_dir: Path, model: keras.Model, encoded: list[bytes], input_size: tuple[int, int]
) -> dict:
    """Max |Δ probability| of each reloaded signature against the in-memory model on the same images."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    batch = tf.constant(encoded)
    pixels = decode_batch(batch, input_size)  # the same TF decoding the in-graph path uses
    reference = np.asarray(model(pixels, training=False))
    k = top_k_for(reference.shape[1])
    ref_top = -np.sort(-reference, axis=1)[:, :k]
    got = {
        SERVING_DEFAULT: loaded.signatures[SERVING_DEFAULT](image_bytes=batch)["probabilities"].numpy(),
        PREDICT_PIXELS: loaded.signatures[PREDICT_PIXELS](pixels=pixels)["probabilities"].numpy(),
    }
    examples = tf.constant([example_for(e) for e in encoded])
    classify_scores = loaded.signatures[CLASSIFY](inputs=examples)["scores"].numpy()
    deltas = {name: float(np.abs(p - reference).max()) for name, p in got.items()}
    deltas[CLASSIFY] = float(np.abs(classify_scores - ref_top).max())
    return deltas


def previous_accuracy(model_dir: Path, versions: list[int]) -> tuple[int, float] | None:
    """(version, recorded test accuracy) of the newest existing version that recorded one."""
    for v in sorted(versions, reverse=True):
        meta = model_dir / str(v) / METADATA_PATH
        try:
            acc = json.loads(meta.read_text())["metrics"]["test_accuracy"]
            if acc is None:
                continue
            return v, float(acc)
        except (OSError, KeyError, ValueError, TypeError):
            logger.warning("version %d has no readable recorded accuracy in %s", v, meta)
    return None


def run_gate(
    saved_model_dir: Path,
    model: keras.Model,
    encoded: list[bytes],
    input_size: tuple[int, int],
    accuracy: float | None,
    previous: tuple[int, float] | None,
    policy: GatePolicy,
) -> GateResult:
    """Signature agreement, minimum accuracy and no regression against the previous version."""
    result = GateResult(passed=True)
    if len(encoded) < MIN_GATE_IMAGES:
        result.reasons.append(f"only {len(encoded)} validation images; the gate needs {MIN_GATE_IMAGES}")
    deltas = check_signatures(saved_model_dir, model, encoded, input_size)
    result.checks["signature_max_abs_diff"] = deltas
    result.checks["signature_images"] = len(encoded)
    for name, delta in deltas.items():
        if not delta <= SIGNATURE_TOLERANCE:
            result.reasons.append(f"signature {name!r} differs from the in-memory model by {delta:.3g} > 1e-5")
    result.checks["test_accuracy"] = accuracy
    result.checks["min_accuracy"] = policy.min_accuracy
    if accuracy is None:
        result.checks["accuracy_checks"] = "skipped: no labelled test set"
        result.passed = not result.reasons
        return result
    if accuracy < policy.min_accuracy:
        result.reasons.append(f"test accuracy {accuracy:.4f} is below --min-accuracy {policy.min_accuracy}")
    if previous is not None:
        prev_version, prev_acc = previous
        result.checks["previous"] = {"version": prev_version, "test_accuracy": prev_acc}
        floor = prev_acc - policy.max_regression
        if accuracy < floor:
            msg = (f"test accuracy {accuracy:.4f} regresses from version {prev_version}'s {prev_acc:.4f} by more "
                   f"than --max-regression {policy.max_regression}")
            if policy.force:
                result.checks["regression_overridden"] = msg
            else:
                result.reasons.append(msg + " (use --force to publish anyway)")
    result.passed = not result.reasons
    return result
