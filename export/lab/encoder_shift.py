"""Does a published CIFAR-10 model hold its accuracy on the same images encoded by another tool?

    python -m export.lab.encoder_shift --model models/cifar10 --data ../shared/datasets
    python -m export.lab.encoder_shift --model models/cifar10/3 --data ../shared/datasets --split test

The shared CIFAR-10 images were all stored by one encoder (JPEG quality 75, 4:2:0 chroma): a model trained and
chosen on them can learn that encoder's artifacts, and a client's images come from other tools. Each image set (the
validation images the model's own run held out, rebuilt from its metadata, and the shared test images) is classified
as given and after each of `ENCODINGS`: other JPEG qualities and chroma subsampling, Photoshop-style quantisation
tables (Pillow's presets), lossless PNG, and 3x enlargements (PNG and JPEG) that the model's own decoder shrinks back.
Re-encoded sets are sent as encoded bytes through `serving_default`, the path a client's photo takes (decode and
resize in the graph), in the graph-mode loader TF Serving uses; the images as given go through `predict_pixels`.
The table gives accuracy per set and encoding, its change against the images as given, and the pooled figure over
all re-encodings (PNG left out: it is the same pixels) with its gap to the images as given. The enlargements are
also shrunk outside the graph the way the decoder does since it reduces first (a box average by the whole factor,
then bilinear; Pillow, sent as pixels): for a version exported before that, what the current decoder would give;
those rows and their gap are reported beside, not in, the gap.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")


def _pillow(image: np.ndarray, fmt: str, scale: int = 1, **options) -> bytes:
    from PIL import Image

    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


# name -> uint8 HWC image to encoded bytes. Subsampling: 0 = 4:4:4, 2 = 4:2:0 (Pillow's numbering).
ENCODINGS: dict[str, Callable[[np.ndarray], bytes]] = {
    "png": lambda im: _pillow(im, "PNG"),
    "jpeg q95 4:4:4": lambda im: _pillow(im, "JPEG", quality=95, subsampling=0),
    "jpeg q75 4:4:4": lambda im: _pillow(im, "JPEG", quality=75, subsampling=0),
    "jpeg q90 4:2:0": lambda im: _pillow(im, "JPEG", quality=90, subsampling=2),
    "jpeg q50 4:2:0": lambda im: _pillow(im, "JPEG", quality=50, subsampling=2),
    "jpeg web_high tables": lambda im: _pillow(im, "JPEG", quality="web_high"),
    "jpeg medium tables": lambda im: _pillow(im, "JPEG", quality="medium"),
    "png 3x": lambda im: _pillow(im, "PNG", scale=3),
    "jpeg q85 3x": lambda im: _pillow(im, "JPEG", scale=3, quality=85, subsampling=2),
}
SAME_PIXELS = ("png",)  # lossless: a check of the bytes path, not a different encoding
# Not part of the gap: the enlarged sets decoded with Pillow and shrunk by whole factors first (Pillow's reduce(), a
# box average over 3x3 blocks here), then bilinear for what is left (`reducing_gap=1.0`, the decoder's resize since
# it reduces first), sent as pixels. The pooled figure with these rows in place of the 3x ones is reported beside
# the gap: for versions exported with the plain bilinear resize, what the current decoder would give them.
REDUCED_FIRST = {"png 3x": "png 3x, reduced first", "jpeg q85 3x": "jpeg q85 3x, reduced first"}


@dataclass(frozen=True)
class ShiftConfig:
    """What `python -m export.lab.encoder_shift` was asked to do."""

    model: Path
    data: str
    splits: tuple[str, ...]
    cache_dir: Path
    batch_size: int


def accuracy(servable, labels: np.ndarray, batch_size: int, pixels: np.ndarray | None = None,
             encoded: list[bytes] | None = None) -> float:
    """Top-1 accuracy through `predict_pixels` (pixels) or `serving_default` (encoded bytes)."""
    signature = servable.signature("predict_pixels" if pixels is not None else "")
    correct = 0
    for start in range(0, len(labels), batch_size):
        if pixels is not None:
            feed = {"pixels": pixels[start:start + batch_size].astype(np.float32)}
        else:
            feed = {"image_bytes": np.array(encoded[start:start + batch_size], dtype=object)}
        ids = servable.run(signature, feed, ("class_ids",))["class_ids"][:, 0]
        correct += int((ids == labels[start:start + batch_size]).sum())
    return correct / len(labels)


def reduced_first(encoded: bytes, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Pixels of `encoded` at `size` (height, width): Pillow's decode, whole-factor box reduction, then bilinear."""
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as picture:
        rgb = picture.convert("RGB")
    return np.asarray(rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=1.0))


