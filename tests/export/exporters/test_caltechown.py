"""Caltechown: class order, own classes, image modes, corrupt files, splits, the exported contract."""

import json
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from export.data import caltechown_data as cd
from export.data.image_data import DataError, stratified_split
from export.exporters.caltechown import CaltechownConfig, balanced_class_weights, run
from export.exporters.imagenet import imagenet_class_names
from tests.conftest import assert_accuracy_over, shared_file


@pytest.fixture(scope="module")
def caltech_sample(tmp_path_factory):
    target = tmp_path_factory.mktemp("caltech-sample")
    with tarfile.open(shared_file("caltech101-sample-jpg.tar.gz")) as tar:
        tar.extractall(target, filter="data")
    return target / "caltech101-sample"


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory):
    """An own class made from the espresso-cup photo in several modes (RGB, greyscale, CMYK, RGBA, palette)."""
    d = tmp_path_factory.mktemp("own") / "espresso_cup"
    d.mkdir()
    img = Image.open(shared_file("samples/espresso_cup.jpg"))
    img.save(d / "rgb.jpg")
    img.convert("L").save(d / "grey.jpg")
    img.convert("CMYK").save(d / "cmyk.jpg")
    img.convert("RGBA").save(d / "alpha.png")
    img.convert("P").save(d / "palette.png")
    img.rotate(10).save(d / "rotated.jpg")
    (d / "notes.txt").write_text("not an image: ignored")
    return d


def test_class_order_is_case_insensitive_with_own_classes_last(caltech_sample, own_dir, tmp_path):
    data = cd.load(caltech_sample, [own_dir], (32, 32), tmp_path)
    names = data.images.class_names
    assert names[:5] == ["accordion", "airplanes", "anchor", "ant", "BACKGROUND_Google"]
    assert names[101] == "yin_yang" and names[102] == "espresso_cup" and len(names) == 103
    assert data.images.class_counts()["espresso_cup"] == 6  # every mode decoded, the .txt ignored
    assert data.images.images.shape[1:] == (32, 32, 3) and data.images.images.dtype == np.uint8


def test_tarball_and_corrupt_files(caltech_sample, tmp_path):
    root = tmp_path / "mini"
    for cls in ("accordion", "Faces", "yin_yang"):
        shutil.copytree(caltech_sample / cls, root / "caltech101" / cls)
    (root / "caltech101" / "Faces" / "broken.jpg").write_bytes(b"\xff\xd8\xffgarbage")
    tarball = tmp_path / "mini.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root / "caltech101", arcname="caltech101")
    data = cd.load(tarball, [], (32, 32), tmp_path / "cache")
    assert data.images.class_names == ["accordion", "Faces", "yin_yang"]
    assert [p.rsplit("/", 1)[1] for p in data.images.skipped] == ["broken.jpg"]
    with pytest.raises(DataError, match="broken.jpg"):
        cd.load(tarball, [], (32, 32), tmp_path / "cache", strict=True)


