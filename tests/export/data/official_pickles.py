"""CIFAR-10/100 files written the way the data set's page documents them, independently of the code under test.

https://www.cs.toronto.edu/~kriz/cifar.html: each batch file is a pickled dict read with
`pickle.load(fo, encoding='bytes')`; `b'data'` is a numpy uint8 array [N, 3072] whose rows hold the red, then green,
then blue 32x32 plane in row-major order; `b'labels'` (CIFAR-10) or `b'fine_labels'`/`b'coarse_labels'` (CIFAR-100)
are lists of ints; `batches.meta` / `meta` name the classes (`b'label_names'`, `b'fine_label_names'`,
`b'coarse_label_names'`). The archives hold the files under `cifar-10-batches-py/` and `cifar-100-python/`.
The official files were written by Python 2's cPickle (protocol 2): the dict keys and names come back as bytes.
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np


def images_and_labels(n: int, classes: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """n random HWC uint8 images and labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), [i % classes for i in range(n)]


def rows_of(images: np.ndarray) -> np.ndarray:
    """HWC images as the documented rows: 1024 red, 1024 green, 1024 blue values each, row-major."""
    return np.stack([np.concatenate([img[:, :, c].reshape(-1) for c in range(3)]) for img in images])


def _dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(directory: Path, batches: list[tuple[np.ndarray, list[int]]], test: tuple[np.ndarray, list[int]],
                  names: list[str]) -> Path:
    """`directory/cifar-10-batches-py/` with data_batch_1..N, test_batch and batches.meta."""
    out = directory / "cifar-10-batches-py"
    out.mkdir(parents=True)
    for i, (images, labels) in enumerate(batches, start=1):
        _dump(out / f"data_batch_{i}", {b"batch_label": f"training batch {i} of {len(batches)}".encode(),
                                        b"labels": labels, b"data": rows_of(images),
                                        b"filenames": [f"img_{i}_{j}.png".encode() for j in range(len(labels))]})
    _dump(out / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": test[1], b"data": rows_of(test[0]),
                               b"filenames": [f"test_{j}.png".encode() for j in range(len(test[1]))]})
    _dump(out / "batches.meta", {b"num_cases_per_batch": len(batches[0][1]),
                                 b"label_names": [n.encode() for n in names], b"num_vis": 3072})
    return out


def write_cifar100(directory: Path, train: tuple[np.ndarray, list[int]], test: tuple[np.ndarray, list[int]],
                   coarse_of_fine: list[int], fine: list[str], coarse: list[str]) -> Path:
    """`directory/cifar-100-python/` with train, test and meta."""
    out = directory / "cifar-100-python"
    out.mkdir(parents=True)
    for name, (images, labels) in (("train", train), ("test", test)):
        _dump(out / name, {b"filenames": [f"{name}_{j}.png".encode() for j in range(len(labels))],
                           b"batch_label": f"{name}ing batch 1 of 1".encode(), b"fine_labels": labels,
                           b"coarse_labels": [coarse_of_fine[f] for f in labels], b"data": rows_of(images)})
    _dump(out / "meta", {b"fine_label_names": [n.encode() for n in fine],
                         b"coarse_label_names": [n.encode() for n in coarse]})
    return out


def tarball(path: Path, source: Path) -> Path:
    """The archive as distributed: the folder itself at the archive's top level."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=source.name)
    return path
