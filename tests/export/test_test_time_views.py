"""The test-time views report: shifts parsed, every set of views measured on the same classifier."""

import json

import pytest

from export import test_time_views


@pytest.mark.parametrize("text", ["0", "16", "2,x", ""])
def test_shifts_outside_1_to_15_are_refused_naming_the_value(text):
    with pytest.raises(ValueError, match="shift"):
        test_time_views.parse_shifts(text)


@pytest.mark.slow
def test_report_measures_each_set_of_views_against_the_flip(exported_cifar10, tmp_path, capsys):
    rc = test_time_views.main(["--model", str(exported_cifar10.parent), "--data", "synthetic", "--shifts", "1,3",
                               "--cache-dir", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert report["model"] == str(exported_cifar10 / "assets.extra" / "keras_model.keras")
    assert report["test_images"] == 100
    rows = report["rows"]
    assert [(r["forward_passes"], r["shift"], r["vertical"]) for r in rows] == [
        (1, 0, False), (2, 0, False), (6, 1, False), (10, 1, True), (6, 3, False), (10, 3, True)]
    assert rows[1]["change_points_vs_flip"] == 0.0
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["change_points_vs_flip"] == pytest.approx(100 * (row["accuracy"] - rows[1]["accuracy"]), abs=0.01)
        assert row["seconds"] > 0 and row["images_per_second"] == pytest.approx(100 / row["seconds"], rel=0.01)
        assert row["time_vs_flip"] == pytest.approx(row["seconds"] / rows[1]["seconds"], abs=0.01)
    assert any("(--test-time-shift 3)" in line for line in out[:-1])  # the table names the exporter's option


def test_a_directory_without_a_keras_model_is_exit_2_naming_it(tmp_path, capsys):
    assert test_time_views.main(["--model", str(tmp_path), "--data", "synthetic"]) == 2
    assert f"--model {str(tmp_path)!r}: no .keras model there" in capsys.readouterr().err
