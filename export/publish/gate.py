"""The validation gate run on a staged SavedModel before it is published."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2

from export.data.preprocessing import decode_batch
from export.publish.signatures import PREDICT_PIXELS, SERVING_DEFAULT, SIGNATURE_NAMES, top_k_for
from export.settings import GatePolicy
from serving.lifecycle.model_paths import version_dirs

logger = logging.getLogger(__name__)

MIN_GATE_IMAGES = 64
SIGNATURE_TOLERANCE = 1e-5
INFRA_TIMEOUT_S = 900.0
METADATA_PATH = Path("assets.extra") / "export_metadata.json"


@dataclass
class GateResult:
    """What the gate checked and whether the version may be published."""

    passed: bool
    checks: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-friendly form for the final line and the metadata."""
        return {"passed": self.passed, "checks": self.checks, "reasons": self.reasons}


def reference_logs(model_name: str, model: keras.Model, encoded: list[bytes], input_size: tuple[int, int]) -> list:
    """Requests for every signature of the contract with the responses the in-memory Keras model gives."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from export.publish.warmup import classify_request

    batch = tf.constant(encoded)
    pixels = decode_batch(batch, input_size)  # the same TF decoding the in-graph path uses
    reference = np.asarray(model(pixels, training=False))
    k = top_k_for(reference.shape[1])
    top = -np.sort(-reference, axis=1)[:, :k]
    logs = []
    for signature, alias, value in ((SERVING_DEFAULT, "image_bytes", encoded),
                                    (PREDICT_PIXELS, "pixels", pixels.numpy())):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name,
                                                                             signature_name=signature))
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
        response = predict_pb2.PredictResponse()
        response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(reference))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request, response=response)))
    classify = prediction_log_pb2.ClassifyLog(request=classify_request(model_name, encoded))
    for row in top:
        classify.response.result.classifications.add().classes.extend(
            classification_pb2.Class(score=float(s)) for s in row)
    logs.append(prediction_log_pb2.PredictionLog(classify_log=classify))
    return logs


def infra_validate(saved_model_dir: Path, model_name: str, logs: list, timeout_s: float = INFRA_TIMEOUT_S,
                   tflite: bool = False, cost: bool = False, cost_baseline: Path | None = None) -> dict:
    """Load the staged version with the model server's own loader in a fresh process (`python -m serving.check`),
    replay its warmup file and replay `logs` (requests with the in-memory model's responses, `reference_logs`),
    comparing the outputs; returns the check's report. `tflite`: the version's model.tflite instead, as
    `--prefer_tflite_model` serves it; `cost`: also its serving cost, alongside `cost_baseline` (the previous
    version) when given."""
    from export.publish.tflite_export import TFLITE_TOLERANCE
    from export.publish.warmup import write_records

    with tempfile.TemporaryDirectory(prefix="infra-validation-") as tmp:
        expected = write_records(Path(tmp) / "expected_responses", logs)
        cmd = [sys.executable, "-m", "serving.check", str(saved_model_dir), "--json", "--model_name", model_name,
               "--compare", str(expected), "--tolerance", str(TFLITE_TOLERANCE if tflite else SIGNATURE_TOLERANCE),
               *(["--prefer_tflite_model"] if tflite else []), *(["--cost"] if cost else []),
               *(["--cost-baseline", str(cost_baseline)] if cost and cost_baseline else [])]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        logger.info("infra validation: loading %s in a fresh model-server process", saved_model_dir)
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": {"stage": "process", "code": "DEADLINE_EXCEEDED",
                                           "message": f"serving.check did not finish in {timeout_s:.0f}s"}}
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip()[-800:]
        return {"ok": False, "error": {"stage": "process", "code": "UNKNOWN",
                                       "message": f"serving.check exited {done.returncode} without a report: {tail}"}}
    report["process_seconds"] = round(time.monotonic() - started, 2)
    return report


def _tflite_check(saved_model_dir: Path, model_name: str, logs: list, reasons: list[str]) -> dict:
    """The TF Lite model through `serving.check --prefer_tflite_model`: loads, warms up, and its probabilities
    stay within TFLITE_TOLERANCE of the in-memory model's on the gate images (its signatures' requests of `logs`)."""
    from export.publish.tflite_export import TFLITE_SIGNATURES, TFLITE_TOLERANCE

    logs = [log for log in logs if log.WhichOneof("log_type") == "predict_log"
            and log.predict_log.request.model_spec.signature_name in TFLITE_SIGNATURES]
    report = infra_validate(saved_model_dir, model_name, logs, tflite=True)
    deltas = [v["max_abs_diff"] for v in report.get("comparison", {}).values()]
    check = {"ok": report["ok"], "max_abs_diff": max(deltas) if deltas else None, "tolerance": TFLITE_TOLERANCE,
             "load_seconds": report.get("load_seconds"), "warmup": report.get("warmup"), "error": report.get("error")}
    if not report["ok"]:
        err = report["error"]
        reasons.append(f"TF Lite validation failed at {err['stage']}: {err['code']}: {err['message']}")
    elif not deltas:
        reasons.append("TF Lite validation compared no signature")
    return check


def latency_reasons(cost: dict, policy: GatePolicy, baseline_version: int | None, result: GateResult) -> None:
    """--max-latency-ms and --max-latency-regression on each predict signature's p50 at batch 1 (a regression
    against the previous version, measured alongside it, is overridden by --force as an accuracy one is)."""
    before = cost.get("baseline", {}).get("signatures", {})
    for key, figures in sorted(cost.get("signatures", {}).items()):
        p50 = figures["batch1_p50_ms"]
        if policy.max_latency_ms is not None and p50 > policy.max_latency_ms:
            result.reasons.append(f"signature {key!r}: p50 latency at batch 1 is {p50:.2f} ms, over --max-latency-ms "
                                  f"{policy.max_latency_ms:g}")
        if policy.max_latency_regression is None or key not in before:
            continue
        old = before[key]["batch1_p50_ms"]
        rise = p50 / old - 1 if old > 0 else 0.0
        if rise > policy.max_latency_regression:
            msg = (f"signature {key!r}: p50 latency at batch 1 is {p50:.2f} ms against version {baseline_version}'s "
                   f"{old:.2f} ms measured alongside it (+{rise:.0%}), over --max-latency-regression "
                   f"{policy.max_latency_regression:g}")
            if policy.force:
                result.checks.setdefault("latency_regression_overridden", []).append(msg)
            else:
                result.reasons.append(msg + " (use --force to publish anyway)")


def previous_accuracy(model_dir: Path, versions: list[int]) -> tuple[int, float] | None:
    """(version, recorded test accuracy) of the newest existing version that recorded one."""
    entries = version_dirs(model_dir)
    for v in sorted(versions, reverse=True):
        meta = entries.get(v, model_dir / str(v)) / METADATA_PATH
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
    model_name: str,
    model: keras.Model,
    encoded: list[bytes],
    input_size: tuple[int, int],
    accuracy: float | None,
    previous: tuple[int, float] | None,
    policy: GatePolicy,
    tflite: bool = False,
    baseline: tuple[int, Path] | None = None,
) -> GateResult:
    """Signature agreement, minimum accuracy and no regression against the previous version (`tflite`: the TF Lite
    model's agreement too)."""
    result = GateResult(passed=True)
    logs = reference_logs(model_name, model, encoded, input_size)  # the in-memory model's answers, computed once
    if tflite:
        result.checks["tflite"] = _tflite_check(saved_model_dir, model_name, logs, result.reasons)
    if len(encoded) < MIN_GATE_IMAGES:
        result.reasons.append(f"only {len(encoded)} validation images; the gate needs {MIN_GATE_IMAGES}")
    infra = infra_validate(saved_model_dir, model_name, logs, cost=True,
                           cost_baseline=baseline[1] if baseline else None)
    deltas = {k: v["max_abs_diff"] for k, v in infra.get("comparison", {}).items()}
    result.checks["infra_validation"] = {
        "loader": "graph-mode SavedModelBundle (python -m serving.check, fresh process)",
        "ok": infra["ok"], "load_seconds": infra.get("load_seconds"), "warmup": infra.get("warmup"),
        "process_seconds": infra.get("process_seconds"), "error": infra.get("error"),
    }
    result.checks["signature_max_abs_diff"] = deltas
    result.checks["signature_images"] = len(encoded)
    if not infra["ok"]:
        err = infra["error"]
        result.reasons.append(f"infra validation failed at {err['stage']}: {err['code']}: {err['message']}")
    for name in SIGNATURE_NAMES:
        if name not in deltas and infra["ok"]:
            result.reasons.append(f"signature {name!r} was not compared by the infra validation")
    for name, delta in deltas.items():
        if not delta <= SIGNATURE_TOLERANCE:
            result.reasons.append(f"signature {name!r} differs from the in-memory model by {delta:.3g} > 1e-5")
    if "serving_cost" in infra:
        result.checks["serving_cost"] = infra["serving_cost"]
        latency_reasons(infra["serving_cost"], policy, baseline[0] if baseline else None, result)
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