def run(cfg: ShiftConfig) -> dict:
    """Accuracy of the version on each split as given and under every encoding."""
    from export.data import cifar10_data
    from export.lab.jpeg_robustness import open_version
    from export.lab.views_report import validation_images

    path, servable = open_version(cfg.model)
    splits = cifar10_data.load(cfg.data, cfg.cache_dir)
    sets = {"validation": lambda: validation_images(path / "assets.extra" / "keras_model.keras", splits),
            "test": lambda: splits.test}
    rows, summary = [], {}
    for split in cfg.splits:
        data = sets[split]()
        given = accuracy(servable, data.labels, cfg.batch_size, pixels=data.images)
        logger.info("%s: %d images, as given %.4f", split, len(data), given)
        rows.append({"split": split, "encoding": "as given", "images": len(data), "accuracy": given, "change": 0.0})
        reencoded, probed = {}, {}  # every encoding but the lossless ones: what the gap is taken over
        for name, encode in ENCODINGS.items():
            encoded = [encode(im) for im in data.images]
            results = {name: accuracy(servable, data.labels, cfg.batch_size, encoded=encoded)}
            if name in REDUCED_FIRST:
                pixels = np.stack([reduced_first(e) for e in encoded])
                results[REDUCED_FIRST[name]] = accuracy(servable, data.labels, cfg.batch_size, pixels=pixels)
            for label, got in results.items():
                logger.info("%s, %s: %.4f (%+.2f points)", split, label, got, 100 * (got - given))
                rows.append({"split": split, "encoding": label, "images": len(data), "accuracy": got,
                             "change": round(100 * (got - given), 2)})
            if name not in SAME_PIXELS:
                reencoded[name] = results[name]
                probed[name] = results.get(REDUCED_FIRST.get(name), results[name])
        pooled, pooled_probe = float(np.mean(list(reencoded.values()))), float(np.mean(list(probed.values())))
        summary[split] = {"as_given": given, "reencoded_mean": pooled, "gap_points": round(100 * (given - pooled), 2),
                          "worst_points": round(100 * (given - min(reencoded.values())), 2),
                          "gap_points_reduced_first": round(100 * (given - pooled_probe), 2)}
    return {"model": str(path), "rows": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print a table and a JSON line."""
    p = argparse.ArgumentParser(prog="python -m export.lab.encoder_shift", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True,
                   help="a published version (models/cifar10/3) or a model directory (its newest version)")
    p.add_argument("--data", required=True, help="the CIFAR-10 source the model was trained on")
    p.add_argument("--split", choices=(*SPLITS, "both"), default="both",
                   help="validation: the images the model's run held out (needs --val-split > 0 at export); test: "
                        "the shared test images (default: both)")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="extracted data (default: .cache)")
    p.add_argument("--batch-size", type=int, default=256, help="images per session run (default: 256)")
    a = p.parse_args(argv)
    cfg = ShiftConfig(a.model, a.data, SPLITS if a.split == "both" else (a.split,), a.cache_dir, a.batch_size)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from export.data.image_data import DataError
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    try:
        r = run(cfg)
    except (FileNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'split':<11}{'encoding':<28}{'images':>7}{'accuracy':>10}{'change':>8}")
    for row in r["rows"]:
        print(f"{row['split']:<11}{row['encoding']:<28}{row['images']:>7}{100 * row['accuracy']:>9.2f}%"
              f"{row['change']:>+8.2f}")
    for split, s in r["summary"].items():
        print(f"{split}: as given {100 * s['as_given']:.2f} %, re-encoded mean {100 * s['reencoded_mean']:.2f} %, "
              f"gap {s['gap_points']:+.2f} points (worst {s['worst_points']:+.2f}); with the enlargements reduced "
              f"first {s['gap_points_reduced_first']:+.2f}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
