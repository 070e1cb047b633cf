"""The serving contract shared by every image model of this project, and writing it as a SavedModel.

Signatures (input → outputs):
- `serving_default`: `image_bytes` string [None] (JPEG/PNG/GIF/BMP) → probabilities, scores, class_ids, class_names
- `predict_pixels`:  `pixels` float32 [None, H, W, 3], RGB 0..255 → the same outputs
- `classify`:        `inputs` serialized tf.Example with `image/encoded` → classes, scores (Classify API)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from export.preprocessing import decode_batch

SERVING_DEFAULT = "serving_default"
PREDICT_PIXELS = "predict_pixels"
CLASSIFY = "classify"
SIGNATURE_NAMES = (SERVING_DEFAULT, PREDICT_PIXELS, CLASSIFY)
IMAGE_FEATURE = "image/encoded"
LABELS_FILENAME = "labels.txt"
MAX_TOP_K = 5
CLASSIFY_METHOD = "tensorflow/serving/classify"


def top_k_for(num_classes: int) -> int:
    """K of the top-K outputs: min(5, number of classes)."""
    return min(MAX_TOP_K, num_classes)


class ServingModule(tf.Module):
    """Wraps a Keras model taking float32 0..255 pixels with the project's three signatures."""

    def __init__(self, model: keras.Model, class_names: list[str], input_size: tuple[int, int], labels_file: Path):
        super().__init__(name="serving")
        self.model = model
        # Random (augmentation) layers keep seed-generator state variables that the traced graph captures even
        # though they are inactive at inference; track them so the SavedModel can serialize the capture.
        self.seed_states = [
            generator.state for layer in model._flatten_layers()
            for generator in getattr(layer, "_seed_generators", [])
        ]
        self.input_size = tuple(input_size)
        self.class_names_table = tf.constant(list(class_names), dtype=tf.string)
        self.labels = tf.saved_model.Asset(str(labels_file))
        self.k = top_k_for(len(class_names))
        height, width = self.input_size
        self.serve_bytes = tf.function(
            self._serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")], autograph=False
        )
        self.serve_pixels = tf.function(
            self._serve_pixels, autograph=False,
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="pixels")],
        )
        self.serve_classify = tf.function(
            self._serve_classify, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False
        )

    def _predict(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self.model(pixels, training=False)
        scores, ids = tf.math.top_k(probabilities, k=self.k)
        return {
            "probabilities": probabilities,
            "scores": scores,
            "class_ids": tf.cast(ids, tf.int64),
            "class_names": tf.gather(self.class_names_table, ids),
        }

    def _serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._predict(decode_batch(image_bytes, self.input_size))

    def _serve_pixels(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._predict(pixels)

    def _serve_classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(inputs, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        out = self._predict(decode_batch(features[IMAGE_FEATURE], self.input_size))
        return {"classes": out["class_names"], "scores": out["scores"]}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """The concrete functions to save under their signature keys."""
        return {
            SERVING_DEFAULT: self.serve_bytes.get_concrete_function(),
            PREDICT_PIXELS: self.serve_pixels.get_concrete_function(),
            CLASSIFY: self.serve_classify.get_concrete_function(),
        }


def write_saved_model(
    model: keras.Model, class_names: list[str], input_size: tuple[int, int], directory: Path
) -> None:
    """Save `model` with the serving contract into `directory` (labels asset included)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".labels-") as tmp:
        labels_file = Path(tmp) / LABELS_FILENAME
        labels_file.write_text("".join(f"{n}\n" for n in class_names))
        module = ServingModule(model, class_names, input_size, labels_file)
        tf.saved_model.save(module, str(directory), signatures=module.signatures())
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
