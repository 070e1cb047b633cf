"""The re-encoded CIFAR-10 copy: written in the exporter's image-folder layout, atomically, never over a directory."""

import json

import numpy as np
import pytest

from export.data import cifar10_data
from export.lab import jpeg_dataset


def test_copy_is_read_back_by_the_exporter_with_the_same_labels_and_more_loss(tmp_path, capsys):
    out = tmp_path / "q30"
    assert jpeg_dataset.main(["--data", "synthetic", "--quality", "30", "--out", str(out),
                              "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    original = cifar10_data.load("synthetic", tmp_path / "cache")
    copy = cifar10_data.load(str(out), tmp_path / "cache")
    assert copy.source.startswith("image folders")
    for key in ("train", "test"):
        a, b = getattr(original, key), getattr(copy, key)
        assert b.class_names == a.class_names and len(b) == len(a) == report[key]["images"]
        assert np.bincount(b.labels).tolist() == np.bincount(a.labels).tolist()
        assert report[key]["mean_abs_change_255"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["q30"]  # no staging directory left behind


def test_an_existing_out_directory_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert jpeg_dataset.main(["--data", "synthetic", "--quality", "50", "--out", str(out)]) == 2
    assert f"--out {str(out)!r} exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("quality", ["0", "101"])
def test_quality_outside_1_to_100_is_a_usage_error_naming_it(quality, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        jpeg_dataset.main(["--data", "synthetic", "--quality", quality, "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and f"--quality {quality}" in capsys.readouterr().err
