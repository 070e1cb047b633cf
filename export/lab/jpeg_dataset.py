"""A CIFAR-10 copy with one more round of JPEG loss, to measure what such loss costs in training, not only at test.

    python -m export.lab.jpeg_dataset --data ../shared/datasets --quality 50 --out /tmp/cifar10-q50
    python -m export cifar10 --data /tmp/cifar10-q50 --val-split 0 --epochs 25

Every training and test image of `--data` (any source `python -m export cifar10` reads) is encoded once more with
Pillow at `--quality` (chroma subsampling as chosen) and written as `<out>/train/<class>/<n>.jpg` and
`<out>/test/<class>/<n>.jpg`, the image-folder layout the exporter reads. Training on that copy and comparing with
a run on the originals gives the cost of the extra loss when the model sees it in training and at test, as the
shared CIFAR-10 JPEGs (already quality 75, 4:2:0) carry their first round in both splits. The copy is written
under a temporary name and renamed when complete; an existing `--out` is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from export.data.image_data import LabeledImages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JpegDatasetConfig:
    """What `python -m export.lab.jpeg_dataset` was asked to write."""

    data: str
    out: Path
    quality: int
    subsampling: str
    cache_dir: Path


def write_split(split: LabeledImages, directory: Path, quality: int, subsampling: str, measured: int = 2000) -> float:
    """Writes `split` re-encoded as `<directory>/<class>/<n>.jpg`; returns the mean absolute pixel change (1/255)
    over its first `measured` images, decoded from the bytes written."""
    from export.lab.jpeg_robustness import decode_jpeg, encode_jpeg

    for name in split.class_names:
        (directory / name).mkdir(parents=True)
    counts = dict.fromkeys(split.class_names, 0)
    changes = []
    for i, (image, label) in enumerate(zip(split.images, split.labels, strict=True)):
        name = split.class_names[int(label)]
        data = encode_jpeg(image, quality, subsampling)
        (directory / name / f"{counts[name]:05d}.jpg").write_bytes(data)
        counts[name] += 1
        if i < measured:
            changes.append(np.abs(decode_jpeg(data).astype(np.int16) - image.astype(np.int16)).mean())
    return float(np.mean(changes)) if changes else 0.0


def run(cfg: JpegDatasetConfig) -> dict:
    """Writes the re-encoded copy atomically; returns image counts and the mean pixel change per split."""
    from export.data import cifar10_data
    from export.publish.repository import staging_dir

    if cfg.out.exists():
        raise FileExistsError(f"--out {str(cfg.out)!r} exists: choose a new directory")
    splits = cifar10_data.load(cfg.data, cfg.cache_dir)
    report = {"source": splits.source, "out": str(cfg.out), "quality": cfg.quality, "subsampling": cfg.subsampling}
    with staging_dir(cfg.out.parent) as staging:  # removed on any failure; renamed into place when complete
        for key, split in (("train", splits.train), ("test", splits.test)):
            logger.info("%s: re-encoding %d images at quality %d (%s)", key, len(split), cfg.quality,
                        cfg.subsampling)
            change = write_split(split, staging / key, cfg.quality, cfg.subsampling)
            report[key] = {"images": len(split), "mean_abs_change_255": round(change, 2)}
        os.rename(staging, cfg.out)
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse flags, write the copy, print a JSON line."""
    from export.lab.jpeg_robustness import SUBSAMPLING

    p = argparse.ArgumentParser(prog="python -m export.lab.jpeg_dataset", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="CIFAR-10 source as for `python -m export cifar10`")
    p.add_argument("--out", type=Path, required=True, help="new directory for the re-encoded copy")
    p.add_argument("--quality", type=int, required=True, help="JPEG quality, 1 to 100")
    p.add_argument("--subsampling", default="4:2:0", choices=sorted(SUBSAMPLING),
                   help="chroma subsampling (default 4:2:0, as the shared CIFAR-10 JPEGs)")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    a = p.parse_args(argv)
    if not 1 <= a.quality <= 100:
        p.error(f"--quality {a.quality}: expected an integer from 1 to 100")
    cfg = JpegDatasetConfig(a.data, a.out, a.quality, a.subsampling, a.cache_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from export.data.image_data import DataError

    try:
        report = run(cfg)
    except (DataError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
