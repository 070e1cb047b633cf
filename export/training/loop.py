"""Training loop shared by the image models: tf.data input, callbacks, resume, learning-curve history."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from export.data.image_data import LabeledImages
from export.recipes import RANDOM_JPEG_MAX_QUALITY, RANDOM_JPEG_MIN_QUALITY

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """How to fit a compiled model."""

    epochs: int
    batch_size: int
    seed: int
    logdir: Path | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    early_stopping: int | None = None
    class_weight: dict[int, float] | None = None
    log_every_steps: int = 100  # progress lines when output is not a terminal (0: none)
    random_jpeg: float = 0.0  # fraction of training images JPEG re-encoded at a random quality each epoch
    random_jpeg_min_quality: int = RANDOM_JPEG_MIN_QUALITY  # ... drawn from this to RANDOM_JPEG_MAX_QUALITY
    # Multi-worker training (export.training.distribution): this task's name ("worker:1"), and whether it is the
    # chief, which alone writes TensorBoard logs, the history and the shared checkpoint directory.
    task: str | None = None
    chief: bool = True

    @property
    def backup_dir(self) -> Path | None:
        """Where this task's epoch checkpoints go: the checkpoint directory for the chief, a sibling of it for
        every other worker (their checkpoints are identical: one writer per directory)."""
        if self.checkpoint_dir is None or self.chief:
            return self.checkpoint_dir
        return self.checkpoint_dir.with_name(f"{self.checkpoint_dir.name}.{self.task.replace(':', '-')}")


class FitHistory(dict):
    """The history per epoch (metric → list of values, as Keras's History has it, across resumed runs), plus which
    epoch's weights the model holds when early stopping restored its best (lowest val_loss) epoch."""

    restored_epoch: int | None = None  # 1-based; None without early stopping


def fit_figures(history: dict[str, list[float]], train_images: int, fallback_seconds: float = 0.0) -> dict:
    """The metadata's `epochs_run`, `fit_seconds` (the epochs' recorded wall time, across the runs of a resumed
    fit; `fallback_seconds` when none was recorded) and `images_per_second` of a fit's history."""
    epochs_run = len(history.get("loss", []))
    seconds = sum(history.get("epoch_seconds", [])) or fallback_seconds
    return {"epochs_run": epochs_run, "fit_seconds": round(seconds, 1),
            "images_per_second": round(train_images * epochs_run / seconds, 1) if seconds else None}


class ProgressLog(keras.callbacks.Callback):
    """Logs step, images/s, running loss and accuracy and the ETA of the whole fit every `every` steps — for output
    that is not a terminal (CI, nohup, Kubernetes Jobs), where Keras's progress bar prints nothing until the epoch
    ends."""

    def __init__(self, every: int, batch_size: int):
        super().__init__()
        self.every, self.batch_size = every, batch_size

    def on_train_begin(self, logs=None):
        self._started = time.monotonic()
        self._steps_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done += 1
        if (batch + 1) % self.every:
            return
        elapsed = time.monotonic() - self._started
        steps, epochs = self.params.get("steps"), self.params.get("epochs", 1)
        rate = self._steps_done / elapsed if elapsed > 0 else 0.0
        eta = ""
        if steps and rate:
            remaining = steps * epochs - (self._epoch * steps + batch + 1)
            eta = f", ETA {_duration(remaining / rate)}"
        logs = logs or {}
        logger.info("epoch %d/%d step %d/%s: %.0f images/s, loss %.4f, accuracy %.4f%s", self._epoch + 1, epochs,
                    batch + 1, steps or "?", rate * self.batch_size, logs.get("loss", float("nan")),
                    logs.get("accuracy", float("nan")), eta)


class EpochRecord(keras.callbacks.Callback):
    """Keeps every finished epoch's metrics and wall time (`epoch_seconds`) in `history.json` beside the resume
    checkpoint, so a resumed fit reports the whole learning curve and training time, not only its own epochs.
    Placed before BackupAndRestore: an epoch is recorded here no later than it is checkpointed."""

    FILE = "history.json"

    def __init__(self, directory: Path | None, earlier: dict[str, list[float]]):
        super().__init__()
        self.path = directory / self.FILE if directory else None
        self.history = {k: list(v) for k, v in earlier.items()}

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        row = {**{k: float(v) for k, v in (logs or {}).items()}, "epoch_seconds": time.monotonic() - self._started}
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.history))
        os.replace(partial, self.path)


class EpochTestEvaluation(keras.callbacks.Callback):
    """Evaluates held-out test images after every epoch and adds `test_loss` and `test_accuracy` to the epoch's logs
    (so `history.json`, TensorBoard and the learning curve carry them), as a fit with the test set as its
    validation data would. It only observes: nothing stops early or picks weights on these figures. Placed before
    the callbacks that record the logs."""

    def __init__(self, test: tf.data.Dataset):
        super().__init__()
        self.test = test

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        result = self.model.evaluate(self.test, verbose=0, return_dict=True)
        logs["test_loss"], logs["test_accuracy"] = float(result["loss"]), float(result["accuracy"])
        logger.info("epoch %d: test accuracy %.4f, test loss %.4f", epoch + 1, logs["test_accuracy"],
                    logs["test_loss"])


