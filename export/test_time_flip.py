"""Test-time flip: a trained classifier answering the mean of its probabilities for an image and its mirror image.

It lives in the exported graph, so every signature (and tensorflow_model_server) serves the averaged answer; a
second forward pass per image is the cost. Shared by the CIFAR and Caltechown exporters.
"""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="tfserving_pipeline")
class HorizontalFlip(layers.Layer):
    """Mirrors images left to right (NHWC), always: the deterministic flip of test-time augmentation."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)


def with_test_time_flip(model: keras.Model) -> keras.Model:
    """The trained `model` answering the mean of its probabilities for the image and its mirror image. Lives in
    the exported graph, so every signature (and tensorflow_model_server) serves the averaged answer; costs a
    second forward pass per image."""
    inputs = keras.Input(shape=model.input_shape[1:], name="pixels")
    plain = model(inputs)
    mirrored = model(HorizontalFlip(name="test_time_flip")(inputs))
    outputs = layers.Average(name="probabilities_flip_averaged")([plain, mirrored])
    return keras.Model(inputs, outputs, name=f"{model.name}_test_time_flip")


def without_test_time_flip(model: keras.Model) -> keras.Model:
    """The classifier inside a `with_test_time_flip` model (any other model unchanged), e.g. to reuse its layers."""
    if any(isinstance(layer, HorizontalFlip) for layer in model.layers):
        inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if len(inner) == 1:
            return inner[0]
    return model
