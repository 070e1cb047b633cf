"""The one definition of image preprocessing, used by training data loading and by the serving signatures.

Contract: a model exported by this project takes float32 RGB pixels in 0..255 at its input size; any
normalisation (the CIFAR-10 model's 1/255 scaling, a backbone's own preprocessing) lives inside the model.

Decoding choices, made once and mirrored by the Pillow client (`clients/preprocess.py`):
- JPEG is decoded with the accurate integer IDCT (libjpeg's JDCT_ISLOW), which is what Pillow uses; TF's
  default (INTEGER_FAST) differs from Pillow by several levels per pixel.
- Other formats (PNG, GIF first frame, BMP) through `tf.io.decode_image`, converted to 8-bit RGB.
- Resizing is bilinear with antialiasing (the kernel widens when shrinking, like Pillow's BILINEAR), then
  rounded to integers, so a client that resizes with Pillow to uint8 sends the same values.
"""

from __future__ import annotations

import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
RESIZE_METHOD = "bilinear"
PREPROCESSING_DESCRIPTION = {
    "decode": "JPEG: libjpeg accurate integer IDCT (INTEGER_ACCURATE); PNG/GIF(first frame)/BMP: tf.io.decode_image",
    "color": "RGB, 3 channels",
    "resize": "bilinear, antialias=True, half-pixel centers, rounded to integers, only when size differs",
    "model_input": "float32 RGB 0..255 [N, H, W, 3]; normalisation is inside the model",
}


def decode_to_uint8(encoded: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Decode one encoded image (scalar string) to uint8 RGB [H, W, 3] at `size` = (height, width)."""
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return resize_uint8(image, size)


def resize_uint8(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Resize a uint8 [H, W, 3] image to `size` the project's way; a no-op when it already has that size."""
    height, width = size
    shape = tf.shape(image)

    def _resize() -> tf.Tensor:
        resized = tf.image.resize(image, (height, width), method=RESIZE_METHOD, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
    out = tf.cond(same, lambda: image, _resize)
    out.set_shape([height, width, 3])
    return out


def decode_batch(encoded: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Decode a [N] batch of encoded images to float32 [N, H, W, 3] pixels in 0..255."""
    height, width = size
    images = tf.map_fn(
        lambda b: decode_to_uint8(b, size),
        encoded,
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
    )
    return tf.cast(images, tf.float32)
