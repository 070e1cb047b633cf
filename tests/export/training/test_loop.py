import numpy as np
import pytest

from export.data import cifar10_data
from export.training.loop import input_pipeline
from tests.conftest import assert_accuracy_over


def test_pipeline_batches_mix_classes_even_when_data_is_sorted_by_class():
    data = cifar10_data.synthetic(per_class_train=200).train  # 2,000 images, sorted by class
    assert np.all(np.diff(data.labels) >= 0)
    images, labels = next(iter(input_pipeline(data, batch_size=64, shuffle=True, seed=0)))
    assert images.dtype.name == "float32" and images.shape == (64, 32, 32, 3)
    assert float(images.numpy().max()) > 1.0  # 0..255: scaling is the model's job
    counts = np.bincount(labels.numpy(), minlength=10)
    assert (counts > 0).sum() == 10 and counts.max() < 20


def test_pipeline_without_shuffle_keeps_order_and_covers_everything():
    data = cifar10_data.synthetic(per_class_train=5).train
    labels = np.concatenate([lab.numpy() for _, lab in input_pipeline(data, 16, shuffle=False, seed=0)])
    assert np.array_equal(labels, data.labels)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_random_jpeg_re_encodes_that_share_of_the_images_and_keeps_labels_and_order(fraction):
    data = cifar10_data.synthetic(per_class_train=40).train  # 400 images
    batches = list(input_pipeline(data, 100, shuffle=False, seed=3, random_jpeg=fraction))
    images = np.concatenate([img.numpy() for img, _ in batches])
    labels = np.concatenate([lab.numpy() for _, lab in batches])
    assert np.array_equal(labels, data.labels) and images.shape == data.images.shape
    changed = np.abs(images - data.images).reshape(len(data), -1).max(axis=1) > 0
    assert changed.mean() == pytest.approx(fraction, abs=0.1)
    if fraction:  # a JPEG round trip, not noise: the changed images stay close to their originals
        assert np.abs(images - data.images)[changed].mean() < 40


def test_random_jpeg_min_quality_sets_how_lossy_the_round_trips_get():
    data = cifar10_data.synthetic(per_class_train=20).train

    def mean_error(min_quality: int) -> float:
        ds = input_pipeline(data, 100, shuffle=False, seed=3, random_jpeg=1.0, random_jpeg_min_quality=min_quality)
        return float(np.abs(np.concatenate([img.numpy() for img, _ in ds]) - data.images).mean())

    near_lossless, default, heavy = mean_error(94), mean_error(50), mean_error(5)
    assert near_lossless < default < heavy


def test_random_jpeg_draws_anew_every_epoch():
    data = cifar10_data.synthetic(per_class_train=10).train
    ds = input_pipeline(data, 100, shuffle=False, seed=3, random_jpeg=0.5)
    first, second = (np.concatenate([img.numpy() for img, _ in ds]) for _ in range(2))
    assert not np.array_equal(first, second)


