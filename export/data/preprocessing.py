"""The one definition of image preprocessing, used by training data loading and by the serving signatures.

Contract: a model exported by this project takes float32 RGB pixels in 0..255 at its input size; any
normalisation (the CIFAR-10 model's 1/255 scaling, a backbone's own preprocessing) lives inside the model.

Decoding choices, made once and mirrored by the Pillow client (`clients/preprocess.py`):
- JPEG is decoded with the accurate integer IDCT (libjpeg's JDCT_ISLOW), which is what Pillow uses; TF's
  default (INTEGER_FAST) differs from Pillow by several levels per pixel.
- Other formats (PNG, GIF first frame, BMP) through `tf.io.decode_image`, converted to 8-bit RGB.
- Resizing is bilinear with antialiasing (the kernel widens when shrinking, like Pillow's BILINEAR), then
  rounded to integers, so a client that resizes with Pillow to uint8 sends the same values. An image at least twice
  the input size along an axis is first reduced by the whole factor (each output pixel the mean of a block of
  factor × factor pixels, rounded; blocks at the right and bottom edge average the pixels they have), and bilinear
  resizes what is left: Pillow's `resize(size, BILINEAR, reducing_gap=1.0)`. A box average keeps the detail that a
  bilinear kernel widened over many pixels blurs away (measured on CIFAR-10 models: docs/results/cifar10.md).
"""

from __future__ import annotations

import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# Images larger than this are refused before decoding (Pillow's DecompressionBomb threshold, which the clients
# apply too): an 85 KB PNG can declare 23000×23000 pixels, and decoding it would cost gigabytes in any server.
MAX_IMAGE_PIXELS = 89_478_485
PREPROCESSING_DESCRIPTION = {
    "decode": "JPEG: libjpeg accurate integer IDCT (INTEGER_ACCURATE); PNG/GIF(first frame)/BMP: tf.io.decode_image",
    "color": "RGB, 3 channels",
    "resize": "only when size differs: shrinking by 2x or more first averages whole factor x factor blocks (rounded), "
              "then bilinear, antialias=True, half-pixel centers, rounded to integers (Pillow's BILINEAR with "
              "reducing_gap=1.0)",
    "model_input": "float32 RGB 0..255 [N, H, W, 3]; normalisation is inside the model",
    "max_pixels": MAX_IMAGE_PIXELS,
    "size_check": "width×height read from the JPEG/PNG/GIF/BMP header before decoding; larger images are refused "
                  "with INVALID_ARGUMENT",
}


def _header_int(header: tf.Tensor, offset: int, length: int, big_endian: bool) -> tf.Tensor:
    """An unsigned integer from `length` bytes of the (uint8) header at `offset`."""
    value = tf.constant(0, tf.int64)
    order = range(length) if big_endian else reversed(range(length))
    for i in order:
        value = value * 256 + tf.cast(header[offset + i], tf.int64)
    return value


