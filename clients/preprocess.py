"""Client-side image preparation with Pillow, mirroring `export/data/preprocessing.py` (the in-graph decoder).

- pixels mode: EXIF orientation applied, any mode (L, LA, P, RGBA, CMYK, I;16, …) to 8-bit RGB (alpha dropped,
  as TF's 3-channel decoding does), resized only when the size differs with Pillow's antialiased BILINEAR after a
  box reduction by whole factors (`reducing_gap=1.0`: the in-graph decoder's resize),
  float32 0..255 [H, W, 3] at the model's input size.
- bytes mode: the file's own bytes when the server can decode them exactly as they are (JPEG/PNG/GIF/BMP without
  an EXIF rotation); otherwise a lossless PNG of the oriented RGB image.
- A pixel-count limit refuses decompression bombs before any pixel is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 6,300 x 6,300 photo; far above any camera image we serve
SERVER_FORMATS = {"JPEG", "PNG", "GIF", "BMP"}
EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """An image that cannot be used: unreadable, corrupt, or too many pixels."""


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send: its name, bytes for the bytes path and pixels for the pixels path."""

    name: str
    encoded: bytes
    pixels: np.ndarray | None


def open_image(data: bytes, name: str = "<image>", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open (lazily) and check the pixel count before decoding anything."""
    try:
        with _bomb_guard(max_pixels):
            img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"{name}: not a readable image ({e})") from e
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: refused, {e}") from e
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(f"{name}: refused, {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,}")
    return img


class _bomb_guard:
    """Pillow's own check runs in `Image.open` (header only); ours runs right after, before any decoding, with
    the caller's limit and a clear message, so Pillow's is switched off for the duration of the open."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels

    def __enter__(self):
        self._saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None

    def __exit__(self, *exc):
        Image.MAX_IMAGE_PIXELS = self._saved


def to_rgb(img: Image.Image, name: str = "<image>") -> Image.Image:
    """Oriented 8-bit RGB (first frame of animations)."""
    try:
        img.seek(0)
        img = ImageOps.exif_transpose(img) or img
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.uint32)
            if img.mode != "I" or arr.max() > 255:
                arr = arr >> 8  # 16-bit to 8-bit the way TF's convert_image_dtype does
            img = Image.fromarray(arr.astype(np.uint8), "L")
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode != "RGB":
            img = img.convert("RGB")
        img.load()
    except (OSError, ValueError) as e:
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from e
    return img


def to_pixels(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """float32 [H, W, 3] in 0..255 at `size` = (height, width)."""
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=1.0)
    return np.asarray(img, dtype=np.uint8).astype(np.float32)


def needs_reencode(img: Image.Image) -> bool:
    """True when the server's decoder would not see what Pillow sees (format or EXIF rotation)."""
    if img.format not in SERVER_FORMATS:
        return True
    try:
        return img.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
    except Exception:  # broken EXIF blocks: re-encode to be safe
        return True


def prepare(data: bytes, name: str, size: tuple[int, int] | None, max_pixels: int = DEFAULT_MAX_PIXELS,
            want_pixels: bool = True) -> PreparedImage:
    """Bytes for the bytes path and (if `want_pixels`) pixels at `size` for the pixels path."""
    img = open_image(data, name, max_pixels)
    reencode = needs_reencode(img)
    rgb = to_rgb(img, name) if (want_pixels or reencode) else None
    if reencode:
        buf = io.BytesIO()
        rgb.save(buf, format="PNG")
        encoded = buf.getvalue()
    else:
        encoded = data
        if not want_pixels:
            to_rgb(img, name)  # decode fully once so corrupt files fail here, not on the server
    pixels = to_pixels(rgb, size) if want_pixels and size else None
    return PreparedImage(name, encoded, pixels)
