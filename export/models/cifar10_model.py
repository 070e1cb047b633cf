"""The reference CIFAR-10 CNN (2,264,458 parameters), taking float32 RGB 0..255 pixels."""

from __future__ import annotations

import keras
from keras import layers

from export.data.cifar10_data import CLASS_NAMES, INPUT_SIZE
from export.settings import SHIFT_FRACTION, SHIFT_INTERPOLATIONS, check_shift_fraction

DROPOUT = 0.2
PARAMETER_COUNT = 2_264_458


def build_model(num_classes: int = len(CLASS_NAMES), augment: bool = False, seed: int = 42,
                conv_dropout: float = DROPOUT, dense_dropout: float = DROPOUT,
                random_erasing: float = 0.0, shift_interpolation: str = "bilinear",
                shift_fraction: float = SHIFT_FRACTION) -> keras.Model:
    """Conv32 → Conv64 → Pool → Conv64 → Pool → Conv128 → Flatten → Dense256 → Dense128 → softmax.

    Each block is Conv/Dense → ReLU → (MaxPool) → Dropout → BatchNorm; dense layers use MaxNorm(3). The reference
    drops 20 % everywhere; the rates are arguments (the layers stay, a rate of 0 passes values through) so that a
    recipe can regularise less without changing the architecture.
    Scaling to [0, 1] is the first layer, so every serving signature gets it. Augmentation (random flip and
    shift, and with `random_erasing` > 0 Keras's random erasing: that fraction of the training images gets a
    rectangle of noise) is only active in training and changes no parameter count. The shift moves each image by
    a random fraction of up to `shift_fraction` of its size each way (0.1: up to 3.2 pixels); `shift_interpolation`
    "bilinear" (Keras's default) resamples fractional shifts, which blurs the image, "nearest" moves it by whole
    pixels, as the test-time views do.
    """
    if shift_interpolation not in SHIFT_INTERPOLATIONS:
        raise ValueError(f"shift interpolation must be one of {', '.join(SHIFT_INTERPOLATIONS)}, got "
                         f"{shift_interpolation!r}")
    check_shift_fraction(shift_fraction)
    if not 0.0 <= random_erasing <= 1.0:
        raise ValueError(f"random erasing must be a fraction of images in [0, 1], got {random_erasing}")
    inputs = keras.Input(shape=(*INPUT_SIZE, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255, name="scale_0_1")(inputs)
    if augment:
        x = layers.RandomFlip("horizontal", seed=seed, name="augment_flip")(x)
        x = layers.RandomTranslation(shift_fraction, shift_fraction, interpolation=shift_interpolation, seed=seed,
                                     name="augment_shift")(x)
    if random_erasing:
        x = layers.RandomErasing((random_erasing, random_erasing), value_range=(0.0, 1.0), seed=seed,
                                 name="augment_erase")(x)

    def conv_block(x, filters: int, pool: bool, n: int):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{n}")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{n}")(x)
        x = layers.Dropout(conv_dropout, seed=seed + n, name=f"dropout_conv{n}")(x)
        return layers.BatchNormalization(name=f"bn_conv{n}")(x)

    x = conv_block(x, 32, pool=False, n=1)
    x = conv_block(x, 64, pool=True, n=2)
    x = conv_block(x, 64, pool=True, n=3)
    x = conv_block(x, 128, pool=False, n=4)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dense_dropout, seed=seed + 10, name="dropout_flat")(x)
    for n, units in ((1, 256), (2, 128)):
        x = layers.Dense(units, kernel_constraint=keras.constraints.MaxNorm(3), activation="relu", name=f"dense{n}")(x)
        x = layers.Dropout(dense_dropout, seed=seed + 20 + n, name=f"dropout_dense{n}")(x)
        x = layers.BatchNormalization(name=f"bn_dense{n}")(x)
    # float32 whatever the dtype policy: under mixed precision the softmax and the loss stay in full precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cifar10_cnn")
