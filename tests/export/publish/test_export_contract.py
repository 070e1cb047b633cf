"""The serving contract of a published CIFAR-10 version (trained 1 epoch on synthetic data)."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from export.data.cifar10_data import CLASS_NAMES
from export.publish.signatures import example_for, read_labels
from export.publish.warmup import read_warmup_file
from tests.conftest import assert_accuracy_over

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loaded(exported_cifar10):
    return tf.saved_model.load(str(exported_cifar10))


def test_signature_names_dtypes_and_shapes(loaded):
    sigs = loaded.signatures
    assert set(sigs) == {"serving_default", "predict_pixels", "classify"}
    spec = lambda s: {k: (v.dtype, v.shape.as_list()) for k, v in s.structured_input_signature[1].items()}  # noqa: E731
    assert spec(sigs["serving_default"]) == {"image_bytes": (tf.string, [None])}
    assert spec(sigs["predict_pixels"]) == {"pixels": (tf.float32, [None, 32, 32, 3])}
    assert spec(sigs["classify"]) == {"inputs": (tf.string, [None])}
    outputs = {k: (v.dtype, v.shape.as_list()) for k, v in sigs["serving_default"].structured_outputs.items()}
    assert outputs == {
        "probabilities": (tf.float32, [None, 10]),
        "scores": (tf.float32, [None, 5]),
        "class_ids": (tf.int64, [None, 5]),
        "class_names": (tf.string, [None, 5]),
    }
    classify = {k: (v.dtype, v.shape.as_list()) for k, v in sigs["classify"].structured_outputs.items()}
    assert classify == {"classes": (tf.string, [None, 5]), "scores": (tf.float32, [None, 5])}


def test_classify_signature_has_classify_method_name(exported_cifar10):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((exported_cifar10 / "saved_model.pb").read_bytes())
    defs = sm.meta_graphs[0].signature_def
    assert defs["classify"].method_name == "tensorflow/serving/classify"
    assert defs["serving_default"].method_name == "tensorflow/serving/predict"


def test_bytes_and_pixels_paths_agree_on_real_jpegs(loaded, real_jpegs):
    raw = [p.read_bytes() for p in real_jpegs]
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant(raw))
    tf_pixels = np.stack([tf.io.decode_jpeg(b, dct_method="INTEGER_ACCURATE").numpy() for b in raw])
    by_pixels = loaded.signatures["predict_pixels"](pixels=tf.constant(tf_pixels, tf.float32))
    np.testing.assert_allclose(by_bytes["probabilities"], by_pixels["probabilities"], atol=1e-6)
    # Pillow decoding (what clients use) matches the in-graph decoder on these files.
    pil = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in real_jpegs])
    assert np.abs(pil.astype(int) - tf_pixels.astype(int)).max() <= 1
    by_pil = loaded.signatures["predict_pixels"](pixels=tf.constant(pil, tf.float32))
    assert np.abs(by_pil["probabilities"].numpy() - by_bytes["probabilities"].numpy()).max() < 0.02


def test_outputs_are_consistent_top_k(loaded, real_jpegs):
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([p.read_bytes() for p in real_jpegs[:4]]))
    probs = out["probabilities"].numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    ids = out["class_ids"].numpy()
    assert np.array_equal(ids, np.argsort(-probs, axis=1)[:, :5])
    np.testing.assert_allclose(out["scores"].numpy(), np.take_along_axis(probs, ids, axis=1), atol=1e-7)
    names = [[n.decode() for n in row] for row in out["class_names"].numpy()]
    assert names == [[CLASS_NAMES[i] for i in row] for row in ids]


def test_classify_signature_matches_predict(loaded, real_jpegs):
    raw = [p.read_bytes() for p in real_jpegs[:3]]
    pred = loaded.signatures["serving_default"](image_bytes=tf.constant(raw))
    cls = loaded.signatures["classify"](inputs=tf.constant([example_for(b) for b in raw]))
    np.testing.assert_allclose(cls["scores"].numpy(), pred["scores"].numpy(), atol=1e-7)
    assert np.array_equal(cls["classes"].numpy(), pred["class_names"].numpy())


def test_png_gif_bmp_inputs_decode(loaded, real_jpegs, tmp_path):
    img = Image.open(real_jpegs[0]).convert("RGB")
    blobs = []
    for fmt in ("PNG", "GIF", "BMP"):
        path = tmp_path / f"x.{fmt.lower()}"
        img.save(path, format=fmt)
        blobs.append(path.read_bytes())
    big = tmp_path / "big.png"
    img.resize((100, 60)).save(big)  # non-square, larger: resized in-graph
    blobs.append(big.read_bytes())
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(blobs))
    assert out["probabilities"].shape == (4, 10)


def test_labels_and_metadata_travel_with_the_model(exported_cifar10):
    assert read_labels(exported_cifar10) == CLASS_NAMES
    meta = json.loads((exported_cifar10 / "assets.extra" / "export_metadata.json").read_text())
    assert meta["model_name"] == "cifar10" and meta["version"] == 1
    assert meta["class_names"] == CLASS_NAMES
    assert meta["input_size"] == {"height": 32, "width": 32, "channels": 3}
    assert meta["parameter_count"] == 2_264_458
    assert meta["data"]["source"] == "synthetic" and meta["data"]["train_images"] == 360
    assert meta["training"]["epochs_run"] == 1
    assert meta["tensorflow_version"] == tf.__version__
    assert meta["gate"]["passed"] is True
    assert set(meta["gate"]["checks"]["signature_max_abs_diff"]) == {"serving_default", "predict_pixels", "classify"}
    # What the version costs in TF Serving's session path, measured by the gate (no previous version to compare).
    assert set(meta["serving_cost"]["signatures"]) == {"serving_default", "predict_pixels"}
    assert "baseline" not in meta["serving_cost"] and meta["serving_cost"]["threads"]["cpu_count"] >= 1
    for f in ("metrics.json", "confusion_matrix.json", "confusion_matrix.png", "learning_curve.png"):
        assert (exported_cifar10 / "assets.extra" / "evaluation" / f).stat().st_size > 0
    cm = json.loads((exported_cifar10 / "assets.extra" / "evaluation" / "confusion_matrix.json").read_text())
    assert np.asarray(cm["matrix"]).sum() == meta["metrics"]["test_images"]


def test_warmup_file_parses_as_prediction_logs(exported_cifar10):
    logs = read_warmup_file(exported_cifar10 / "assets.extra" / "tf_serving_warmup_requests")
    assert 0 < len(logs) <= 1000
    kinds = {log.WhichOneof("log_type") for log in logs}
    assert kinds == {"predict_log", "classify_log"}
    predicts = [log.predict_log.request for log in logs if log.HasField("predict_log")]
    assert {r.model_spec.signature_name for r in predicts} == {"serving_default", "predict_pixels"}
    for req in predicts:
        assert req.model_spec.name == "cifar10"
        tensor = tf.make_ndarray(next(iter(req.inputs.values())))
        assert tensor.shape[0] in (1, 2, 4, 8, 16, 32)
    classifies = [log.classify_log.request for log in logs if log.HasField("classify_log")]
    assert {r.model_spec.signature_name for r in classifies} == {"classify"}
    assert sorted(len(r.input.example_list.examples) for r in classifies) == [1, 2, 4, 8, 16, 32]


def test_every_signature_runs_in_tf_servings_graph_mode_loader_as_in_tf2_and_keras(exported_cifar10, real_jpegs):
    import keras

    from export.data.preprocessing import decode_batch
    from tests.export.publish.graph_mode import graph_mode_vs_tf2, signature_inputs

    encoded = [p.read_bytes() for p in real_jpegs[:16]]
    assert graph_mode_vs_tf2(exported_cifar10, encoded, (32, 32)) == {
        "serving_default": 0.0, "predict_pixels": 0.0, "classify": 0.0}
    model = keras.saving.load_model(exported_cifar10 / "assets.extra" / "keras_model.keras")
    reference = model(decode_batch(tf.constant(encoded), (32, 32)), training=False).numpy()
    from serving.lifecycle.servable import Servable

    servable = Servable("cifar10", 1, exported_cifar10)
    inputs = signature_inputs(encoded, (32, 32))
    for key in ("serving_default", "predict_pixels"):
        got = servable.run(servable.signature(key), inputs[key], ("probabilities",))["probabilities"]
        assert np.abs(got - reference).max() <= 1e-6, key


def test_gate_reports_the_infra_validation(exported_cifar10):
    meta = json.loads((exported_cifar10 / "assets.extra" / "export_metadata.json").read_text())
    infra = meta["gate"]["checks"]["infra_validation"]
    assert infra["ok"] and infra["error"] is None and infra["load_seconds"] > 0
    assert infra["warmup"]["records"] == len(read_warmup_file(exported_cifar10 / "assets.extra" /
                                                              "tf_serving_warmup_requests"))
    assert meta["gate"]["checks"]["signature_max_abs_diff"] == {
        "serving_default": 0.0, "predict_pixels": 0.0, "classify": 0.0}


def test_pixels_with_the_wrong_channel_count_are_invalid_argument_inside_the_served_graph(exported_cifar10):
    """Session::Run does not check a fed tensor against the signature's shape, in either server; the signature's
    EnsureShape does, so 4 channels are INVALID_ARGUMENT (400) instead of the fused convolution's UNIMPLEMENTED."""
    from serving.errors import InvalidArgument
    from serving.lifecycle.servable import Servable

    servable = Servable("cifar10", 1, exported_cifar10)
    sig = servable.signature("predict_pixels")
    with pytest.raises(InvalidArgument, match=r"\[2,32,32,4\] is not compatible with expected shape \[\?,32,32,3\]"):
        servable.run(sig, {"pixels": np.zeros((2, 32, 32, 4), np.float32)})
    assert servable.run(sig, {"pixels": np.zeros((2, 32, 32, 3), np.float32)})["probabilities"].shape == (2, 10)


