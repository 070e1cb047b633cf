"""The CIFAR recipes as values: each a frozen `Recipe` of concrete settings (`RECIPES`), and the settings the
command line may override (`RECIPE_OPTIONS`). `export.settings.CifarExportConfig.recipe_values` applies a run's
overrides to its recipe once; exporters and the metadata read only the result. No TensorFlow or Keras import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHIFT_FRACTION = 0.1  # the training shift's largest move each way, a fraction of the side (both recipes' default)
# The JPEG qualities of --random-jpeg's re-encoding (libjpeg, 4:2:0 chroma, as tf.image.random_jpeg_quality): from a
# recipe's `random_jpeg_min_quality` (both recipes: visibly blocky) to nearly lossless.
RANDOM_JPEG_MIN_QUALITY = 50
RANDOM_JPEG_MAX_QUALITY = 95


@dataclass(frozen=True)
class Recipe:
    """A CIFAR recipe as concrete values: what a run trains, evaluates and exports with. `CifarExportConfig.recipe_
    values` is the named recipe with the command line's overrides applied once (`dataclasses.replace`)."""

    name: str
    learning_rate: float
    conv_dropout: float
    dense_dropout: float
    optimizer: str
    weight_decay: float
    label_smoothing: float
    random_erasing: float
    random_jpeg: float  # fraction of training images JPEG re-encoded at a random quality each epoch (0: none)
    random_jpeg_min_quality: int  # that quality is drawn uniformly from this to RANDOM_JPEG_MAX_QUALITY
    shift_fraction: float
    shift_interpolation: str
    test_time_flip: bool
    test_time_shift: int
    test_time_vertical: bool
    precision: str  # a Keras policy, or "auto"
    augment: bool  # random flip and shift in training (the reference recipe: only with --augment)
    lr_schedule: str  # "constant", or "warmup+cosine": warmed up over the first epoch, then cosine-decayed to 0


# The reference numerics are the reference project's; the improved recipe's values are the best measured (see the
# CIFAR-10 results page).
RECIPES: dict[str, Recipe] = {
    "reference": Recipe("reference", learning_rate=1e-3, conv_dropout=0.2, dense_dropout=0.2, optimizer="adam",
                        weight_decay=0.0, label_smoothing=0.0, random_erasing=0.0, random_jpeg=0.0,
                        random_jpeg_min_quality=RANDOM_JPEG_MIN_QUALITY, shift_fraction=SHIFT_FRACTION,
                        shift_interpolation="bilinear", test_time_flip=False, test_time_shift=0,
                        test_time_vertical=False, precision="float32", augment=False, lr_schedule="constant"),
    "improved": Recipe("improved", learning_rate=2e-3, conv_dropout=0.0, dense_dropout=0.0, optimizer="adam",
                       weight_decay=0.0, label_smoothing=0.0, random_erasing=0.0, random_jpeg=0.5,
                       random_jpeg_min_quality=RANDOM_JPEG_MIN_QUALITY, shift_fraction=SHIFT_FRACTION,
                       shift_interpolation="nearest", test_time_flip=True, test_time_shift=2,
                       test_time_vertical=False, precision="auto", augment=True, lr_schedule="warmup+cosine"),
}
# The recipe settings the command line can override (each a `by_recipe` option of CifarExportConfig).
RECIPE_OPTIONS = ("learning_rate", "conv_dropout", "dense_dropout", "optimizer", "weight_decay", "label_smoothing",
                  "random_erasing", "random_jpeg", "random_jpeg_min_quality", "shift_fraction", "shift_interpolation",
                  "test_time_flip", "test_time_shift", "test_time_vertical", "precision")


def format_setting(value: Any) -> str:
    """A setting's value as help texts write it: on/off, 2e-3 rather than 0.002, 0.2, nearest."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_recipe_defaults(setting: str, recipes: dict[str, Recipe] | None = None) -> str:
    """Each CIFAR recipe's default for a setting, as the option's help gives it: "reference 1e-3, improved 2e-3",
    or one value where the recipes agree."""
    values = {name: format_setting(getattr(recipe, setting)) for name, recipe in (recipes or RECIPES).items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{recipe} {value}" for recipe, value in values.items())
