"""Test-time augmentation: a trained classifier answering the mean of its probabilities over several views of the
image (the image itself, its mirror image, copies shifted a few pixels left and right).

The views live in the exported graph, so every signature (and tensorflow_model_server) serves the averaged
answer; each view is one more forward pass per image. Shared by the CIFAR and Caltechown exporters and by
`python -m export.lab.views_report`, which measures what each set of views is worth on a trained model.
"""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="tfserving_pipeline")
class HorizontalFlip(layers.Layer):
    """Mirrors images left to right (NHWC), always: the deterministic flip of test-time augmentation."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)


@keras.saving.register_keras_serializable(package="tfserving_pipeline")
class ReflectShift(layers.Layer):
    """Moves the image content `dx` pixels left (`dx` < 0: right) and `dy` pixels up, filling the uncovered border
    by reflection (TF's MirrorPad), so the output has the input's size. Deterministic: a test-time view."""

    def __init__(self, dy: int = 0, dx: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.dy, self.dx = int(dy), int(dx)

    def call(self, x):
        py, px = abs(self.dy), abs(self.dx)
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ValueError("ReflectShift needs images of a fixed height and width")
        if py >= height or px >= width:
            raise ValueError(f"a shift of ({self.dy}, {self.dx}) pixels does not fit {height}x{width} images")
        padded = keras.ops.pad(x, [[0, 0], [py, py], [px, px], [0, 0]], mode="reflect")
        return padded[:, py + self.dy:py + self.dy + height, px + self.dx:px + self.dx + width, :]

    def get_config(self) -> dict:
        return {**super().get_config(), "dy": self.dy, "dx": self.dx}


def view_offsets(shift: int, vertical: bool = False) -> list[tuple[int, int]]:
    """The (dy, dx) offsets of the views: the image itself, then ±`shift` pixels left/right (and up/down)."""
    if shift < 0:
        raise ValueError(f"test-time shift {shift}: expected a number of pixels >= 0")
    if not shift:
        return [(0, 0)]
    offsets = [(0, 0), (0, shift), (0, -shift)]
    return offsets + ([(shift, 0), (-shift, 0)] if vertical else [])


def view_count(flip: bool, shift: int, vertical: bool = False) -> int:
    """Forward passes per image that `with_test_time_views(model, flip, shift, vertical)` makes."""
    return len(view_offsets(shift, vertical)) * (2 if flip else 1)


def with_test_time_views(model: keras.Model, flip: bool = True, shift: int = 0, vertical: bool = False
                         ) -> keras.Model:
    """The trained `model` answering the mean of its probabilities over the views (`view_offsets`, each also
    mirrored when `flip`); the model itself when that is a single view. Same weights, no new parameters."""
    if view_count(flip, shift, vertical) == 1:
        return model
    suffix = "test_time_flip" if not shift else f"test_time_views{view_count(flip, shift, vertical)}"
    return with_views_at(model, view_offsets(shift, vertical), flip, suffix)


def with_views_at(model: keras.Model, offsets: list[tuple[int, int]], flip: bool = True,
                  suffix: str = "test_time_views") -> keras.Model:
    """The trained `model` answering the mean of its probabilities over copies of the image shifted by each (dy,
    dx) of `offsets` ((0, 0): the image itself), each also mirrored when `flip` (two views at least).
    `with_test_time_views` builds the exporters' sets with it; `export.lab.views_report` measures other sets."""
    inputs = keras.Input(shape=model.input_shape[1:], name="pixels")
    answers = []
    for dy, dx in offsets:
        view = ReflectShift(dy, dx, name=f"test_time_shift_{dy}_{dx}".replace("-", "m"))(inputs) if dy or dx \
            else inputs
        answers.append(model(view))
        if flip:
            answers.append(model(HorizontalFlip(name=None if dy or dx else "test_time_flip")(view)))
    outputs = layers.Average(name="probabilities_views_averaged")(answers)
    return keras.Model(inputs, outputs, name=f"{model.name}_{suffix}")


def with_test_time_flip(model: keras.Model) -> keras.Model:
    """The trained `model` answering the mean of its probabilities for the image and its mirror image."""
    return with_test_time_views(model, flip=True)


def without_test_time_views(model: keras.Model) -> keras.Model:
    """The classifier inside a `with_test_time_views` model (any other model unchanged), e.g. to reuse its layers
    or to wrap it with other views."""
    if any(isinstance(layer, (HorizontalFlip, ReflectShift)) for layer in model.layers):
        inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if len(inner) == 1:
            return inner[0]
    return model
