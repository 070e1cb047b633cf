import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from clients.preprocess import ImageError, needs_reencode, prepare
from export.data.preprocessing import decode_to_uint8


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(w=40, h=30) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1), "RGB")


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb_float_pixels(mode):
    img = gradient().convert(mode) if mode != "I;16" else Image.fromarray(
        (np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50), "I;16")
    fmt = "JPEG" if mode in ("L", "CMYK") else "TIFF" if mode == "I;16" else "PNG"
    p = prepare(encode(img, fmt), mode, (32, 32))
    assert p.pixels.shape == (32, 32, 3) and p.pixels.dtype == np.float32
    assert p.pixels.min() >= 0 and p.pixels.max() <= 255


def test_sixteen_bit_png_scales_like_tensorflow():
    arr = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64)
    data = encode(Image.fromarray(arr, "I;16"), "PNG")
    ours = prepare(data, "16bit", (32, 32)).pixels[..., 0]
    theirs = decode_to_uint8(tf.constant(data), (32, 32)).numpy()[..., 0].astype(np.float32)
    assert np.abs(ours - theirs).max() <= 1


def test_exif_rotation_is_applied_and_bytes_reencoded():
    img = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    assert needs_reencode(Image.open(io.BytesIO(data)))
    p = prepare(data, "rotated", (20, 40))  # displayed image is 20 wide, 40 high
    assert p.encoded[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(p.encoded)).size == (20, 40)


def test_plain_jpeg_bytes_are_sent_unchanged():
    data = encode(gradient(), "JPEG")
    assert prepare(data, "x", (32, 32)).encoded is data


def test_webp_is_reencoded_losslessly_for_the_server():
    data = encode(gradient(), "WEBP", lossless=True)
    p = prepare(data, "x.webp", (30, 40))
    decoded = np.asarray(Image.open(io.BytesIO(p.encoded)).convert("RGB"), np.float32)
    np.testing.assert_array_equal(decoded, p.pixels)


def test_resize_to_requested_size_matches_tensorflow_closely():
    data = encode(gradient(200, 120), "PNG")
    ours = prepare(data, "x", (32, 48)).pixels
    assert ours.shape == (32, 48, 3)
    theirs = decode_to_uint8(tf.constant(data), (32, 48)).numpy().astype(np.float32)
    assert np.abs(ours - theirs).mean() < 1.0


def test_decompression_bomb_is_refused_before_decoding():
    big = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(ImageError, match="exceeds the limit of 1,000,000"):
        prepare(big, "bomb.png", (32, 32), max_pixels=1_000_000)


def test_unreadable_and_truncated_images():
    with pytest.raises(ImageError, match="not a readable image"):
        prepare(b"hello", "text.jpg", (32, 32))
    data = encode(gradient(), "PNG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        prepare(data[: len(data) // 2], "cut.png", (32, 32))


@pytest.mark.parametrize("size", [(480, 640), (97, 131)])
def test_shrinking_a_photo_matches_the_graphs_reduce_then_bilinear(size):
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8))
    data = encode(coarse.resize(size[::-1], Image.Resampling.BICUBIC), "PNG")
    ours = prepare(data, "photo.png", (32, 32)).pixels
    theirs = decode_to_uint8(tf.constant(data), (32, 32)).numpy().astype(np.float32)
    assert np.abs(ours - theirs).max() <= 2 and np.abs(ours - theirs).mean() < 0.3
