"""Training throughput benchmark: this project's tf.data pipeline vs `model.fit` on in-memory numpy arrays.

    python -m export.bench_training --data ../shared/datasets --images 4096 --epochs 2

Both runs train the reference CNN on the same images with the same batch size; the first epoch of each is
warm-up (graph tracing) and is reported separately. Prints images/s and the ratio pipeline / numpy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchConfig:
    data: str
    images: int
    epochs: int
    batch_size: int
    cache_dir: Path
    log_every_steps: int = 50


class _EpochTimer:
    def __init__(self):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        self.callback = Timer()


def _measure(fit_fn, n_images: int, epochs: int) -> dict:
    timer = _EpochTimer()
    fit_fn([timer.callback])
    times = timer.callback.times
    steady = times[1:] or times
    return {
        "first_epoch_s": round(times[0], 2),
        "steady_epoch_s": round(sum(steady) / len(steady), 2),
        "images_per_s": round(n_images / (sum(steady) / len(steady)), 1),
        "epochs": epochs,
    }


def run(cfg: BenchConfig) -> dict:
    """Train both ways and return the figures."""
    import keras

    from export import cifar10_data
    from export.cifar10_model import build_model
    from export.image_data import stratified_limit
    from export.training import ProgressLog, input_pipeline

    data = stratified_limit(cifar10_data.load(cfg.data, cfg.cache_dir).train, cfg.images, seed=0)

    def compiled():
        keras.utils.set_random_seed(0)
        m = build_model()
        m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    def progress() -> list:
        return [ProgressLog(cfg.log_every_steps, cfg.batch_size)] if cfg.log_every_steps > 0 else []

    pipeline = _measure(
        lambda cbs: compiled().fit(input_pipeline(data, cfg.batch_size, True, 0), epochs=cfg.epochs,
                                   callbacks=[*cbs, *progress()], verbose=0, shuffle=False),
        len(data), cfg.epochs,
    )
    x, y = data.images.astype("float32"), data.labels
    numpy_fit = _measure(
        lambda cbs: compiled().fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, callbacks=[*cbs, *progress()],
                                   verbose=0),
        len(data), cfg.epochs,
    )
    return {
        "images": len(data),
        "batch_size": cfg.batch_size,
        "tf_data_pipeline": pipeline,
        "numpy_in_memory": numpy_fit,
        "ratio_pipeline_to_numpy": round(pipeline["images_per_s"] / numpy_fit["images_per_s"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print a table and a JSON line."""
    p = argparse.ArgumentParser(prog="python -m export.bench_training", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic", help="CIFAR-10 source as for `python -m export cifar10`")
    p.add_argument("--images", type=int, default=4096, help="training images per epoch (default 4096)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run, first is warm-up (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    p.add_argument("--log-every-steps", type=int, default=50,
                   help="log step, images/s, loss, accuracy and ETA every N steps (0: none; default 50)")
    a = p.parse_args(argv)
    if a.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is warm-up)")
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    r = run(BenchConfig(a.data, a.images, a.epochs, a.batch_size, a.cache_dir, a.log_every_steps))
    print(f"{'input':<22}{'images/s':>10}{'epoch s':>10}{'1st epoch s':>13}")
    for key in ("tf_data_pipeline", "numpy_in_memory"):
        m = r[key]
        print(f"{key:<22}{m['images_per_s']:>10}{m['steady_epoch_s']:>10}{m['first_epoch_s']:>13}")
    print(f"pipeline / numpy: {r['ratio_pipeline_to_numpy']:.3f}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
