"""The serving contract shared by every image model of this project, and writing it as a SavedModel.

Signatures (input → outputs):
- `serving_default`: `image_bytes` string [None] (JPEG/PNG/GIF/BMP) → probabilities, scores, class_ids, class_names
- `predict_pixels`:  `pixels` float32 [None, H, W, 3], RGB 0..255 → the same outputs
- `classify`:        `inputs` serialized tf.Example with `image/encoded` → classes, scores (Classify API)
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from export.data.preprocessing import decode_batch

SERVING_DEFAULT = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
PREDICT_PIXELS = "predict_pixels"
CLASSIFY = "classify"
SIGNATURE_NAMES = (SERVING_DEFAULT, PREDICT_PIXELS, CLASSIFY)
IMAGE_FEATURE = "image/encoded"
LABELS_FILENAME = "labels.txt"
MAX_TOP_K = 5
CLASSIFY_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME


def top_k_for(num_classes: int) -> int:
    """K of the top-K outputs: min(5, number of classes)."""
    return min(MAX_TOP_K, num_classes)


def serving_endpoints(model: keras.Model, class_names: list[str], input_size: tuple[int, int]) -> dict:
    """The contract's three endpoint functions around `model` (float32 0..255 pixels in), with input specs.

    Each maps signature key → (function, [TensorSpec]); the TensorSpec names are the signature input aliases and
    the returned dict keys the output aliases. Traced without autograph: no Python control flow, no source files.
    """
    k = top_k_for(len(class_names))
    height, width = input_size

    def predict(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(pixels, training=False)
        scores, ids = tf.math.top_k(probabilities, k=k)
        names = tf.constant(list(class_names), dtype=tf.string)  # the label list, embedded in the graph
        return {
            "probabilities": probabilities,
            "scores": scores,
            "class_ids": tf.cast(ids, tf.int64),
            "class_names": tf.gather(names, ids),
        }

    def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(decode_batch(image_bytes, input_size))

    def serve_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        # A fed tensor is not checked against the signature's shape by Session::Run (neither here nor in
        # tensorflow_model_server): without this, 4 channels reach the fused convolution, which fails with
        # UNIMPLEMENTED (HTTP 501). EnsureShape answers INVALID_ARGUMENT (400) naming both shapes instead.
        return predict(tf.ensure_shape(pixels, [None, height, width, 3]))

    def serve_classify(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(inputs, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        out = predict(decode_batch(features[IMAGE_FEATURE], input_size))
        return {"classes": out["class_names"], "scores": out["scores"]}

    return {
        SERVING_DEFAULT: (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
        PREDICT_PIXELS: (serve_pixels, [tf.TensorSpec([None, height, width, 3], tf.float32, name="pixels")]),
        CLASSIFY: (serve_classify, [tf.TensorSpec([None], tf.string, name="inputs")]),
    }


def write_saved_model(
    model: keras.Model, class_names: list[str], input_size: tuple[int, int], directory: Path
) -> None:
    """Save `model` with the serving contract into `directory` (labels asset included).

    Written with Keras's ExportArchive, which saves the backing `tf.Variable`s that the traced graph reads, so the
    SavedModel runs in TF Serving's graph-mode loader (a hand-made `tf.Module` that tracks the Keras wrappers saves
    copies the graph never reads: "Could not find variable … uninitialized" there).
    """
    directory.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for key, (fn, spec) in serving_endpoints(model, class_names, input_size).items():
        archive.add_endpoint(key, fn, input_signature=spec)
    archive.write_out(str(directory), verbose=False)
    assets = directory / tf.saved_model.ASSETS_DIRECTORY
    assets.mkdir(exist_ok=True)
    (assets / LABELS_FILENAME).write_text("".join(f"{n}\n" for n in class_names))
    _mark_classify_method(directory)


def _mark_classify_method(directory: Path) -> None:
    """Give the `classify` signature the Classify method name, so TF Serving's Classify API accepts it
    with or without `--enable_signature_method_name_check` (TF2 saving marks everything as predict)."""
    pb_path = directory / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb_path.read_bytes())
    for meta_graph in saved.meta_graphs:
        if CLASSIFY in meta_graph.signature_def:
            meta_graph.signature_def[CLASSIFY].method_name = CLASSIFY_METHOD
    pb_path.write_bytes(saved.SerializeToString())


def read_labels(saved_model_dir: Path) -> list[str]:
    """The label list that travels inside a SavedModel (assets/labels.txt)."""
    return (saved_model_dir / "assets" / LABELS_FILENAME).read_text().splitlines()


def example_for(encoded: bytes) -> bytes:
    """A serialized tf.Example carrying one encoded image, as the `classify` signature expects."""
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))
    return tf.train.Example(features=tf.train.Features(feature={IMAGE_FEATURE: feature})).SerializeToString()
