"""TF Serving warmup file: `assets.extra/tf_serving_warmup_requests`, a TFRecord of PredictionLog records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, prediction_log_pb2

from export.publish.signatures import CLASSIFY, PREDICT_PIXELS, SERVING_DEFAULT, example_for
from serving.lifecycle.servable import MAX_WARMUP_RECORDS, WARMUP_FILE  # TF Serving's warmup rules, defined once

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
MAX_PIXEL_PAYLOAD = 4 * 1024 * 1024


def warmup_requests(
    model_name: str, encoded: list[bytes], pixels: np.ndarray, only: tuple[str, ...] | None = None
) -> list[prediction_log_pb2.PredictionLog]:
    """Predict requests for both predict signatures at several batch sizes and Classify requests for `classify`,
    from real validation images (`only`: just these signatures)."""
    logs = [log for log in _all_warmup_requests(model_name, encoded, pixels)
            if only is None or _signature_of(log) in only]
    return logs[:MAX_WARMUP_RECORDS]


def _signature_of(log: prediction_log_pb2.PredictionLog) -> str:
    kind = log.WhichOneof("log_type")
    return getattr(log, kind).request.model_spec.signature_name


def _all_warmup_requests(model_name: str, encoded: list[bytes], pixels: np.ndarray):
    logs = []
    per_image_pixel_bytes = int(np.prod(pixels.shape[1:])) * 4
    for batch in BATCH_SIZES:
        if batch > len(encoded):
            break
        for signature in (SERVING_DEFAULT, PREDICT_PIXELS):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            if signature == SERVING_DEFAULT:
                request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(encoded[:batch], dtype=tf.string))
            else:
                if batch * per_image_pixel_bytes > MAX_PIXEL_PAYLOAD:
                    continue
                request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(pixels[:batch].astype(np.float32)))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
        logs.append(classify_log(model_name, encoded[:batch]))
    return logs


def classify_request(model_name: str, encoded: list[bytes]) -> classification_pb2.ClassificationRequest:
    """A Classify request for the `classify` signature: one tf.Example per encoded image."""
    request = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=CLASSIFY))
    for data in encoded:
        request.input.example_list.examples.add().ParseFromString(example_for(data))
    return request


def classify_log(model_name: str, encoded: list[bytes]) -> prediction_log_pb2.PredictionLog:
    """A warmup record holding a Classify request."""
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=classify_request(model_name, encoded)))


def write_records(path: Path, logs: list[prediction_log_pb2.PredictionLog]) -> Path:
    """PredictionLog records as a TFRecord file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def write_warmup_file(directory: Path, logs: list[prediction_log_pb2.PredictionLog]) -> Path:
    """Write records to `directory/assets.extra/tf_serving_warmup_requests`."""
    return write_records(directory / WARMUP_FILE, logs)


def read_warmup_file(path: Path) -> list[prediction_log_pb2.PredictionLog]:
    """Parse a warmup file back into PredictionLog messages (raises on a malformed record)."""
    logs = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw)
        logs.append(log)
    return logs
