"""CIFAR-10 loaders: official python pickles, image folders (incl. the shared tarballs), keras, synthetic.

Every loader returns the same thing: `CifarSplits` of uint8 RGB 32x32 `LabeledImages` with the CIFAR-10 class
names, so the training pipeline does not care where the pixels came from.
"""

from __future__ import annotations

import io
import logging
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.data.image_data import DataError, LabeledImages, list_class_folders, read_class_folders

logger = logging.getLogger(__name__)

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
INPUT_SIZE = (32, 32)
SHARED_TARBALLS = ("cifar10-train-jpg.tar.gz", "cifar10-test-dev-jpg.tar.gz")
PICKLE_TARBALL = "cifar-10-python.tar.gz"
PICKLE_DIR = "cifar-10-batches-py"


@dataclass
class CifarSplits:
    """Training and test images plus a description of where they came from."""

    train: LabeledImages
    test: LabeledImages
    source: str


def load(data: str, cache_dir: Path, strict: bool = False) -> CifarSplits:
    """Load CIFAR-10 from `data`: a path (pickles, folders, shared tarballs), `keras` or `synthetic`."""
    if data == "synthetic":
        return synthetic()
    if data == "keras":
        return from_keras()
    root = Path(data)
    if not root.exists():
        raise DataError(f"--data {data!r}: no such file or directory (or use 'keras' / 'synthetic')")
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz")):
        return from_pickles(root)
    if (root / PICKLE_DIR).is_dir() or (root / "data_batch_1").is_file():
        return from_pickles(root / PICKLE_DIR if (root / PICKLE_DIR).is_dir() else root)
    if (root / PICKLE_TARBALL).is_file():
        return from_pickles(root / PICKLE_TARBALL)
    if (root / "train").is_dir():
        return from_folders(root, strict)
    if all((root / t).is_file() for t in SHARED_TARBALLS):
        return from_folders(extract_shared(root, cache_dir), strict)
    raise DataError(
        f"--data {data!r} holds no CIFAR-10 data: expected {PICKLE_DIR}/, {PICKLE_TARBALL}, train/<class>/ and "
        f"test/<class>/ image folders, or {' + '.join(SHARED_TARBALLS)}"
    )


def extract_shared(root: Path, cache_dir: Path) -> Path:
    """Extract the shared JPEG tarballs once into `cache_dir/cifar10-jpg` (reused while complete)."""
    target = cache_dir / "cifar10-jpg"
    marker = target / ".complete"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in SHARED_TARBALLS:
        logger.info("extracting %s into %s", root / name, target)
        with tarfile.open(root / name) as tar:
            tar.extractall(target, filter="data")
    marker.write_text("ok\n")
    return target


def from_folders(root: Path, strict: bool = False) -> CifarSplits:
    """`root/train/<class>/*` and `root/test/<class>/*`; class folders must be CIFAR-10's ten classes."""
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"missing {str(folder)!r}: image folders need train/ and test/")
        found = list_class_folders(folder)
        unknown = sorted(set(found) - set(CLASS_NAMES))
        if unknown:
            raise DataError(f"unknown class folder(s) {unknown} in {str(folder)!r}; expected {CLASS_NAMES}")
        missing = sorted(set(CLASS_NAMES) - set(found))
        if missing:
            raise DataError(f"class folder(s) {missing} missing from {str(folder)!r}")
        splits[split] = read_class_folders(folder, CLASS_NAMES, INPUT_SIZE, strict=strict)
    return CifarSplits(splits["train"], splits["test"], f"image folders {root}")


