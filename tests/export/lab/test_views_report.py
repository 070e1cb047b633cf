"""The test-time views report: shifts parsed, every set of views measured on the same classifier."""

import json

import pytest

from export.lab import views_report as test_time_views
from tests.conftest import assert_accuracy_over


@pytest.mark.parametrize("text", ["0", "16", "2,x", ""])
def test_shifts_outside_1_to_15_are_refused_naming_the_value(text):
    with pytest.raises(ValueError, match="shift"):
        test_time_views.parse_shifts(text)


@pytest.mark.parametrize(("text", "expected"), [("2,2 -2,-2", ((2, 2), (-2, -2))), ("0,-3", ((0, -3),))])
def test_offsets_parse_as_rows_and_columns(text, expected):
    assert test_time_views.parse_offsets(text) == expected


@pytest.mark.parametrize(("text", "message"), [("2", "offset '2': expected ROWS,COLUMNS"),
                                               ("0,0", "offset '0,0': expected shifts from -15 to 15"),
                                               ("16,0", "offset '16,0'"), ("", "expected one or more")])
def test_offsets_that_are_not_shifts_are_refused_naming_the_value(text, message):
    with pytest.raises(ValueError, match="offset") as raised:
        test_time_views.parse_offsets(text)
    assert message in str(raised.value)


@pytest.mark.slow
def test_report_measures_each_set_of_views_against_the_flip(exported_cifar10, tmp_path, capsys):
    rc = test_time_views.main(["--model", str(exported_cifar10.parent), "--data", "synthetic", "--shifts", "1,3",
                               "--offsets", "2,2 -2,-2", "--cache-dir", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert report["model"] == str(exported_cifar10 / "assets.extra" / "keras_model.keras")
    assert report["test_images"] == 100
    rows = report["rows"]
    assert [(r["forward_passes"], r["shift"], r["vertical"]) for r in rows] == [
        (1, 0, False), (2, 0, False), (6, 1, False), (10, 1, True), (6, 3, False), (10, 3, True), (6, None, False)]
    assert rows[-1]["offsets"] == [[2, 2], [-2, -2]] and "offsets" not in rows[0]
    assert rows[1]["change_points_vs_flip"] == 0.0
    for row in rows:
        assert_accuracy_over(row["accuracy"], 100)
        assert row["change_points_vs_flip"] == pytest.approx(100 * (row["accuracy"] - rows[1]["accuracy"]), abs=0.01)
        assert row["seconds"] > 0 and row["images_per_second"] == pytest.approx(100 / row["seconds"], rel=0.01)
        assert row["time_vs_flip"] == pytest.approx(row["seconds"] / rows[1]["seconds"], abs=0.01)
    assert any("(--test-time-shift 3)" in line for line in out[:-1])  # the table names the exporter's option


def test_a_directory_without_a_keras_model_is_exit_2_naming_it(tmp_path, capsys):
    assert test_time_views.main(["--model", str(tmp_path), "--data", "synthetic"]) == 2
    assert f"--model {str(tmp_path)!r}: no .keras model there" in capsys.readouterr().err


@pytest.mark.slow
def test_validation_split_measures_the_images_the_models_own_run_held_out(exported_cifar10, tmp_path, capsys):
    metadata = json.loads((exported_cifar10 / "assets.extra" / "export_metadata.json").read_text())
    rc = test_time_views.main(["--model", str(exported_cifar10), "--data", "synthetic", "--shifts", "1",
                               "--split", "validation", "--cache-dir", str(tmp_path)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["split"] == "validation" and "test_images" not in report
    assert report["validation_images"] == metadata["data"]["validation_images"] == 40  # 10 % of 400 synthetic
    assert [r["forward_passes"] for r in report["rows"]] == [1, 2, 6, 10]


def write_version(root, data: dict, seed: int = 42):
    """A version directory holding only the export metadata `validation_images` reads."""
    extra = root / "cifar10" / "1" / "assets.extra"
    extra.mkdir(parents=True)
    (extra / "export_metadata.json").write_text(json.dumps({"data": data, "training": {"seed": seed}}))
    return extra / "keras_model.keras"


def test_validation_split_rebuilds_the_exporters_split_from_the_metadata(tmp_path):
    from export.data import cifar10_data
    from export.data.image_data import stratified_limit, stratified_split

    splits = cifar10_data.synthetic()
    model = write_version(tmp_path, {"val_split": 0.2, "limit": 200, "train_images": 160, "validation_images": 40},
                          seed=7)
    held_out = test_time_views.validation_images(model, splits)
    _, expected = stratified_split(stratified_limit(splits.train, 200, 7), 0.2, 7)  # what cifar10_export does
    assert (held_out.images == expected.images).all() and (held_out.labels == expected.labels).all()
    assert len(held_out) == 40 and sorted(set(held_out.labels)) == list(range(10))


@pytest.mark.parametrize(("data", "message"), [
    ({"val_split": 0.0, "limit": None, "train_images": 400, "validation_images": 0}, "--val-split 0, so no images"),
    ({"val_split": 0.1, "limit": None, "train_images": 45000, "validation_images": 5000},
     "this --data gives 360 training and 40 validation images, the model's run had 45000 and 5000"),
    ({"val_split": 0.1}, "has no export metadata with its split"),
])
def test_validation_split_is_refused_naming_why_when_it_cannot_be_rebuilt(tmp_path, data, message):
    from export.data import cifar10_data
    from export.data.image_data import DataError

    with pytest.raises(DataError, match="--split validation") as raised:
        test_time_views.validation_images(write_version(tmp_path, data), cifar10_data.synthetic())
    assert message in str(raised.value)


def test_validation_split_of_a_keras_file_outside_a_version_is_exit_2(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "alone.keras")
    rc = test_time_views.main(["--model", str(tmp_path / "alone.keras"), "--data", "synthetic", "--split",
                               "validation", "--cache-dir", str(tmp_path)])
    assert rc == 2
    assert "has no export metadata with its split" in capsys.readouterr().err