def _png_declaring(width: int, height: int) -> bytes:
    """A real 8×8 PNG whose IHDR claims another size: what a decompression bomb's header looks like."""
    import io
    import struct

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    return bytes(data)


def test_images_declaring_too_many_pixels_are_refused_inside_the_served_graph(exported_cifar10, real_jpegs):
    """The limit lives in the exported signature, so tensorflow_model_server enforces it too."""
    from export.data.preprocessing import MAX_IMAGE_PIXELS
    from serving.errors import InvalidArgument
    from serving.lifecycle.servable import Servable

    servable = Servable("cifar10", 1, exported_cifar10)
    sig = servable.signature("serving_default")
    bomb = np.array([_png_declaring(23000, 23000)], dtype=object)
    with pytest.raises(InvalidArgument, match=f"image too large: it declares more than {MAX_IMAGE_PIXELS} pixels"):
        servable.run(sig, {"image_bytes": bomb})
    fine = np.array([real_jpegs[0].read_bytes()], dtype=object)
    assert servable.run(sig, {"image_bytes": fine})["probabilities"].shape == (1, 10)
    meta = json.loads((exported_cifar10 / "assets.extra" / "export_metadata.json").read_text())
    assert meta["preprocessing"]["max_pixels"] == MAX_IMAGE_PIXELS


