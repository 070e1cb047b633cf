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
        assert list(rows) == ["as given", *encoder_shift.ENCODINGS]
        assert {r["images"] for r in rows.values()} == {images}
        for row in rows.values():
            assert_accuracy_over(row["accuracy"], images)
        # lossless bytes through serving_default give what the pixels through predict_pixels gave
        assert rows["png"]["accuracy"] == rows["as given"]["accuracy"]
        pooled = [r["accuracy"] for name, r in rows.items() if name not in ("as given", "png")]
        summary = report["summary"][split]
        assert summary["reencoded_mean"] == pytest.approx(np.mean(pooled))
        assert summary["gap_points"] == pytest.approx(100 * (summary["as_given"] - np.mean(pooled)), abs=0.01)


def test_a_path_without_a_saved_model_is_exit_2_naming_it(tmp_path, capsys):
    assert encoder_shift.main(["--model", str(tmp_path / "nowhere"), "--data", "synthetic"]) == 2
    assert "nowhere" in capsys.readouterr().err