def declared_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """width × height as the image's header declares it (JPEG SOF, PNG IHDR, GIF screen, BMP info header), without
    decoding; 0 for other data (the decoder then reports what it is)."""
    padded = tf.strings.substr(tf.strings.join([encoded, tf.constant("\0" * 32)]), 0, 32)
    header = tf.io.decode_raw(padded, tf.uint8)

    def png() -> tf.Tensor:
        return _header_int(header, 16, 4, True) * _header_int(header, 20, 4, True)

    def gif() -> tf.Tensor:
        return _header_int(header, 6, 2, False) * _header_int(header, 8, 2, False)

    def bmp() -> tf.Tensor:
        height = _header_int(header, 22, 4, False)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # top-down BMPs store a negative height
        return _header_int(header, 18, 4, False) * height

    def jpeg() -> tf.Tensor:
        shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
        return shape[0] * shape[1]

    prefix = tf.strings.substr(padded, 0, 4)
    return tf.case([
        (tf.io.is_jpeg(encoded), jpeg),
        (tf.equal(prefix, b"\x89PNG"), png),
        (tf.equal(prefix, b"GIF8"), gif),
        (tf.equal(tf.strings.substr(prefix, 0, 2), b"BM"), bmp),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


def decode_to_uint8(encoded: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Decode one encoded image (scalar string) to uint8 RGB [H, W, 3] at `size` = (height, width); images declaring
    more than MAX_IMAGE_PIXELS pixels are refused before any decoding."""
    check = tf.debugging.assert_less_equal(
        declared_pixels(encoded), tf.constant(MAX_IMAGE_PIXELS, tf.int64),
        message=f"image too large: it declares more than {MAX_IMAGE_PIXELS} pixels (width × height), the limit "
                f"this model accepts (a decompression bomb?)")
    with tf.control_dependencies([check]):
        encoded = tf.identity(encoded)
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
        factors = tf.maximum(shape[:2] // tf.constant([height, width]), 1)
        reduced = tf.cond(tf.reduce_any(factors > 1), lambda: block_mean(image, factors),
                          lambda: tf.cast(image, tf.float32))
        def bilinear() -> tf.Tensor:
            # What is left maps the source's full extent, measured in reduced pixels, onto the output (a partial
            # edge block counts for its share), as Pillow's resize of the reduced image over the box it covers.
            extent = tf.cast(shape[:2], tf.float32) / tf.cast(factors, tf.float32)
            return tf.raw_ops.ScaleAndTranslate(
                images=reduced[tf.newaxis], size=tf.constant([height, width]),
                scale=tf.constant([height, width], tf.float32) / extent, translation=tf.zeros([2]),
                kernel_type="triangle", antialias=True)[0]

        # Reduced exactly to the size (whole blocks only): the bilinear step would be the identity.
        exact = tf.reduce_all(tf.equal(shape[:2], factors * tf.constant([height, width])))
        resized = tf.cond(exact, lambda: reduced, bilinear)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
    out = tf.cond(same, lambda: image, _resize)
    out.set_shape([height, width, 3])
    return out


def block_mean(image: tf.Tensor, factors: tf.Tensor) -> tf.Tensor:
    """Each [factor_y, factor_x] block of an [H, W, C] image replaced by its mean, rounded half up, as float32 (Pillow's
    `reduce`); the last row and column of blocks may be partial and average the pixels they have. Built from
    ResizeArea at whole scales, where it is exactly the block mean and as fast as the bilinear resize."""
    shape = tf.shape(image)
    fy, fx = factors[0], factors[1]
    rows, cols = shape[0] // fy, shape[1] // fx  # whole blocks (at least one: a factor never exceeds the size)
    height, width = rows * fy, cols * fx
    channels = shape[2]

    def area(part: tf.Tensor, out_rows, out_cols) -> tf.Tensor:
        return tf.raw_ops.ResizeArea(images=part[tf.newaxis], size=tf.stack([out_rows, out_cols]))[0]

    def none(out_rows, out_cols) -> tf.Tensor:
        return tf.zeros(tf.stack([out_rows, out_cols, channels]), tf.float32)

    has_right, has_bottom = shape[1] > width, shape[0] > height
    right = tf.cond(has_right, lambda: area(image[:height, width:], rows, 1), lambda: none(rows, 0))
    whole = tf.cond(tf.logical_or(has_right, has_bottom), lambda: image[:height, :width], lambda: image)
    top = tf.concat([area(whole, rows, cols), right], axis=1)

    def bottom_row() -> tf.Tensor:
        corner = tf.cond(has_right, lambda: area(image[height:, width:], 1, 1), lambda: none(1, 0))
        return tf.concat([area(image[height:, :width], 1, cols), corner], axis=1)

    bottom = tf.cond(has_bottom, bottom_row, lambda: none(0, tf.shape(top)[1]))
    return tf.floor(tf.concat([top, bottom], axis=0) + 0.5)


def decode_batch(encoded: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Decode a [N] batch of encoded images to float32 [N, H, W, 3] pixels in 0..255."""
    height, width = size
    images = tf.map_fn(
        lambda b: decode_to_uint8(b, size),
        encoded,
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
    )
    return tf.cast(images, tf.float32)