@pytest.mark.slow
def test_logdir_writes_tensorboard_events_with_loss_and_accuracy_per_epoch(tmp_path):
    """`--logdir` used to crash (TensorBoard was not installed); the events are read back with TensorBoard's reader."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from export.exporters.cifar import CifarExportConfig, run

    summary = run(CifarExportConfig(data="synthetic", epochs=2, model_base_path=tmp_path / "models",
                                    cache_dir=tmp_path / "cache", logdir=tmp_path / "runs"))
    assert summary["published"]
    for split in ("train", "validation"):
        events = EventAccumulator(str(tmp_path / "runs" / split))
        events.Reload()
        for tag in ("epoch_loss", "epoch_accuracy"):
            values = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}
            assert sorted(values) == [0, 1], (split, tag)
            assert all(v >= 0 for v in values.values())


def test_progress_is_logged_every_n_steps_when_output_is_not_a_terminal(caplog):
    """CI, nohup and Kubernetes Jobs see step, images/s, loss, accuracy and ETA while an epoch runs."""
    import logging

    from export.models.cifar10_model import build_model
    from export.training.loop import TrainSettings, fit

    data = cifar10_data.synthetic(per_class_train=16, per_class_test=2)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with caplog.at_level(logging.INFO, logger="export.training.loop"):
        history = fit(model, data.train, data.test, TrainSettings(epochs=2, batch_size=16, seed=0, log_every_steps=4))
    lines = [r.getMessage() for r in caplog.records if r.name == "export.training.loop"]
    assert len(history["loss"]) == 2 and history.restored_epoch is None  # no early stopping asked for
    assert len(lines) == 4, lines  # 10 steps per epoch: steps 4 and 8 of each epoch
    assert lines[0].startswith("epoch 1/2 step 4/10: ") and lines[-1].startswith("epoch 2/2 step 8/10: ")
    for line in lines:
        assert " images/s, loss " in line and ", accuracy " in line and ", ETA " in line


def test_a_resumed_fit_reports_every_epoch_and_its_time(tmp_path, monkeypatch):
    """Interrupted after epoch 2 of 3 and resumed, the fit returns all three epochs (metrics and `epoch_seconds`)
    — the metadata's learning curve and training time used to cover only the resumed run's epochs."""
    import json

    from export.models.cifar10_model import build_model
    from export.training.loop import ProgressLog, TrainSettings, fit

    class Interrupted(Exception):
        pass

    def stop_after_second_epoch(self, epoch, logs=None):  # runs after the epoch's checkpoint was written
        if epoch == 1:
            raise Interrupted

    data = cifar10_data.synthetic(per_class_train=8, per_class_test=2)
    settings = TrainSettings(epochs=3, batch_size=16, seed=0, checkpoint_dir=tmp_path / "ckpt", log_every_steps=4)

    def compiled():
        model = build_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    monkeypatch.setattr(ProgressLog, "on_epoch_end", stop_after_second_epoch, raising=False)
    with pytest.raises(Interrupted):
        fit(compiled(), data.train, data.test, settings)
    saved = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    assert len(saved["loss"]) == 2 and len(saved["epoch_seconds"]) == 2
    monkeypatch.undo()

    from dataclasses import replace

    history = fit(compiled(), data.train, data.test, replace(settings, resume=True))
    assert {k: len(v) for k, v in history.items()} == {k: 3 for k in history}
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"} <= set(history)
    assert history["loss"][:2] == saved["loss"] and all(s > 0 for s in history["epoch_seconds"])
    assert not (tmp_path / "ckpt").exists()  # a completed fit removes its checkpoint


def test_test_each_epoch_records_every_epochs_test_accuracy_and_the_last_is_the_final_weights(caplog):
    """The reference project watched its test set after every epoch; `--test-each-epoch` records that curve (and
    logs it), and the last epoch's figure is the one the export's own evaluation of the final weights gives:
    the callback observes, it restores or picks nothing."""
    import logging

    from export.models.cifar10_model import build_model
    from export.training.evaluation import evaluate
    from export.training.loop import TrainSettings, fit

    data = cifar10_data.synthetic(per_class_train=16, per_class_test=4)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with caplog.at_level(logging.INFO, logger="export.training.loop"):
        no_validation = data.train.subset(np.array([], dtype=int))  # as with --val-split 0
        history = fit(model, data.train, no_validation, TrainSettings(epochs=3, batch_size=16, seed=0,
                                                                      log_every_steps=0), test_each_epoch=data.test)
    assert len(history["test_accuracy"]) == len(history["test_loss"]) == len(history["loss"]) == 3
    assert "val_accuracy" not in history
    for a in history["test_accuracy"]:
        assert_accuracy_over(a, len(data.test))
    assert all(v > 0 for v in history["test_loss"])
    assert history["test_accuracy"][-1] == pytest.approx(evaluate(model, data.test)["test_accuracy"], abs=1e-6)
    lines = [r.getMessage() for r in caplog.records if r.name == "export.training.loop"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2", "epoch 3"]
    assert lines[-1] == (f"epoch 3: test accuracy {history['test_accuracy'][-1]:.4f}, "
                         f"test loss {history['test_loss'][-1]:.4f}")


def test_early_stopping_keeps_the_lowest_val_loss_epochs_weights_and_reports_that_epoch(caplog):
    """`--early-stopping` restores the best epoch's weights (Keras does so at the end of the fit, stopped early or
    not): `restored_epoch` names it, and the model then scores that epoch's val_loss, not the last epoch's."""
    import logging

    import keras

    from export.data.image_data import LabeledImages
    from export.training.loop import TrainSettings, fit

    rng = np.random.default_rng(0)

    def noise(n: int) -> LabeledImages:  # random labels: the model memorises them, the validation loss climbs
        return LabeledImages(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, n), list("abcd"))

    train, val = noise(64), noise(32)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    with caplog.at_level(logging.INFO, logger="export.training.loop"):
        history = fit(model, train, val, TrainSettings(epochs=12, batch_size=16, seed=0, early_stopping=20,
                                                       log_every_steps=0))
    val_loss = history["val_loss"]
    assert len(val_loss) == 12 and history.restored_epoch == int(np.nanargmin(val_loss)) + 1
    assert history.restored_epoch < 12  # not the last epoch: the kept weights are an earlier epoch's
    kept = model.evaluate(input_pipeline(val, 16, shuffle=False, seed=0), verbose=0)
    assert kept == pytest.approx(val_loss[history.restored_epoch - 1], rel=1e-4)
    assert (f"early stopping: 12 of 12 epochs ran; the weights of epoch {history.restored_epoch} (lowest val_loss "
            f"{np.nanmin(val_loss):.4f}) kept") in [r.getMessage() for r in caplog.records]


def test_early_stopping_without_validation_images_is_off_with_a_warning(caplog):
    import logging

    from export.models.cifar10_model import build_model
    from export.training.loop import TrainSettings, fit

    data = cifar10_data.synthetic(per_class_train=4, per_class_test=1)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    no_validation = data.train.subset(np.array([], dtype=int))  # as with --val-split 0
    with caplog.at_level(logging.WARNING, logger="export.training.loop"):
        history = fit(model, data.train, no_validation, TrainSettings(epochs=1, batch_size=16, seed=0,
                                                                      early_stopping=3, log_every_steps=0))
    assert history.restored_epoch is None and len(history["loss"]) == 1
    assert ("early stopping (patience 3) is off: there are no validation images to watch (--val-split)"
            in [r.getMessage() for r in caplog.records])