def unpickle(raw: bytes, where: str) -> dict:
    """One file of the official python format (CIFAR-10 and CIFAR-100 alike) as a dict with str keys; a clear
    DataError naming `where` for anything else."""
    try:
        obj = pickle.loads(raw, encoding="bytes")
    except Exception as e:  # pickle raises many types on bad input
        raise DataError(f"{where}: not a CIFAR python-format pickle ({e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch_to_images(batch: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        rows = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except KeyError as e:
        raise DataError(f"{where}: missing key {e} (need 'data' and 'labels')") from e
    if rows.ndim != 2 or rows.shape[1] != 3072 or len(rows) != len(labels):
        raise DataError(f"{where}: data must be uint8 [N, 3072] with N labels, got {rows.shape}/{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels outside 0..9")
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def from_pickles(path: Path) -> CifarSplits:
    """The official python format: a `cifar-10-batches-py` directory or the `cifar-10-python.tar.gz` archive."""
    files: dict[str, bytes] = {}
    if path.is_dir():
        for f in path.iterdir():
            if f.name.startswith(("data_batch_", "test_batch", "batches.meta")):
                files[f.name] = f.read_bytes()
    else:
        try:
            with tarfile.open(path) as tar:
                for m in tar.getmembers():
                    name = Path(m.name).name
                    if m.isfile() and name.startswith(("data_batch_", "test_batch", "batches.meta")):
                        files[name] = tar.extractfile(m).read()
        except tarfile.TarError as e:
            raise DataError(f"{str(path)!r} is not a readable tar archive ({e})") from e
    train_names = sorted(n for n in files if n.startswith("data_batch_"))
    if not train_names or "test_batch" not in files:
        raise DataError(f"{str(path)!r}: need data_batch_1..5 and test_batch, found {sorted(files)}")
    if "batches.meta" in files:
        meta = unpickle(files["batches.meta"], "batches.meta")
        names = [n.decode() if isinstance(n, bytes) else n for n in meta.get("label_names", [])]
        if names and names != CLASS_NAMES:
            raise DataError(f"batches.meta label_names {names} differ from CIFAR-10's {CLASS_NAMES}")
    parts = [_batch_to_images(unpickle(files[n], n), n) for n in train_names]
    train = LabeledImages(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), CLASS_NAMES)
    test_imgs, test_labels = _batch_to_images(unpickle(files["test_batch"], "test_batch"), "test_batch")
    return CifarSplits(train, LabeledImages(test_imgs, test_labels, CLASS_NAMES), f"python pickles {path}")


def from_keras() -> CifarSplits:
    """Download through `keras.datasets.cifar10` (needs network access the first time)."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as e:  # urllib/HTTP errors vary by platform
        raise DataError(
            f"could not download CIFAR-10 through keras.datasets ({e}); offline, pass --data with a local copy"
        ) from e
    return CifarSplits(
        LabeledImages(x_train, y_train.reshape(-1), CLASS_NAMES),
        LabeledImages(x_test, y_test.reshape(-1), CLASS_NAMES),
        "keras.datasets.cifar10",
    )


def synthetic(per_class_train: int = 40, per_class_test: int = 10, seed: int = 0) -> CifarSplits:
    """A small deterministic set for unit tests: each class has its own colour and stripe pattern plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]

    def make(n: int) -> LabeledImages:
        images, labels = [], []
        for c in range(10):
            base = np.zeros((32, 32, 3), np.float32)
            base[..., c % 3] = 60 + 18 * c
            stripes = ((xx * (c % 4 + 1) + yy * (c // 4)) // 4) % 2
            base += (stripes * 80)[..., None]
            for _ in range(n):
                noisy = base + rng.normal(0, 12, size=base.shape)
                images.append(np.clip(noisy, 0, 255).astype(np.uint8))
                labels.append(c)
        return LabeledImages(np.stack(images), np.asarray(labels), CLASS_NAMES)

    return CifarSplits(make(per_class_train), make(per_class_test), "synthetic")


def write_pickles(directory: Path, splits: CifarSplits, batches: int = 5) -> Path:
    """Write `splits` in the official python format (used by tests and for converting data sets)."""
    directory.mkdir(parents=True, exist_ok=True)

    def rows(images: np.ndarray) -> np.ndarray:
        return images.transpose(0, 3, 1, 2).reshape(len(images), -1)

    chunks = np.array_split(np.arange(len(splits.train)), batches)
    for i, idx in enumerate(chunks, start=1):
        batch = {b"data": rows(splits.train.images[idx]), b"labels": splits.train.labels[idx].tolist()}
        (directory / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    test = {b"data": rows(splits.test.images), b"labels": splits.test.labels.tolist()}
    (directory / "test_batch").write_bytes(pickle.dumps(test))
    meta = {b"label_names": [n.encode() for n in CLASS_NAMES]}
    (directory / "batches.meta").write_bytes(pickle.dumps(meta))
    return directory


def write_pickle_tarball(path: Path, source_dir: Path, member_dir: str = PICKLE_DIR) -> Path:
    """Pack a pickle directory as `cifar-10-python.tar.gz` does (members under `member_dir`/, by default
    cifar-10-batches-py/)."""
    with tarfile.open(path, "w:gz") as tar:
        for f in sorted(source_dir.iterdir()):
            info = tarfile.TarInfo(f"{member_dir}/{f.name}")
            data = f.read_bytes()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
