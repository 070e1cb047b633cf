"""Labelled image sets in memory, read from class folders, and stratified subsets/splits with fixed seeds."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)


class DataError(Exception):
    """The data set cannot be used as given (missing, empty, unknown classes, corrupt with --strict)."""


@dataclass
class LabeledImages:
    """uint8 RGB images [N, H, W, 3], int64 labels [N] and the ordered class names they index."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise DataError(f"images must be uint8 [N, H, W, 3], got {self.images.dtype} {self.images.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> LabeledImages:
        """The images at `indices`, same class names."""
        return LabeledImages(self.images[indices], self.labels[indices], self.class_names)

    def dataset(self) -> tf.data.Dataset:
        """A `tf.data.Dataset` of (uint8 image, int64 label) with `class_names` attached."""
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.images, self.labels))
        ds.class_names = list(self.class_names)
        return ds

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation in which every prefix holds the classes in (nearly) their overall proportions."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keys = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        keys[idx] = (np.arange(len(idx)) + rng.uniform(0.0, 1.0)) / len(idx)
    return np.argsort(keys, kind="stable")


def stratified_limit(data: LabeledImages, limit: int | None, seed: int) -> LabeledImages:
    """A stratified subset of `limit` images (all of them when limit is None or larger than the set)."""
    if limit is None or limit >= len(data):
        return data
    if limit < 1:
        raise DataError(f"--limit must be positive, got {limit}")
    order = stratified_order(data.labels, seed)
    return data.subset(np.sort(order[:limit]))


def limit_then_split(data: LabeledImages, limit: int | None, fraction: float,
                     seed: int) -> tuple[LabeledImages, LabeledImages]:
    """The CIFAR exporters' (train, validation): a stratified --limit subset, then --val-split held out, both with
    the run's seed (`export.lab.views_report --split validation` rebuilds the same split from the metadata)."""
    return stratified_split(stratified_limit(data, limit, seed), fraction, seed)


def stratified_split(
    data: LabeledImages, fraction: float, seed: int, keep_one_per_class: bool = True
) -> tuple[LabeledImages, LabeledImages]:
    """Split into (rest, held_out) with `fraction` held out per class; every class keeps ≥ 1 image in `rest`."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"split fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for c in np.unique(data.labels):
        idx = np.flatnonzero(data.labels == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        if keep_one_per_class:
            n_held = min(n_held, len(idx) - 1)
        held.append(idx[:n_held])
        rest.append(idx[n_held:])
    return data.subset(np.sort(np.concatenate(rest))), data.subset(np.sort(np.concatenate(held)))


def list_class_folders(root: Path) -> list[str]:
    """Names of the sub-directories of `root` (hidden ones ignored), sorted."""
    if not root.is_dir():
        raise DataError(f"data directory {str(root)!r} does not exist or is not a directory")
    names = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise DataError(f"data directory {str(root)!r} has no class folders")
    return names


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursive), by extension; other files are ignored."""
    from export.data.preprocessing import IMAGE_EXTENSIONS  # TensorFlow: imported when images are read, not before

    files = []
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."):
                files.append(Path(dirpath) / n)
            else:
                logger.debug("ignoring non-image file %s", Path(dirpath) / n)
    return sorted(files)


def read_class_folders(
    root: Path,
    class_names: list[str],
    size: tuple[int, int],
    strict: bool = False,
    folder_for: dict[str, Path] | None = None,
) -> LabeledImages:
    """Read `root/<class>/*` for each class (label = position in `class_names`) at `size` with TF decoding.

    `folder_for` maps class names to folders elsewhere (own classes). Corrupt or unreadable images are skipped
    and listed in `skipped`; with `strict` the first one is an error naming the file.
    """
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        folder = (folder_for or {}).get(name, root / name)
        files = list_images(folder)
        if not files:
            from export.data.preprocessing import IMAGE_EXTENSIONS

            raise DataError(f"class folder {str(folder)!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        paths.extend(str(f) for f in files)
        labels.extend([label] * len(files))
    images, ok = decode_files(paths, size)
    skipped = [p for p, good in zip(paths, ok, strict=True) if not good]
    if skipped:
        if strict:
            raise DataError(f"corrupt or unreadable image {skipped[0]!r} ({len(skipped)} in all; --strict)")
        logger.warning("skipped %d corrupt or unreadable images, e.g. %s", len(skipped), skipped[0])
    kept_labels = np.asarray(labels, dtype=np.int64)[ok]
    return LabeledImages(images, kept_labels, list(class_names), skipped)


def decode_files(paths: list[str], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Decode image files in parallel; returns (uint8 images of the readable ones, boolean mask of readable)."""
    import tensorflow as tf

    from export.data.preprocessing import decode_to_uint8

    height, width = size
    if not paths:
        return np.zeros((0, height, width, 3), np.uint8), np.zeros((0,), bool)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    ds = ds.map(
        lambda i, p: (i, decode_to_uint8(tf.io.read_file(p), size)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).ignore_errors(log_warning=False)
    out = np.zeros((len(paths), height, width, 3), np.uint8)
    ok = np.zeros((len(paths),), bool)
    done = 0
    for idx, imgs in ds.batch(512).as_numpy_iterator():
        out[idx] = imgs
        ok[idx] = True
        done += len(idx)
        if done % 10240 < 512:
            logger.info("decoded %d/%d images", done, len(paths))
    return out[ok], ok