def restored_history(checkpoint_dir: Path) -> dict[str, list[float]]:
    """The epochs a resumed fit starts after: `history.json` cut to the epoch count of Keras's own backup
    metadata (the checkpoint the weights come from); empty when there is nothing to resume."""
    try:
        done = int(json.loads((checkpoint_dir / "training_metadata.json").read_text())["epoch"])
        saved = json.loads((checkpoint_dir / EpochRecord.FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {k: [float(x) for x in v[:done]] for k, v in saved.items() if isinstance(v, list)}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def input_pipeline(data: LabeledImages, batch_size: int, shuffle: bool, seed: int,
                   random_jpeg: float = 0.0, random_jpeg_min_quality: int = RANDOM_JPEG_MIN_QUALITY
                   ) -> tf.data.Dataset:
    """uint8 images cached, shuffled over the whole set, batched, cast to float32 0..255, prefetched.

    With `random_jpeg` > 0, that fraction of the images (drawn anew every epoch) goes through one JPEG round trip
    at a random quality from `random_jpeg_min_quality` to `RANDOM_JPEG_MAX_QUALITY` before batching: the model
    then sees more than the one encoder's artifacts its data set was stored with.

    Under a multi-worker strategy every worker builds this same pipeline (same seed, hence the same order) and
    keeps every N-th batch of it (tf.data's DATA sharding): the workers' batches never overlap.

    The shuffle buffer holds every image (uint8, 150 MB for CIFAR-10): loaders return images grouped by class,
    and a smaller buffer would fill batches with one or two classes and skew the batch-norm statistics.
    """
    ds = data.dataset().cache()
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    if random_jpeg > 0:
        ds = ds.map(jpeg_round_trip(random_jpeg, seed, random_jpeg_min_quality), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).map(
        lambda img, label: (tf.cast(img, tf.float32), label), num_parallel_calls=tf.data.AUTOTUNE
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def jpeg_round_trip(fraction: float, seed: int, min_quality: int = RANDOM_JPEG_MIN_QUALITY):
    """A tf.data map function: with probability `fraction`, the uint8 image re-encoded as JPEG at a quality drawn
    uniformly from `min_quality` to `RANDOM_JPEG_MAX_QUALITY` and decoded again; the label passes through."""
    low, high = min_quality, RANDOM_JPEG_MAX_QUALITY

    def apply(image: tf.Tensor, label: tf.Tensor):
        chosen = tf.random.uniform([], seed=seed) < fraction
        image = tf.cond(chosen, lambda: tf.image.random_jpeg_quality(image, low, high + 1, seed=seed + 1),
                        lambda: image)
        return image, label

    return apply


def fit(model: keras.Model, train: LabeledImages, val: LabeledImages, settings: TrainSettings,
        test_each_epoch: LabeledImages | None = None) -> dict:
    """Fit with TensorBoard, resumable backups and optional early stopping; returns the history per epoch (every
    metric plus `epoch_seconds`), including the epochs of earlier runs when resumed, and the epoch whose weights
    early stopping kept (`FitHistory.restored_epoch`). With `test_each_epoch`, those images are evaluated after
    every epoch (`EpochTestEvaluation`: recorded, never used to stop or choose weights)."""
    keras.utils.set_random_seed(settings.seed)
    callbacks: list[keras.callbacks.Callback] = []
    if test_each_epoch is not None and len(test_each_epoch):
        test = input_pipeline(test_each_epoch, settings.batch_size, shuffle=False, seed=settings.seed)
        callbacks.append(EpochTestEvaluation(test))
    if settings.logdir and settings.chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(settings.logdir), histogram_freq=0))
    earlier: dict[str, list[float]] = {}
    backup = settings.backup_dir
    # A worker of a multi-worker run always resumes: a restarted worker (or Job pod) must continue where the
    # cluster's last epoch checkpoint left off, or the workers would disagree on the epoch they are in.
    resume = settings.resume or settings.task is not None
    if backup:
        if not resume and backup.exists():
            shutil.rmtree(backup)
        elif resume and backup.exists():
            earlier = restored_history(settings.checkpoint_dir)
            logger.info("resuming from checkpoint in %s after epoch %d", backup, len(earlier.get("loss", [])))
    record = EpochRecord(settings.checkpoint_dir if settings.chief else None, earlier)
    callbacks.append(record)
    if backup:
        # Saves model + optimizer + epoch every epoch; deleted (with history.json) after a completed fit.
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=True))
    stopper = None
    if settings.early_stopping and len(val):
        stopper = keras.callbacks.EarlyStopping(patience=settings.early_stopping, restore_best_weights=True)
        callbacks.append(stopper)
    elif settings.early_stopping:
        logger.warning("early stopping (patience %d) is off: there are no validation images to watch (--val-split)",
                       settings.early_stopping)
    on_terminal = sys.stderr.isatty()
    if settings.log_every_steps > 0 and not on_terminal:
        callbacks.append(ProgressLog(settings.log_every_steps, settings.batch_size))
    train_ds = input_pipeline(train, settings.batch_size, shuffle=True, seed=settings.seed,
                              random_jpeg=settings.random_jpeg,
                              random_jpeg_min_quality=settings.random_jpeg_min_quality)
    val_ds = input_pipeline(val, settings.batch_size, shuffle=False, seed=settings.seed) if len(val) else None
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=settings.epochs,
        callbacks=callbacks,
        class_weight=settings.class_weight,
        shuffle=False,  # the input pipeline shuffles
        verbose=1 if on_terminal else 2,  # a bar on a terminal, one line per epoch otherwise
    )
    history = FitHistory(record.history)  # Keras's History would hold only this run's epochs when resumed
    if stopper is not None and stopper.best_weights is not None:
        # Keras restores the best epoch's weights at the end of the fit, stopped early or not; its epoch numbers
        # count from the first run of a resumed fit.
        history.restored_epoch = stopper.best_epoch + 1
        logger.info("early stopping: %d of %d epochs ran; the weights of epoch %d (lowest val_loss %.4f) kept",
                    len(history.get("loss", [])), settings.epochs, history.restored_epoch, stopper.best)
    return history