def test_own_class_name_clash_and_missing(caltech_sample, tmp_path):
    clash = tmp_path / "accordion"
    clash.mkdir()
    shutil.copy(shared_file("samples/espresso_cup.jpg"), clash / "a.jpg")
    with pytest.raises(DataError, match="collide"):
        cd.load(caltech_sample, [clash], (32, 32), tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        cd.load(caltech_sample, [tmp_path / "nope"], (32, 32), tmp_path)


def test_split_keeps_every_class_in_training_and_reports_small_ones(caltech_sample, own_dir, tmp_path):
    tiny = tmp_path / "tiny_own"
    tiny.mkdir()
    shutil.copy(own_dir / "rgb.jpg", tiny / "only.jpg")
    data = cd.load(caltech_sample, [own_dir, tiny], (32, 32), tmp_path)
    assert data.small_classes == {"tiny_own": 1}
    rest, test = stratified_split(data.images, 0.2, seed=1)
    train, val = stratified_split(rest, 0.1, seed=2)
    assert set(np.unique(train.labels)) == set(range(len(data.images.class_names)))
    weights = balanced_class_weights(train)
    assert weights[data.images.class_names.index("tiny_own")] > weights[0]


@pytest.mark.slow
def test_caltechown_export_contract(caltech_sample, own_dir, tmp_path):
    summary = run(CaltechownConfig(data=caltech_sample, own=(own_dir,), backbone="mobilenetv2", weights="none",
                                   input_size=32, epochs=1, fine_tune_epochs=1, fine_tune_layers=5, test_time_flip=True,
                                   early_stopping=3, model_base_path=tmp_path / "models", cache_dir=tmp_path / "cache"))
    assert summary["published"] and summary["version"] == 1
    path = tmp_path / "models" / "caltechown" / "1"
    meta = json.loads((path / "assets.extra" / "export_metadata.json").read_text())
    assert meta["num_classes"] == 103 and meta["class_names"][102] == "espresso_cup"
    assert meta["data"]["own_classes"] == ["espresso_cup"] and meta["training"]["fine_tune_epochs"] == 1
    assert meta["training"]["test_time_flip"]
    assert_accuracy_over(meta["training"]["test_accuracy_without_flip"], meta["data"]["test_images"])
    # each phase's epochs run and the epoch whose weights early stopping kept (none: this small sample leaves no
    # validation images, so early stopping is off, with a warning); the fit's time and throughput
    training = meta["training"]
    assert meta["data"]["validation_images"] == 0
    assert (training["epochs_run"], training["restored_epoch"]) == (1, None)
    assert (training["fine_tune_epochs_run"], training["fine_tune_restored_epoch"]) == (1, None)
    assert training["fit_seconds"] == pytest.approx(sum(meta["history"]["epoch_seconds"]), abs=0.1)
    # images/s times the fit's seconds gives back every image of every epoch of both phases
    seen = (training["epochs_run"] + training["fine_tune_epochs_run"]) * meta["data"]["train_images"]
    assert training["images_per_second"] * training["fit_seconds"] == pytest.approx(seen, rel=0.01)
    own = meta["metrics"]["own_class_accuracy"]
    assert set(own) == {"espresso_cup"} and own["espresso_cup"] == meta["metrics"]["per_class_accuracy"]["espresso_cup"]
    assert (path / "assets" / "labels.txt").read_text().splitlines() == meta["class_names"]
    sigs = tf.saved_model.load(str(path)).signatures
    files = [own_dir / "rgb.jpg", own_dir / "cmyk.jpg", own_dir / "alpha.png", own_dir / "grey.jpg"]
    by_bytes = sigs["serving_default"](image_bytes=tf.constant([f.read_bytes() for f in files]))
    from clients.preprocess import prepare

    pixels = np.stack([prepare(f.read_bytes(), f.name, (32, 32)).pixels for f in files])
    by_pixels = sigs["predict_pixels"](pixels=tf.constant(pixels))
    assert by_bytes["probabilities"].shape == (4, 103)
    assert np.abs(by_bytes["probabilities"].numpy() - by_pixels["probabilities"].numpy()).max() < 0.05
    # The export keeps its Keras model, so it can serve as a --backbone-from source.
    assert (path / "assets.extra" / "keras_model.keras").is_file()
    # Every signature runs in TF Serving's graph-mode loader, with TF2's outputs.
    from tests.export.publish.graph_mode import graph_mode_vs_tf2

    deltas = graph_mode_vs_tf2(path, [f.read_bytes() for f in files], (32, 32))
    assert all(d <= 1e-6 for d in deltas.values()), deltas
    assert summary["infra_validation"]["ok"]


@pytest.mark.slow
def test_backbone_from_a_cifar10_export(exported_cifar10, caltech_sample, tmp_path):
    summary = run(CaltechownConfig(data=caltech_sample, backbone_from=exported_cifar10, input_size=48, epochs=1,
                                   model_base_path=tmp_path / "models", cache_dir=tmp_path / "cache"))
    assert summary["published"]
    from tests.export.publish.graph_mode import graph_mode_vs_tf2

    images = [p.read_bytes() for p in sorted((caltech_sample / "accordion").glob("*.jpg"))[:3]]
    deltas = graph_mode_vs_tf2(tmp_path / "models/caltechown/1", images, (48, 48))
    assert all(d <= 1e-6 for d in deltas.values()), deltas
    meta = json.loads((tmp_path / "models/caltechown/1/assets.extra/export_metadata.json").read_text())
    assert meta["training"]["backbone"].startswith("project:")
    assert meta["input_size"]["height"] == 48


def test_imagenet_class_names_ship_with_the_dependencies():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench"
    assert (names[968], names[505], names[504]) == ("cup", "coffeepot", "coffee_mug")


def test_imagenet_weights_offline_is_a_clear_error(monkeypatch):
    import keras

    from export.models.transfer_model import BACKBONES, keras_backbone

    def offline(**kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(DataError, match="needs network access: offline, use --weights PATH"):
        keras_backbone(BACKBONES["resnet50"], 224, "imagenet")


@pytest.mark.slow
def test_imagenet_export_structure_without_weights(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "export", "imagenet", "--backbone", "mobilenetv2", "--weights", "none",
                          "--model-base-path", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["gate"]["checks"]["accuracy_checks"].startswith("skipped")
    path = tmp_path / "imagenet" / "1"
    assert (path / "assets" / "labels.txt").read_text().splitlines()[968] == "cup"
    sig = tf.saved_model.load(str(path)).signatures["serving_default"]
    cup = shared_file("samples/espresso_cup.jpg").read_bytes()
    out = sig(image_bytes=tf.constant([cup]))
    assert out["probabilities"].shape == (1, 1000) and out["class_names"].shape == (1, 5)
    from tests.export.publish.graph_mode import graph_mode_vs_tf2

    deltas = graph_mode_vs_tf2(path, [cup, shared_file("samples/caltech101_airplane.jpg").read_bytes()], (224, 224))
    assert all(d <= 1e-5 for d in deltas.values()), deltas
    assert summary["infra_validation"]["ok"] and summary["gate"]["passed"]


@pytest.mark.parametrize(("size", "grid", "flip"), [(48, 12, False), (64, 8, False), (96, 12, True)])
def test_cifar_conv_base_copies_the_weights_and_pools_early_from_64_px(size, grid, flip):
    from export.models.cifar10_model import build_model
    from export.models.inference_views import with_test_time_flip
    from export.models.transfer_model import cifar_conv_base, project_head

    source = build_model()
    base = cifar_conv_base(with_test_time_flip(source) if flip else source, size)  # a flipped export unwraps
    assert base.output_shape == (None, grid, grid, 128)  # 64 px and up: one more 2x2 pool after conv1
    for name in ("conv1", "conv4", "bn_conv2"):
        for got, want in zip(base.get_layer(name).get_weights(), source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    pooled = project_head(base.output)
    assert tuple(pooled.shape) == (None, 256)


def test_learning_rate_schedule_is_constant_or_cosine_to_zero_over_the_phase():
    from export.exporters.caltechown import learning_rate

    assert learning_rate(1e-3, "constant", 5, 100) == 1e-3
    cosine = learning_rate(1e-3, "cosine", 5, 100)
    assert float(cosine(0)) == pytest.approx(1e-3)
    assert float(cosine(250)) == pytest.approx(5e-4, rel=1e-3)
    assert float(cosine(500)) == pytest.approx(0.0, abs=1e-9)


def test_backbone_from_a_model_directory_takes_its_newest_version(tmp_path):
    from export.models.transfer_model import resolve_project_model

    for version in ("1", "3", "2"):
        extra = tmp_path / "cifar10" / version / "assets.extra"
        extra.mkdir(parents=True)
        (extra / "keras_model.keras").write_bytes(b"")
    newest = tmp_path / "cifar10" / "3" / "assets.extra" / "keras_model.keras"
    assert resolve_project_model(tmp_path / "cifar10") == newest
    assert resolve_project_model(tmp_path / "cifar10" / "3") == newest
    assert resolve_project_model(newest) == newest


def test_backbone_from_a_directory_without_a_keras_model_names_it(tmp_path):
    from export.data.image_data import DataError
    from export.models.transfer_model import resolve_project_model

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no .keras model"):
        resolve_project_model(tmp_path / "empty")


def test_own_classes_are_summarised_apart_from_the_caltech_classes():
    from export.exporters.caltechown import with_class_summaries

    metrics = {"test_accuracy": 0.9, "per_class_accuracy": {"accordion": 1.0, "airplanes": 0.5, "clock": None,
                                                            "espresso_cup": 0.25, "church_window": 0.75}}
    out = with_class_summaries(metrics, ["espresso_cup", "church_window", "clock"])
    assert out["own_class_accuracy"] == {"espresso_cup": 0.25, "church_window": 0.75, "clock": None}
    assert out["own_class_mean_accuracy"] == 0.5
    assert with_class_summaries(metrics, [])["own_class_mean_accuracy"] is None


def test_backbone_from_a_label_smoothed_flip_export_loads_in_a_fresh_process(tmp_path):
    """A CNN compiled with the smoothed loss and wrapped for the test-time flip, as `--recipe improved
    --label-smoothing 0.1` exports it, must load as a backbone in a process that never imported the recipe."""
    import subprocess
    import sys

    from export.models.cifar10_model import build_model
    from export.models.cifar10_recipe import SmoothedSparseCrossentropy
    from export.models.inference_views import with_test_time_flip

    cnn = build_model()
    cnn.compile(optimizer="adam", loss=SmoothedSparseCrossentropy(10, 0.1))
    path = tmp_path / "m.keras"
    with_test_time_flip(cnn).save(path)
    script = ("from pathlib import Path; import sys; from export.models.transfer_model import load_project_model; "
              "print(load_project_model(Path(sys.argv[1])).count_params())")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(cnn.count_params())


def test_transfer_classifier_trains_in_bf16_and_its_float32_copy_holds_the_trained_weights(tmp_path):
    """Under mixed_bfloat16 the rebuilt project base, the new head and the augmentation layers compute in bfloat16
    (one training step runs through all of them), the softmax stays float32, and `as_float32` gives the float32
    classifier with the same weights."""
    import functools

    import keras

    from export.models.cifar10_model import build_model
    from export.models.transfer_model import build_classifier
    from export.training.precision import as_float32, training_precision

    source = tmp_path / "cifar10.keras"
    build_model().save(source)
    build = functools.partial(build_classifier, 5, 48, "mobilenetv2", "none", True, 0, source)
    with training_precision("mixed_bfloat16"):
        mixed, base = build()
        mixed.compile("adam", "sparse_categorical_crossentropy")
        pixels = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 3)).astype("float32")
        mixed.fit(pixels, np.arange(8) % 5, epochs=1, batch_size=8, verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert base.get_layer("conv1").compute_dtype == "bfloat16"
    assert mixed.get_layer("head_conv1").compute_dtype == "bfloat16"
    assert mixed.get_layer("probabilities").compute_dtype == "float32"
    copy = as_float32(mixed, lambda: build()[0])
    assert copy.get_layer("head_conv1").compute_dtype == "float32"
    for a, b in zip(mixed.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(mixed.predict(pixels, verbose=0), copy.predict(pixels, verbose=0), atol=0.03)


@pytest.mark.slow
def test_mixed_bfloat16_caltechown_export_publishes_a_float32_savedmodel(exported_cifar10, caltech_sample, tmp_path):
    summary = run(CaltechownConfig(data=caltech_sample, backbone_from=exported_cifar10, input_size=48, epochs=1,
                                   fine_tune_epochs=1, augment=True, test_time_flip=True, precision="mixed_bfloat16",
                                   model_base_path=tmp_path / "models", cache_dir=tmp_path / "cache"))
    assert summary["published"], summary
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"
    path = tmp_path / "models" / "caltechown" / "1"
    meta = json.loads((path / "assets.extra" / "export_metadata.json").read_text())
    assert meta["training"]["precision"] == "mixed_bfloat16" and meta["training"]["fine_tune_epochs"] == 1
    from tests.export.publish.graph_mode import bfloat16_nodes, graph_mode_vs_tf2

    nodes, typed = bfloat16_nodes(path)
    assert nodes and typed == []
    images = [p.read_bytes() for p in sorted((caltech_sample / "accordion").glob("*.jpg"))[:3]]
    deltas = graph_mode_vs_tf2(path, images, (48, 48))
    assert all(d <= 1e-6 for d in deltas.values()), deltas