def test_declared_pixels_reads_every_supported_header():
    import io

    from export.data.preprocessing import declared_pixels

    for fmt in ("PNG", "GIF", "BMP", "JPEG"):
        buf = io.BytesIO()
        Image.new("RGB", (7, 5)).save(buf, fmt)
        assert int(declared_pixels(tf.constant(buf.getvalue()))) == 35, fmt
    assert int(declared_pixels(tf.constant(_png_declaring(23000, 23000)))) == 23000 * 23000
    assert int(declared_pixels(tf.constant(b"not an image"))) == 0


def test_improved_export_serves_the_views_mean_one_answer_for_an_image_and_its_mirror(tmp_path, real_jpegs):
    from export.data.preprocessing import decode_batch
    from export.exporters.cifar import CifarExportConfig, run
    from serving.lifecycle.servable import Servable
    from tests.export.publish.graph_mode import graph_mode_vs_tf2

    summary = run(CifarExportConfig(data="synthetic", epochs=1, recipe="improved", test_time_flip=True,
                                    model_base_path=tmp_path / "models", cache_dir=tmp_path / "cache"))
    path = tmp_path / "models" / "cifar10" / "1"
    assert summary["published"], summary
    training = json.loads((path / "assets.extra" / "export_metadata.json").read_text())["training"]
    assert training["recipe"] == "improved" and training["test_time_flip"] is True
    assert (training["test_time_shift"], training["test_time_views"]) == (2, 6)  # the recipe's default views
    assert_accuracy_over(training["test_accuracy_flip_only"], summary["metrics"]["test_images"])
    assert (training["conv_dropout"], training["dense_dropout"], training["learning_rate"]) == (0.0, 0.0, 2e-3)
    assert (training["optimizer"], training["weight_decay"], training["random_erasing"],
            training["label_smoothing"]) == ("Adam", 0.0, 0.0, 0.0)
    assert (training["shift_interpolation"], training["shift_fraction"]) == ("nearest", 0.1)  # whole-pixel shifts
    assert_accuracy_over(training["test_accuracy_without_flip"], summary["metrics"]["test_images"])
    encoded = [p.read_bytes() for p in real_jpegs[:8]]
    assert graph_mode_vs_tf2(path, encoded, (32, 32)) == {"serving_default": 0.0, "predict_pixels": 0.0,
                                                           "classify": 0.0}
    pixels = decode_batch(tf.constant(encoded), (32, 32)).numpy()
    servable = Servable("cifar10", 1, path)
    signature = servable.signature("predict_pixels")
    plain = servable.run(signature, {"pixels": pixels}, ("probabilities",))["probabilities"]
    mirrored = servable.run(signature, {"pixels": pixels[:, :, ::-1].copy()}, ("probabilities",))["probabilities"]
    np.testing.assert_allclose(plain, mirrored, atol=1e-6)


