"""Transfer-learning classifiers on Keras Applications backbones (or a project model's convolutional base).

Every model takes float32 RGB 0..255 pixels (the project's serving contract); the backbone's own preprocessing is
a layer inside the model, so every signature gets it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from export.data.image_data import DataError
from export.models.inference_views import without_test_time_views  # also registers the view layers for loading

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="tfserving_pipeline")
class CaffePreprocess(layers.Layer):
    """ResNet50's ImageNet preprocessing ('caffe' mode): RGB → BGR, minus the ImageNet channel means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, x):
        bgr = keras.ops.flip(x, axis=-1)
        return bgr - keras.ops.convert_to_tensor(np.asarray(self.MEAN_BGR, np.float32))


@dataclass(frozen=True)
class Backbone:
    """How to build one Keras Applications backbone and its preprocessing."""

    name: str
    builder: str
    preprocess: str  # caffe | tf (x/127.5-1) | none (the backbone rescales itself)
    default_size: int


BACKBONES = {
    "resnet50": Backbone("resnet50", "ResNet50", "caffe", 224),
    "mobilenetv2": Backbone("mobilenetv2", "MobileNetV2", "tf", 224),
    "efficientnetb0": Backbone("efficientnetb0", "EfficientNetB0", "none", 224),
}


def preprocessing_layer(kind: str) -> layers.Layer | None:
    """The backbone's input preprocessing as a layer."""
    if kind == "caffe":
        return CaffePreprocess(name="preprocess_caffe")
    if kind == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_tf")
    return None


def resolve_weights(weights: str) -> str | None:
    """`imagenet`, `none` or an existing weights file."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    if not Path(weights).is_file():
        raise DataError(f"--weights {weights!r}: use imagenet, none, or an existing weights file")
    return weights


def keras_backbone(spec: Backbone, size: int, weights: str, include_top: bool = False) -> keras.Model:
    """The Keras Applications model; a failed ImageNet download is a clear error."""
    builder = getattr(keras.applications, spec.builder)
    resolved = resolve_weights(weights)
    kwargs = {"input_shape": (size, size, 3), "include_top": include_top}
    if not include_top:
        kwargs["pooling"] = "avg"
    try:
        model = builder(weights="imagenet" if resolved == "imagenet" else None, **kwargs)
    except Exception as e:  # urllib/HTTP/SSL errors differ by platform
        if resolved == "imagenet":
            raise DataError(
                f"could not download the ImageNet weights for {spec.builder} ({type(e).__name__}: {e}); "
                "this needs network access: offline, use --weights PATH (a local .h5/.weights.h5 file) or "
                "--weights none"
            ) from e
        raise
    if resolved not in (None, "imagenet"):
        model.load_weights(resolved)
    return model


def cifar_conv_base(source: keras.Model, size: int) -> keras.Model:
    """The convolutional blocks of this project's CIFAR-10 CNN rebuilt for `size` inputs, weights copied.

    The base returns feature maps (not pooled vectors): `project_head` adds the depth a 4-conv CIFAR-10 base lacks
    for photos. From 64 px on, an extra 2×2 max-pool after conv1 keeps objects at about the scale the filters
    learned on 32×32 CIFAR-10 images, and makes every later layer 4× cheaper (the CPU-bound part of training).
    """
    from export.models.cifar10_model import DROPOUT

    source = without_test_time_views(source)
    names = [f"{kind}{i}" for i in range(1, 5) for kind in ("conv", "bn_conv")]
    missing = [n for n in names if n not in {layer.name for layer in source.layers}]
    if missing:
        raise DataError(f"--backbone-from: no layers {missing}; expected a CIFAR-10 model of this project")
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 255, name="scale_0_1")(inputs)
    for i, pool in ((1, size >= 64), (2, True), (3, True), (4, False)):
        conv = source.get_layer(f"conv{i}")
        x = layers.Conv2D(conv.filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = layers.Dropout(DROPOUT, name=f"dropout_conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn_conv{i}")(x)
    base = keras.Model(inputs, x, name="cifar10_conv_base")
    for n in names:
        base.get_layer(n).set_weights(source.get_layer(n).get_weights())
    return base


def project_head(features, filters: int = 256):
    """Two new conv blocks (the second after a 2×2 pool) on a project base's feature maps, then global pooling."""
    x = features
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"head_conv{i}")(x)
        x = layers.BatchNormalization(name=f"head_bn{i}")(x)
        x = layers.ReLU(name=f"head_relu{i}")(x)
        if i == 1:
            x = layers.MaxPooling2D(2, name="head_pool1")(x)
    return layers.GlobalAveragePooling2D(name="avg_pool")(x)


