"""CIFAR-100: the official python format (fine and coarse labels, names from meta) and the export end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from export.data import cifar100_data
from export.data.image_data import DataError, LabeledImages
from export.publish import repository

FINE = [f"fine_{i:02d}" for i in range(100)]
COARSE = [f"coarse_{i:02d}" for i in range(20)]
COARSE_OF_FINE = [i % 20 for i in range(100)]


def small_cifar100(per_class_train: int = 3, per_class_test: int = 1, seed: int = 0):
    """Images whose colour encodes the fine class (so a model can learn them), fine labels 0..99."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> LabeledImages:
        labels = np.repeat(np.arange(100), n)
        base = np.stack([(labels * 37) % 256, (labels * 91) % 256, (labels * 53) % 256], axis=-1)
        images = base[:, None, None, :] + rng.integers(-8, 8, size=(len(labels), 32, 32, 3))
        return LabeledImages(np.clip(images, 0, 255).astype(np.uint8), labels, FINE)

    return make(per_class_train), make(per_class_test)


@pytest.fixture
def pickle_dir(tmp_path):
    train, test = small_cifar100()
    return cifar100_data.write_pickles(tmp_path / "cifar-100-python", train, test, COARSE_OF_FINE, FINE, COARSE)


def test_fine_labels_and_names_come_from_the_pickles(pickle_dir):
    splits = cifar100_data.load(str(pickle_dir.parent), "fine")
    assert splits.train.class_names == FINE and len(splits.train) == 300 and len(splits.test) == 100
    assert splits.train.images.shape == (300, 32, 32, 3)
    train, _ = small_cifar100()
    np.testing.assert_array_equal(splits.train.images, train.images)  # channel-major rows back to HWC
    np.testing.assert_array_equal(splits.train.labels, train.labels)


def test_coarse_mode_uses_the_superclass_labels_and_names(pickle_dir, tmp_path):
    archive = cifar100_data.write_tarball(tmp_path / "cifar-100-python.tar.gz", pickle_dir)
    splits = cifar100_data.load(str(archive), "coarse")
    assert splits.test.class_names == COARSE
    assert splits.test.labels.tolist() == COARSE_OF_FINE
    assert splits.train.class_counts()["coarse_07"] == 15  # 5 fine classes x 3 images


def test_missing_or_bad_files_are_clear_errors(pickle_dir, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        cifar100_data.load(str(tmp_path / "nope"))
    (pickle_dir / "meta").unlink()
    with pytest.raises(DataError, match=r"missing \['meta'\]"):
        cifar100_data.load(str(pickle_dir))
    (pickle_dir / "meta").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"meta: not a CIFAR python-format pickle \("):
        cifar100_data.load(str(pickle_dir))
    with pytest.raises(DataError, match="--label-mode 'medium'"):
        cifar100_data.load(str(pickle_dir), "medium")


def test_the_official_python_format_as_documented_loads_pixel_for_pixel(tmp_path):
    from tests.export.data import official_pickles as official

    train, test = official.images_and_labels(200, 100, 1), official.images_and_labels(100, 100, 2)
    folder = official.write_cifar100(tmp_path, train, test, COARSE_OF_FINE, FINE, COARSE)
    archive = official.tarball(tmp_path / "cifar-100-python.tar.gz", folder)
    for data in (str(folder), str(archive)):
        fine = cifar100_data.load(data, "fine")
        np.testing.assert_array_equal(fine.train.images, train[0])
        np.testing.assert_array_equal(fine.test.images, test[0])
        assert fine.train.labels.tolist() == train[1] and fine.train.class_names == FINE
        coarse = cifar100_data.load(data, "coarse")
        assert coarse.test.labels.tolist() == [COARSE_OF_FINE[f] for f in test[1]]
        assert coarse.test.class_names == COARSE


@pytest.mark.slow
def test_export_cifar100_publishes_a_servable_with_the_meta_label_names(pickle_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "export", "cifar100", "--data", str(pickle_dir), "--label-mode", "coarse",
         "--epochs", "1", "--val-split", "0", "--model-base-path", str(tmp_path / "models"),
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["published"] is True and summary["version"] == 1
    version_dir = tmp_path / "models" / "cifar100" / "1"
    assert repository.list_versions(version_dir.parent) == [1]
    labels = (version_dir / "assets" / "labels.txt").read_text().split()
    assert labels == COARSE
    metadata = json.loads((version_dir / "assets.extra" / "export_metadata.json").read_text())
    assert metadata["data"]["label_mode"] == "coarse" and metadata["class_names"] == COARSE
    training = metadata["training"]
    assert training["recipe"] == "reference" and training["epochs_run"] == 1
    # fit_seconds is stored rounded to 0.1 s: on a fast machine a 1-epoch fit of ~3 s moves the ratio by ~1.5 %
    assert training["images_per_second"] == pytest.approx(300 / training["fit_seconds"],
                                                          rel=0.01 + 0.05 / training["fit_seconds"])
