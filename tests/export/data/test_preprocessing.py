"""The in-graph resize: whole-factor box reduction before bilinear when shrinking, unchanged otherwise."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from export.data.preprocessing import block_mean, resize_uint8


def _bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    resized = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def test_block_mean_averages_whole_and_partial_edge_blocks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (11, 7, 3)).astype(np.float32)
    got = block_mean(tf.constant(image.astype(np.uint8)), tf.constant([4, 3])).numpy()
    assert got.shape == (3, 3, 3)
    for i in range(3):
        for j in range(3):
            block = image[4 * i:4 * i + 4, 3 * j:3 * j + 3].reshape(-1, 3)  # the last ones are 3 rows, 1 column
            np.testing.assert_array_equal(got[i, j], np.floor(block.mean(axis=0) + 0.5))


def test_a_whole_factor_enlargement_shrinks_back_to_the_original_pixels():
    rng = np.random.default_rng(1)
    original = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    enlarged = original.repeat(3, axis=0).repeat(3, axis=1)  # every pixel a 3x3 block
    np.testing.assert_array_equal(resize_uint8(tf.constant(enlarged), (32, 32)).numpy(), original)
    assert np.abs(_bilinear(enlarged, (32, 32)).astype(int) - original).max() > 10  # what bilinear alone gives


@pytest.mark.parametrize("shape", [(33, 40), (20, 20), (300, 200), (63, 63)])
def test_less_than_twice_the_size_is_plain_antialiased_bilinear(shape):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    size = (32, 32) if shape != (300, 200) else (224, 224)
    np.testing.assert_array_equal(resize_uint8(tf.constant(image), size).numpy(), _bilinear(image, size))


@pytest.mark.parametrize("shape,size", [((96, 96), (32, 32)), ((131, 97), (32, 32)), ((480, 640), (32, 32)),
                                        ((64, 50), (32, 32)), ((1000, 37), (32, 32)), ((200, 120), (32, 48)),
                                        ((900, 700), (224, 224))])
def test_shrinking_matches_pillows_reduce_then_bilinear(shape, size):
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 256, (shape[0] // 6, shape[1] // 6, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize(shape[::-1], Image.Resampling.BICUBIC))  # photo-like detail
    ours = resize_uint8(tf.constant(image), size).numpy().astype(int)
    pillow = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BILINEAR, reducing_gap=1.0))
    diff = np.abs(ours - pillow.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.3, (diff.max(), diff.mean())  # fixed-point rounding in Pillow
