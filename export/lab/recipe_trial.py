"""`python -m export.lab.recipe_trial`: one training run of a CIFAR-10 recipe on any Keras backend; publishes nothing.

It takes `python -m export cifar10`'s training options and runs the same model (`cifar10_model.build_model`), the
same numerics (`cifar10_recipe`: schedule, optimizer, loss) and the same stratified subsets and splits, but no
TensorFlow: with `KERAS_BACKEND=jax` (or `torch`) on an accelerator, a 25-epoch recipe takes minutes instead of
two hours on 2 CPU cores, so recipes can be compared before one is trained for real on the product's path
(TensorFlow, exported, gated, published). Images come from the shared JPEG tarballs (`cifar10-train-jpg.tar.gz`,
`cifar10-test-dev-jpg.tar.gz`), decoded by Pillow with libjpeg's accurate integer IDCT as `export.data.preprocessing`
decodes them. The result (learning curve with test accuracy per epoch, final test accuracy of the image alone,
with the test-time flip and with the flip and the 6 or 10 shifted views, wall time, images/s) is one JSON line on stdout
and, with `--json`, a file.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

TRAIN_TARBALL, TEST_TARBALL = "cifar10-train-jpg.tar.gz", "cifar10-test-dev-jpg.tar.gz"


def read_tarball(path: Path, split: str, class_names: list[str]):
    """`split/<class>/<file>.jpg` members of a shared tarball as `LabeledImages`, in class then file-name order
    (the order `image_data.read_class_folders` reads the extracted folders in)."""
    from PIL import Image

    from export.data.image_data import DataError, LabeledImages

    if not path.is_file():
        raise DataError(f"missing {str(path)!r}: --data must be the folder with the shared CIFAR-10 tarballs")
    found: list[tuple[int, str, np.ndarray]] = []
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] != split or parts[1] not in class_names:
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as img:
                found.append((class_names.index(parts[1]), parts[2], np.asarray(img.convert("RGB"), np.uint8)))
    if not found:
        raise DataError(f"no {split}/<class>/ images in {str(path)!r}")
    found.sort(key=lambda item: (item[0], item[1]))
    return LabeledImages(np.stack([img for _, _, img in found]), np.array([c for c, _, _ in found], np.int64),
                         list(class_names))


def run(cfg, json_path: Path | None = None) -> dict:
    """Train `cfg`'s recipe on the current Keras backend and measure it on the test images."""
    import keras

    from export.data.cifar10_data import CLASS_NAMES
    from export.data.image_data import stratified_limit, stratified_split
    from export.models.cifar10_recipe import loss, model_builder, optimizer
    from export.models.inference_views import with_test_time_flip, with_test_time_views
    from export.training.evaluation import metrics_from_predictions, predict_probabilities
    from export.training.precision import as_float32, resolve_precision, training_precision

    started = time.monotonic()
    data = Path(cfg.data)
    train = read_tarball(data / TRAIN_TARBALL, "train", CLASS_NAMES)
    test = read_tarball(data / TEST_TARBALL, "test", CLASS_NAMES)
    train, val = stratified_split(stratified_limit(train, cfg.limit, cfg.seed), cfg.val_split, cfg.seed)
    logger.info("backend %s: %d train, %d validation, %d test images (read in %.0f s)", keras.backend.backend(),
                len(train), len(val), len(test), time.monotonic() - started)

    keras.utils.set_random_seed(cfg.seed)
    build = model_builder(cfg, len(CLASS_NAMES))
    steps_per_epoch = max(1, -(-len(train) // cfg.batch_size))
    precision = resolve_precision(cfg.recipe_values.precision)  # auto looks at the CPU only, not at accelerators
    with training_precision(precision):
        model = build()
    model.compile(optimizer=optimizer(cfg, steps_per_epoch), loss=loss(cfg, len(CLASS_NAMES)), metrics=["accuracy"])

    def test_accuracy(m) -> float:
        predicted = predict_probabilities(m, test).argmax(axis=1)
        return metrics_from_predictions(test.labels, predicted, test.class_names)["test_accuracy"]

    curve: list[float] = []

    def after_epoch(epoch: int, logs: dict) -> None:
        curve.append(test_accuracy(model))
        logger.info("epoch %d: test accuracy %.4f (%.0f s)", epoch + 1, curve[-1], time.monotonic() - fit_started)

    if cfg.recipe_values.random_jpeg:
        logger.warning("--random-jpeg %g is not applied here: it is a tf.data step of the product's input pipeline, "
                       "and this trial feeds arrays on any backend (the result records random_jpeg_applied: false)",
                       cfg.recipe_values.random_jpeg)
    per_epoch = keras.callbacks.LambdaCallback(on_epoch_end=after_epoch)
    fit_started = time.monotonic()
    history = model.fit(
        train.images.astype(np.float32), train.labels, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=True,
        validation_data=(val.images.astype(np.float32), val.labels) if len(val) else None,
        callbacks=[per_epoch], verbose=2,
    )
    fit_seconds = time.monotonic() - fit_started
    # The final figures from the float32 model that `export cifar10` would publish (the curve: the trained model).
    model = as_float32(model, build)
    plain = test_accuracy(model)
    flipped = test_accuracy(with_test_time_flip(model))
    shift = cfg.recipe_values.test_time_shift or 2
    shifted = test_accuracy(with_test_time_views(model, flip=True, shift=shift))
    vertical = test_accuracy(with_test_time_views(model, flip=True, shift=shift, vertical=True))
    result = {
        "backend": keras.backend.backend(),
        "recipe": cfg.recipe, "epochs": cfg.epochs, "batch_size": cfg.batch_size, "seed": cfg.seed,
        **{k: getattr(cfg.recipe_values, k) for k in ("optimizer", "learning_rate", "conv_dropout", "dense_dropout",
                                                      "weight_decay", "random_erasing", "label_smoothing",
                                                      "shift_interpolation", "shift_fraction")},
        "augment": cfg.recipe_values.augment, "precision": precision,
        "random_jpeg": cfg.recipe_values.random_jpeg, "random_jpeg_applied": False,
        "train_images": len(train), "validation_images": len(val), "test_images": len(test),
        "parameters": model.count_params(),
        "test_accuracy": plain, "test_accuracy_with_flip": flipped,
        "test_time_shift": shift, "test_accuracy_with_flip_and_shifts": shifted,
        "test_accuracy_with_vertical_shifts": vertical,
        "test_accuracy_curve": [round(a, 4) for a in curve],
        "history": {k: [round(float(v), 4) for v in vals] for k, vals in history.history.items()},
        "fit_seconds": round(fit_seconds, 1),
        "images_per_second": round(len(train) * cfg.epochs / fit_seconds, 1) if fit_seconds else None,
    }
    if json_path:
        json_path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse `export cifar10`'s options (plus --json), run one trial, print its JSON line."""
    from export import settings

    parser = argparse.ArgumentParser(
        prog="python -m export.lab.recipe_trial",
        description="Train the CIFAR-10 CNN with a recipe on the current Keras backend (KERAS_BACKEND) and report "
                    "test accuracy; publishes nothing. --data: the folder with the shared CIFAR-10 JPEG tarballs.",
        epilog="Options of `python -m export cifar10` that this ignores: --test-time-flip and --test-time-vertical "
               "(every figure is always reported: alone, flip, 6 and 10 views; --test-time-shift picks the shift, "
               "default 2), --early-stopping, --logdir, "
               "--log-every-steps, --resume, --strict, --cache-dir.",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this file")
    settings.add_options(parser, settings.CifarExportConfig, only=("data", "model", "training"))
    args = parser.parse_args(argv)
    json_path = args.json
    del args.json
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from export.data.image_data import DataError

    cfg = settings.from_args(settings.CifarExportConfig, args)
    try:
        result = run(cfg, json_path)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
