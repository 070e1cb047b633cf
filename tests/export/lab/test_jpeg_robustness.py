"""The JPEG robustness report: qualities parsed, images re-encoded, accuracy through the served graph."""

import json

import numpy as np
import pytest

from export.lab import jpeg_robustness
from tests.conftest import assert_accuracy_over


@pytest.mark.parametrize("text", ["0", "101", "75,high", ""])
def test_qualities_outside_1_to_100_are_refused_naming_the_value(text):
    with pytest.raises(ValueError, match="JPEG quality"):
        jpeg_robustness.parse_qualities(text)


def test_lower_quality_and_chroma_subsampling_change_the_pixels_more():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)

    def change(quality, subsampling):
        out = jpeg_robustness.reencode(images, quality, subsampling)
        assert out.shape == images.shape and out.dtype == np.uint8
        return np.abs(out.astype(int) - images).mean()

    assert change(95, "4:4:4") < change(95, "4:2:0") < change(10, "4:2:0")


@pytest.mark.slow
def test_report_gives_the_served_accuracy_per_quality(exported_cifar10, tmp_path, capsys):
    rc = jpeg_robustness.main(["--model", str(exported_cifar10.parent), "--data", "synthetic", "--qualities",
                               "90,5", "--cache-dir", str(tmp_path)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["model"] == str(exported_cifar10) and report["test_images"] == 100
    rows = {row["quality"]: row for row in report["rows"]}
    assert set(rows) == {"as given", 90, 5}
    assert rows["as given"]["mean_abs_change_255"] == 0.0
    assert 0 < rows[90]["mean_abs_change_255"] < rows[5]["mean_abs_change_255"]
    for row in rows.values():
        assert_accuracy_over(row["accuracy"], 100)
        assert row["change_points"] == pytest.approx(100 * (row["accuracy"] - rows["as given"]["accuracy"]), abs=0.01)


def test_a_path_without_a_saved_model_is_exit_2_naming_it(tmp_path, capsys):
    assert jpeg_robustness.main(["--model", str(tmp_path / "nowhere"), "--data", "synthetic"]) == 2
    assert "nowhere" in capsys.readouterr().err
