"""The CIFAR recipes' numerics (learning-rate schedule, optimizer, loss), in Keras alone: no TensorFlow import, so
`export.lab.recipe_trial` runs them unchanged on any Keras backend."""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras

from export.models.cifar10_model import build_model
from export.settings import CifarExportConfig


@keras.saving.register_keras_serializable(package="export")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Keras's categorical cross-entropy with `label_smoothing`, fed integer labels: Keras's sparse cross-entropy
    has no smoothing, and one-hot labels would change the input pipeline and every metric."""

    def __init__(self, num_classes: int, label_smoothing: float, name: str = "smoothed_sparse_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}


def model_builder(cfg: CifarExportConfig, num_classes: int) -> Callable[[], keras.Model]:
    """`build_model` with the recipe's model settings bound (augmentation, dropout, random erasing, shift
    interpolation and size): the exporter and `export.lab.recipe_trial` call it under the training precision to train
    and again in float32 to evaluate and export, so both build the same CNN from one place."""
    return functools.partial(
        build_model, num_classes, augment=cfg.recipe_values.augment, seed=cfg.seed,
        conv_dropout=cfg.recipe_values.conv_dropout, dense_dropout=cfg.recipe_values.dense_dropout,
        random_erasing=cfg.recipe_values.random_erasing, shift_interpolation=cfg.recipe_values.shift_interpolation,
        shift_fraction=cfg.recipe_values.shift_fraction,
    )


def learning_rate(cfg: CifarExportConfig, steps_per_epoch: int) -> float | keras.optimizers.schedules.CosineDecay:
    """The reference recipe's constant rate, or the improved recipe's: linear warmup to the rate over the first
    epoch (batch-norm statistics settle before full steps), then cosine decay to 0 by the last step."""
    rate = cfg.recipe_values.learning_rate
    if cfg.recipe_values.lr_schedule == "constant":
        return rate
    warmup = steps_per_epoch if cfg.epochs > 1 else 0
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else rate, decay_steps=max(1, cfg.epochs * steps_per_epoch - warmup),
        warmup_target=rate if warmup else None, warmup_steps=warmup,
    )


# Variables decoupled weight decay leaves alone (Keras matches these against each variable's short name).
NO_DECAY_VARIABLES = ("bias", "gamma", "beta")


def optimizer(cfg: CifarExportConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam at the recipe's rate (AdamW when a weight decay is set), or SGD with Nesterov momentum 0.9; decoupled
    weight decay applies to kernels only."""
    rate, decay = learning_rate(cfg, steps_per_epoch), cfg.recipe_values.weight_decay
    if cfg.recipe_values.optimizer == "sgd":
        chosen = keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=decay or None)
    elif decay:
        chosen = keras.optimizers.AdamW(rate, weight_decay=decay)
    else:
        return keras.optimizers.Adam(rate)
    if decay:
        chosen.exclude_from_weight_decay(var_names=list(NO_DECAY_VARIABLES))
    return chosen


def optimizer_name(cfg: CifarExportConfig) -> str:
    """What `optimizer` builds, for the model's metadata."""
    if cfg.recipe_values.optimizer == "sgd":
        return "SGD (Nesterov momentum 0.9)"
    return "AdamW" if cfg.recipe_values.weight_decay else "Adam"


def loss(cfg: CifarExportConfig, num_classes: int) -> str | keras.losses.Loss:
    """Sparse cross-entropy, or with `label_smoothing` the smoothed cross-entropy over one-hot targets."""
    smoothing = cfg.recipe_values.label_smoothing
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    return SmoothedSparseCrossentropy(num_classes, smoothing) if smoothing else "sparse_categorical_crossentropy"
