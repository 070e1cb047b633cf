"""The encoder-shift report: every encoding decodes to the image, the bytes path agrees with the pixels path, and
the report gives accuracy per split and encoding with the pooled gap."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from export.lab import encoder_shift
from tests.conftest import assert_accuracy_over


@pytest.mark.parametrize("name", list(encoder_shift.ENCODINGS))
def test_every_encoding_decodes_to_a_near_copy_of_the_image(name):
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 30, (32, 32, 3)), 0, 255).astype(np.uint8)  # some texture, not pure noise
    with Image.open(io.BytesIO(encoder_shift.ENCODINGS[name](image))) as decoded:
        picture = decoded.convert("RGB")
        if picture.size != (32, 32):
            assert picture.size == (96, 96)  # the 3x enlargements: the model's decoder shrinks them back
            picture = picture.resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=None)
        change = np.abs(np.asarray(picture, np.int16) - image).mean()
    assert change == 0 if name == "png" else change < 40, change


@pytest.mark.slow
def test_report_gives_accuracy_per_split_and_encoding_and_the_pooled_gap(exported_cifar10, tmp_path, capsys):
    rc = encoder_shift.main(["--model", str(exported_cifar10.parent), "--data", "synthetic",
                             "--cache-dir", str(tmp_path)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["model"] == str(exported_cifar10)
    for split, images in (("validation", 40), ("test", 100)):
        rows = {r["encoding"]: r for r in report["rows"] if r["split"] == split}
        expected = ["as given"]
        for name in encoder_shift.ENCODINGS:
            expected += [name, encoder_shift.REDUCED_FIRST[name]] if name in encoder_shift.REDUCED_FIRST else [name]
        assert list(rows) == expected
        assert {r["images"] for r in rows.values()} == {images}
        for row in rows.values():
            assert_accuracy_over(row["accuracy"], images)
        # lossless bytes through serving_default give what the pixels through predict_pixels gave
        assert rows["png"]["accuracy"] == rows["as given"]["accuracy"]
        probes = set(encoder_shift.REDUCED_FIRST.values())
        pooled = [r["accuracy"] for name, r in rows.items() if name not in ("as given", "png", *probes)]
        summary = report["summary"][split]
        assert summary["reencoded_mean"] == pytest.approx(np.mean(pooled))
        assert summary["gap_points"] == pytest.approx(100 * (summary["as_given"] - np.mean(pooled)), abs=0.01)
        # the probe's gap: the same pool with each enlargement's reduced-first row in its place
        swapped = [rows[encoder_shift.REDUCED_FIRST.get(name, name)]["accuracy"]
                   for name in encoder_shift.ENCODINGS if name != "png"]
        assert summary["gap_points_reduced_first"] == pytest.approx(100 * (summary["as_given"] - np.mean(swapped)),
                                                                    abs=0.01)


def test_reduced_first_shrinks_a_3x_enlargement_by_box_averages():
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "PNG")
    blocks = big.reshape(32, 3, 32, 3, 3).astype(np.float64).mean(axis=(1, 3))
    pixels = encoder_shift.reduced_first(buffer.getvalue())
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    # each pixel is its 3x3 block's mean (Pillow rounds in fixed point: within one level of it)
    assert np.abs(pixels.astype(np.float64) - blocks).max() < 1


def test_a_path_without_a_saved_model_is_exit_2_naming_it(tmp_path, capsys):
    assert encoder_shift.main(["--model", str(tmp_path / "nowhere"), "--data", "synthetic"]) == 2
    assert "nowhere" in capsys.readouterr().err
