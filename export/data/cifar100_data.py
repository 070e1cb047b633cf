"""CIFAR-100 loaders: the official python format (`cifar-100-python/{train,test,meta}`) and `keras` download.

The python format keeps one pickled dict per split with `data` (uint8 [N, 3072], channel-major rows) and two label
lists, `fine_labels` (100 classes) and `coarse_labels` (20 superclasses); `meta` names both. `--label-mode` picks
which labels the model learns, and the names from `meta` become the model's label list.
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np

from export.data.cifar10_data import CifarSplits, unpickle, write_pickle_tarball
from export.data.image_data import DataError, LabeledImages

INPUT_SIZE = (32, 32)
LABEL_MODES = {"fine": 100, "coarse": 20}
PICKLE_DIR = "cifar-100-python"
PICKLE_TARBALL = "cifar-100-python.tar.gz"
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"  # what keras.datasets.cifar100 downloads
_MEMBERS = ("train", "test", "meta")


def load(data: str, label_mode: str = "fine") -> CifarSplits:
    """CIFAR-100 from `data`: a `cifar-100-python` directory (or its parent), the `.tar.gz`, or `keras`."""
    if label_mode not in LABEL_MODES:
        raise DataError(f"--label-mode {label_mode!r}: expected one of {sorted(LABEL_MODES)}")
    if data == "keras":
        return from_keras(label_mode)
    root = Path(data)
    if not root.exists():
        raise DataError(f"--data {data!r}: no such file or directory (or use 'keras')")
    if root.is_file():
        return from_pickles(root, label_mode)
    for candidate in (root / PICKLE_DIR, root, root / PICKLE_TARBALL):
        if (candidate.is_dir() and (candidate / "train").is_file()) or (candidate.is_file()):
            return from_pickles(candidate, label_mode)
    raise DataError(f"--data {data!r} holds no CIFAR-100 data: expected {PICKLE_DIR}/{{train,test,meta}} or "
                    f"{PICKLE_TARBALL}")


def _read_members(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {name: (path / name).read_bytes() for name in _MEMBERS if (path / name).is_file()}
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in _MEMBERS:
                    files[name] = tar.extractfile(member).read()
    except tarfile.TarError as e:
        raise DataError(f"{str(path)!r} is not a readable tar archive ({e})") from e
    return files


def _names(meta: dict, label_mode: str) -> list[str]:
    key = f"{label_mode}_label_names"
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(key, [])]
    if len(names) != LABEL_MODES[label_mode]:
        raise DataError(f"meta: {key} has {len(names)} names, CIFAR-100 has {LABEL_MODES[label_mode]}")
    return names


def _split(batch: dict, where: str, label_mode: str, class_names: list[str]) -> LabeledImages:
    key = f"{label_mode}_labels"
    try:
        rows = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[key], dtype=np.int64)
    except KeyError as e:
        raise DataError(f"{where}: missing key {e} (need 'data' and '{key}')") from e
    if rows.ndim != 2 or rows.shape[1] != 3072 or len(rows) != len(labels):
        raise DataError(f"{where}: data must be uint8 [N, 3072] with N labels, got {rows.shape}/{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DataError(f"{where}: {key} outside 0..{len(class_names) - 1}")
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return LabeledImages(images, labels, class_names)


def from_pickles(path: Path, label_mode: str = "fine") -> CifarSplits:
    """The official python format, from its directory or archive."""
    files = _read_members(path)
    missing = [name for name in _MEMBERS if name not in files]
    if missing:
        raise DataError(f"{str(path)!r}: CIFAR-100 needs train, test and meta; missing {missing}")
    class_names = _names(unpickle(files["meta"], "meta"), label_mode)
    train = _split(unpickle(files["train"], "train"), "train", label_mode, class_names)
    test = _split(unpickle(files["test"], "test"), "test", label_mode, class_names)
    return CifarSplits(train, test, f"python pickles {path} ({label_mode} labels)")


def from_keras(label_mode: str = "fine") -> CifarSplits:
    """Download the official archive through Keras's file cache (network needed the first time), then read it like
    a local one, so label names come from its `meta`."""
    import keras

    try:
        archive = keras.utils.get_file(PICKLE_TARBALL, ORIGIN)
    except Exception as e:  # urllib/HTTP errors vary by platform
        raise DataError(f"could not download CIFAR-100 from {ORIGIN} ({e}); offline, pass --data with a local "
                        "copy") from e
    splits = from_pickles(Path(archive), label_mode)
    return CifarSplits(splits.train, splits.test, f"{ORIGIN} via keras ({label_mode} labels)")


def write_pickles(directory: Path, train: LabeledImages, test: LabeledImages, coarse_of_fine: list[int],
                  fine_names: list[str], coarse_names: list[str]) -> Path:
    """Write fine-labelled images in the official format (coarse labels via `coarse_of_fine`); tests use it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("test", test)):
        fine = split.labels.tolist()
        batch = {b"data": split.images.transpose(0, 3, 1, 2).reshape(len(split), -1), b"fine_labels": fine,
                 b"coarse_labels": [coarse_of_fine[f] for f in fine], b"filenames": [b"x.png"] * len(split)}
        (directory / name).write_bytes(pickle.dumps(batch))
    meta = {b"fine_label_names": [n.encode() for n in fine_names],
            b"coarse_label_names": [n.encode() for n in coarse_names]}
    (directory / "meta").write_bytes(pickle.dumps(meta))
    return directory


def write_tarball(path: Path, source_dir: Path) -> Path:
    """Pack a pickle directory the way `cifar-100-python.tar.gz` is (members under cifar-100-python/)."""
    return write_pickle_tarball(path, source_dir, member_dir=PICKLE_DIR)
