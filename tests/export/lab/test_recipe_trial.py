"""`python -m export.lab.recipe_trial`: the exporter's recipe and data on any Keras backend, reported, not published."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from export.data.cifar10_data import CLASS_NAMES
from tests.conftest import assert_accuracy_over

ROOT = Path(__file__).resolve().parents[3]


def _write_tarball(path: Path, split: str, per_class: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tar:
        for label, name in enumerate(CLASS_NAMES):
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) // 4 + label * 19
                buf = io.BytesIO()
                Image.fromarray(pixels).save(buf, "JPEG", quality=90)
                info = tarfile.TarInfo(f"{split}/{name}/{i:04d}.jpg")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))


@pytest.fixture()
def tarballs(tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    _write_tarball(data / "cifar10-train-jpg.tar.gz", "train", per_class=6, seed=0)
    _write_tarball(data / "cifar10-test-dev-jpg.tar.gz", "test", per_class=2, seed=1)
    return data


def test_tarball_pixels_and_order_match_the_exporters_folder_loader(tarballs, tmp_path):
    from export.data import cifar10_data
    from export.lab.recipe_trial import read_tarball

    trial = read_tarball(tarballs / "cifar10-train-jpg.tar.gz", "train", CLASS_NAMES)
    exporter = cifar10_data.load(str(tarballs), tmp_path / "cache").train
    assert trial.images.shape == (60, 32, 32, 3)
    np.testing.assert_array_equal(trial.labels, exporter.labels)
    np.testing.assert_array_equal(trial.images, exporter.images)  # Pillow and TF decode the same pixels


def test_trial_trains_the_recipe_and_reports_curve_and_both_test_accuracies(tarballs, tmp_path):
    from export.lab.recipe_trial import main

    out = tmp_path / "trial.json"
    assert main(["--data", str(tarballs), "--epochs", "2", "--val-split", "0.5", "--recipe", "improved",
                 "--label-smoothing", "0.1", "--optimizer", "sgd", "--learning-rate", "0.01", "--precision", "float32",
                 "--shift-interpolation", "nearest", "--shift-fraction", "0.125", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["backend"] == "tensorflow" and result["parameters"] == 2_264_458
    assert (result["train_images"], result["validation_images"], result["test_images"]) == (30, 30, 20)
    assert (result["optimizer"], result["label_smoothing"], result["learning_rate"]) == ("sgd", 0.1, 0.01)
    assert result["augment"] is True and result["conv_dropout"] == 0.0 and result["shift_interpolation"] == "nearest"
    assert result["shift_fraction"] == 0.125
    assert len(result["test_accuracy_curve"]) == 2 and len(result["history"]["val_accuracy"]) == 2
    assert result["precision"] == "float32" and result["test_accuracy"] == result["test_accuracy_curve"][-1]
    assert result["images_per_second"] > 0 and result["test_time_shift"] == 2
    for key in ("test_accuracy", "test_accuracy_with_flip", "test_accuracy_with_flip_and_shifts",
                "test_accuracy_with_vertical_shifts"):
        assert_accuracy_over(result[key], 20)



def test_trial_trains_under_mixed_bfloat16_and_reports_the_float32_models_accuracy(tarballs, monkeypatch):
    import keras

    from export.lab.recipe_trial import run
    from export.settings import CifarExportConfig
    from export.training import precision

    built = []
    real_as_float32 = precision.as_float32

    def recording_as_float32(model, build):
        built.append(model.dtype_policy.name)
        copy = real_as_float32(model, build)
        built.append(copy.dtype_policy.name)
        return copy

    monkeypatch.setattr(precision, "as_float32", recording_as_float32)
    result = run(CifarExportConfig(data=str(tarballs), epochs=1, val_split=0.0, recipe="improved",
                                   precision="mixed_bfloat16"))
    assert built == ["mixed_bfloat16", "float32"] and keras.mixed_precision.global_policy().name == "float32"
    assert result["precision"] == "mixed_bfloat16" and result["parameters"] == 2_264_458
    assert len(result["test_accuracy_curve"]) == 1
    assert_accuracy_over(result["test_accuracy_with_flip_and_shifts"], result["test_images"])

def test_missing_tarballs_exit_2_with_the_path(tmp_path):
    out = subprocess.run([sys.executable, "-m", "export.lab.recipe_trial", "--data", str(tmp_path), "--epochs", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "cifar10-train-jpg.tar.gz" in out.stderr and str(tmp_path) in out.stderr