@pytest.mark.slow
def test_vertical_test_time_views_are_served_as_ten_views(tmp_path, real_jpegs):
    """`--test-time-vertical` exports the 10-view mean (±2 px left/right/up/down and the image, each mirrored):
    what the server answers is the Keras classifier averaged over those views."""
    from export.data.preprocessing import decode_batch
    from export.exporters.cifar import CifarExportConfig, run
    from export.models.inference_views import with_test_time_views, without_test_time_views
    from export.models.transfer_model import load_project_model
    from serving.lifecycle.servable import Servable
    from tests.export.publish.graph_mode import graph_mode_vs_tf2

    summary = run(CifarExportConfig(data="synthetic", epochs=1, recipe="improved", test_time_vertical=True,
                                    precision="float32", model_base_path=tmp_path / "models",
                                    cache_dir=tmp_path / "cache"))
    path = tmp_path / "models" / "cifar10" / "1"
    assert summary["published"], summary
    training = json.loads((path / "assets.extra" / "export_metadata.json").read_text())["training"]
    assert (training["test_time_shift"], training["test_time_vertical"], training["test_time_views"]) == (2, True, 10)
    encoded = [p.read_bytes() for p in real_jpegs[:8]]
    assert max(graph_mode_vs_tf2(path, encoded, (32, 32)).values()) <= 1e-6
    pixels = decode_batch(tf.constant(encoded), (32, 32)).numpy()
    servable = Servable("cifar10", 1, path)
    served = servable.run(servable.signature("predict_pixels"), {"pixels": pixels}, ("probabilities",))
    classifier = without_test_time_views(load_project_model(path, flag="--model"))
    expected = with_test_time_views(classifier, flip=True, shift=2, vertical=True).predict(pixels, verbose=0)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