def resolve_project_model(path: Path, flag: str = "--backbone-from") -> Path:
    """The `.keras` file behind `--backbone-from`: a `.keras` file, an exported version directory (its
    assets.extra/keras_model.keras), or a model directory such as models/cifar10 (its newest version, the version
    TF Serving's default policy would serve)."""
    from serving.lifecycle.model_paths import newest_version_path

    path = Path(path)
    if path.is_dir() and not (path / "assets.extra").is_dir():
        newest = newest_version_path(path)
        if newest != path:
            logger.info("%s %s: newest version %s", flag, path, newest.name)
            path = newest
    candidate = path / "assets.extra" / "keras_model.keras" if path.is_dir() else path
    if not candidate.is_file():
        raise DataError(f"{flag} {str(path)!r}: no .keras model there (exports keep one in "
                        "assets.extra/keras_model.keras)")
    return candidate


def load_project_model(path: Path, flag: str = "--backbone-from") -> keras.Model:
    """The Keras model behind `--backbone-from` (see `resolve_project_model`).

    `compile=False` skips the outer model's training config, but Keras still rebuilds the compile config of a
    nested model (the CNN inside a test-time-flip export), so the project's custom losses must be registered."""
    import export.models.cifar10_recipe  # noqa: F401  (registers SmoothedSparseCrossentropy with Keras)

    return keras.models.load_model(resolve_project_model(path, flag), compile=False)


def build_classifier(num_classes: int, size: int, backbone: str, weights: str, augment: bool, seed: int,
                     backbone_from: Path | None = None, dropout: float = 0.2) -> tuple[keras.Model, keras.Model]:
    """(classifier taking 0..255 pixels, its backbone) — the backbone starts frozen."""
    inputs = keras.Input((size, size, 3), name="pixels")
    x = inputs
    if augment:
        x = layers.RandomFlip("horizontal", seed=seed, name="augment_flip")(x)
        x = layers.RandomRotation(0.05, seed=seed, name="augment_rotation")(x)
        x = layers.RandomZoom(0.1, seed=seed, name="augment_zoom")(x)
        x = layers.RandomContrast(0.1, seed=seed, name="augment_contrast")(x)
    if backbone_from is not None:
        base = cifar_conv_base(load_project_model(backbone_from), size)
    else:
        spec = BACKBONES[backbone]
        pre = preprocessing_layer(spec.preprocess)
        if pre is not None:
            x = pre(x)
        base = keras_backbone(spec, size, weights)
    base.trainable = False
    features = base(x, training=False)  # batch-norm statistics stay frozen, also while fine-tuning
    if backbone_from is not None:
        features = project_head(features)
    features = layers.Dropout(dropout, seed=seed, name="head_dropout")(features)
    # float32 whatever the dtype policy: under mixed precision the softmax and the loss stay in full precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(features)
    return keras.Model(inputs, outputs, name=f"transfer_{backbone if backbone_from is None else 'project'}"), base


def unfreeze_top(base: keras.Model, n_layers: int) -> int:
    """Make the top `n_layers` layers trainable (batch-norm layers stay frozen); returns how many were opened."""
    base.trainable = True
    opened = 0
    for i, layer in enumerate(base.layers):
        top = i >= len(base.layers) - n_layers
        layer.trainable = top and not isinstance(layer, layers.BatchNormalization)
        opened += int(layer.trainable)
    return opened
