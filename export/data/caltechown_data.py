"""Caltechown data: Caltech101 class folders plus one's own photo classes, in a fixed class order.

Class order: Caltech101 folder names sorted case-insensitively (accordion=0, airplanes=1, …, BACKGROUND_Google=4,
…, yin_yang=101, as the reference Caltechown numbering), then the own classes, also sorted case-insensitively
(from 102 on). The order is written into every export's label list.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

from export.data.image_data import DataError, LabeledImages, list_class_folders, list_images, read_class_folders

logger = logging.getLogger(__name__)
MIN_IMAGES_PER_CLASS = 3  # one each for train, validation and test


def class_order(names: list[str]) -> list[str]:
    """Case-insensitive sort (ties broken by the exact name), the reference Caltechown numbering."""
    return sorted(names, key=lambda n: (n.casefold(), n))


@dataclass
class CaltechownData:
    """All images with their label list, where each class came from, and the classes with too few images."""

    images: LabeledImages
    caltech_classes: list[str]
    own_classes: list[str]
    small_classes: dict[str, int]
    source: str


def resolve_root(data: Path, cache_dir: Path) -> Path:
    """A directory of class folders: `data` itself, its single sub-folder, or an extracted .tar.gz."""
    if not data.exists():
        raise DataError(f"--data {str(data)!r}: no such file or directory")
    if data.is_file():
        if not data.name.endswith((".tar.gz", ".tgz")):
            raise DataError(f"--data {str(data)!r}: expected a directory of class folders or a .tar.gz of one")
        target = cache_dir / data.name.split(".")[0]
        if not (target / ".complete").exists():
            target.mkdir(parents=True, exist_ok=True)
            logger.info("extracting %s into %s", data, target)
            with tarfile.open(data) as tar:
                tar.extractall(target, filter="data")
            (target / ".complete").write_text("ok\n")
        data = target
    folders = list_class_folders(data)
    if len(folders) == 1 and len(list_class_folders(data / folders[0])) > 1:
        return data / folders[0]  # e.g. <extracted>/caltech101/<class>/
    return data


def own_class_folders(dirs: list[Path]) -> dict[str, Path]:
    """Each --own DIR is one class folder (its name is the class) or a folder of class folders."""
    found: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            raise DataError(f"--own {str(d)!r}: not a directory")
        subdirs = [s for s in sorted(d.iterdir()) if s.is_dir() and not s.name.startswith(".") and list_images(s)]
        pairs = [(s.name, s) for s in subdirs] if subdirs else [(d.name, d)]
        for name, folder in pairs:
            if name in found:
                raise DataError(f"own class {name!r} given twice ({found[name]} and {folder})")
            found[name] = folder
    return found


def load(data: Path, own: list[Path], size: tuple[int, int], cache_dir: Path, strict: bool = False) -> CaltechownData:
    """Read every class at `size` (TF decoding, as the serving graph does)."""
    root = resolve_root(data, cache_dir)
    caltech = class_order(list_class_folders(root))
    own_folders = own_class_folders(own)
    clash = sorted(set(caltech) & set(own_folders))
    if clash:
        raise DataError(f"own class name(s) {clash} collide with Caltech101 folders; rename them")
    own_names = class_order(list(own_folders))
    names = caltech + own_names
    images = read_class_folders(root, names, size, strict=strict, folder_for=own_folders)
    counts = images.class_counts()
    small = {n: c for n, c in counts.items() if c < MIN_IMAGES_PER_CLASS}
    for n, c in small.items():
        logger.warning("class %r has only %d image(s): it cannot appear in every split", n, c)
    logger.info("Caltechown: %d images, %d Caltech101 + %d own classes, %d skipped", len(images), len(caltech),
                len(own_names), len(images.skipped))
    return CaltechownData(images, caltech, own_names, small, f"class folders {root}" +
                          (f" + own {', '.join(str(p) for p in own)}" if own else ""))
