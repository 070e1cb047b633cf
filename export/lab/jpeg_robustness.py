"""How much test accuracy does a published CIFAR model lose when its input images are JPEG-compressed harder?

    python -m export.lab.jpeg_robustness --model models/cifar10 --data ../shared/datasets
    python -m export.lab.jpeg_robustness --model models/cifar10/3 --data ../shared/datasets --qualities 90,75,50,25

Every test image is re-encoded with Pillow at each JPEG quality (chroma subsampling as chosen), decoded again, and
classified through the exported `predict_pixels` signature in the graph-mode loader TF Serving uses. The table
gives, per quality, the mean absolute pixel change the re-encoding caused (in 1/255 units) and the accuracy, next
to the images as given. Clients that send phone or web JPEGs can read off what compression costs them; for the
shared CIFAR-10 JPEGs (already quality 75, 4:2:0) it estimates what one more round of such loss costs a model.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@dataclass(frozen=True)
class RobustnessConfig:
    """What `python -m export.lab.jpeg_robustness` was asked to do."""

    model: Path
    data: str
    qualities: tuple[int, ...]
    subsampling: str
    cache_dir: Path
    batch_size: int


def parse_qualities(text: str) -> tuple[int, ...]:
    """`90,75,50` → (90, 75, 50); ValueError naming the value when one is not an integer in 1..100."""
    out = []
    for part in text.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= 100:
            raise ValueError(f"JPEG quality {part.strip()!r}: expected an integer from 1 to 100")
        out.append(int(part))
    return tuple(out)


def encode_jpeg(image: np.ndarray, quality: int, subsampling: str) -> bytes:
    """One uint8 HWC image as JPEG bytes from Pillow at `quality` with the named chroma subsampling."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling])
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes back to a uint8 RGB HWC array (Pillow)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def reencode(images: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """uint8 NHWC images after one JPEG round trip through Pillow at `quality`."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = decode_jpeg(encode_jpeg(image, quality, subsampling))
    return out


def served_accuracy(servable, images: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    """Top-1 accuracy of the version's `predict_pixels` signature over `images`."""
    signature = servable.signature("predict_pixels")
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].astype(np.float32)
        probabilities = servable.run(signature, {"pixels": batch}, ("probabilities",))["probabilities"]
        correct += int((probabilities.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct / len(images)


def open_version(model: Path):
    """(version path, Servable) of `--model`: a version directory, or a model directory's newest version, loaded
    as TF Serving loads it; FileNotFoundError naming the path when there is no SavedModel."""
    from serving.lifecycle.model_paths import newest_version_path, parse_version
    from serving.lifecycle.servable import Servable

    path = newest_version_path(model)
    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"--model {str(model)!r}: no saved_model.pb there or in a version below it")
    return path, Servable(path.parent.name, parse_version(path.name) or 0, path)


def run(cfg: RobustnessConfig) -> dict:
    """Accuracy of the model on the test images as given and after re-encoding at each quality."""
    from export.data import cifar10_data

    path, servable = open_version(cfg.model)
    test = cifar10_data.load(cfg.data, cfg.cache_dir).test
    logger.info("%s: %d test images from %s", path, len(test), cfg.data)
    given = served_accuracy(servable, test.images, test.labels, cfg.batch_size)
    rows = [{"quality": "as given", "mean_abs_change_255": 0.0, "accuracy": given, "change_points": 0.0}]
    for quality in cfg.qualities:
        images = reencode(test.images, quality, cfg.subsampling)
        change = float(np.abs(images.astype(np.int16) - test.images.astype(np.int16)).mean())
        accuracy = served_accuracy(servable, images, test.labels, cfg.batch_size)
        rows.append({"quality": quality, "mean_abs_change_255": round(change, 2), "accuracy": accuracy,
                     "change_points": round(100 * (accuracy - given), 2)})
        logger.info("quality %d: mean |change| %.2f/255, accuracy %.4f", quality, change, accuracy)
    return {"model": str(path), "test_images": len(test), "subsampling": cfg.subsampling, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print a table and a JSON line."""
    p = argparse.ArgumentParser(prog="python -m export.lab.jpeg_robustness", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True,
                   help="a published version (models/cifar10/3) or a model directory (its newest version)")
    p.add_argument("--data", required=True, help="CIFAR-10 source as for `python -m export cifar10` (its test split)")
    p.add_argument("--qualities", default="90,75,50,30,10", help="JPEG qualities to re-encode at (default "
                   "90,75,50,30,10)")
    p.add_argument("--subsampling", default="4:2:0", choices=sorted(SUBSAMPLING),
                   help="chroma subsampling of the re-encoding (default 4:2:0, Pillow's and most cameras')")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    p.add_argument("--batch-size", type=int, default=256)
    a = p.parse_args(argv)
    try:
        qualities = parse_qualities(a.qualities)
    except ValueError as e:
        p.error(str(e))
    cfg = RobustnessConfig(a.model, a.data, qualities, a.subsampling, a.cache_dir, a.batch_size)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    try:
        r = run(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'quality':>9}{'mean |change| /255':>20}{'accuracy':>10}{'change (points)':>17}")
    for row in r["rows"]:
        print(f"{row['quality']:>9}{row['mean_abs_change_255']:>20.2f}{100 * row['accuracy']:>9.2f}%"
              f"{row['change_points']:>17.2f}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
