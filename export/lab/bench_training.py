"""Training throughput benchmark for the reference CNN on CPU: which configuration trains fastest here?

    python -m export.lab.bench_training --data ../shared/datasets --images 3200 --epochs 2
    python -m export.lab.bench_training --variants default,xla,onednn-off,threads:2,1 --images 3200

Each variant trains the same CNN on the same images with the same batch size and seed in its own Python process
(thread pools and oneDNN are fixed when TensorFlow starts), one after the other. The first epoch of each is
warm-up (tracing, compilation) and is reported separately; the table gives steady images/s and the ratio to the
first variant, measured in the same run. Variants:

  default        this project's tf.data pipeline, TensorFlow's defaults (what `python -m export cifar10` does)
  numpy          `model.fit` on the same images as in-memory numpy arrays (the reference tutorial's input)
  xla            default + `jit_compile=True` (XLA)
  onednn-off     default with TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's Eigen kernels instead of oneDNN)
  threads:I,J    default with I intra-op and J inter-op threads (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS)
  bf16           default under Keras's mixed_bfloat16 policy (changes the numerics; `python -m export cifar10
                 --precision mixed_bfloat16`): fast only on CPUs with bf16 units (AMX, AVX512-BF16), which the
                 JSON line's `cpu_bf16_units` lists
  onednn-bf16    default with ONEDNN_DEFAULT_FPMATH_MODE=BF16: a float32 model whose oneDNN kernels may round
                 their float32 inputs to bfloat16 inside (also changes the numerics; only where oneDNN has bf16)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VARIANTS = "default,numpy,xla,onednn-off,threads:1,1,threads:2,1"


@dataclass(frozen=True)
class BenchConfig:
    data: str
    images: int
    epochs: int
    batch_size: int
    cache_dir: Path
    variants: tuple[str, ...]
    log_every_steps: int = 50


NAMED_VARIANTS = ("default", "numpy", "xla", "onednn-off", "bf16", "onednn-bf16")


def thread_counts(variant: str) -> tuple[int, int] | None:
    """(intra, inter) of a `threads:I,J` variant, None for the others; ValueError when malformed."""
    if not variant.startswith("threads:"):
        return None
    nums = variant[len("threads:"):].split(",")
    if len(nums) != 2 or not all(n.isdigit() and int(n) > 0 for n in nums):
        raise ValueError(f"variant {variant!r}: expected threads:INTRA,INTER with positive integers")
    return int(nums[0]), int(nums[1])


def parse_variants(text: str) -> tuple[str, ...]:
    """`default,xla,threads:2,1` → ("default", "xla", "threads:2,1"): a number after `threads:I` belongs to it."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.isdigit() and out and out[-1].startswith("threads:") and "," not in out[-1]:
            out[-1] += f",{part}"
        else:
            out.append(part)
    for v in out:
        if thread_counts(v) is None and v not in NAMED_VARIANTS:
            raise ValueError(f"unknown variant {v!r} ({', '.join(NAMED_VARIANTS)}, threads:I,J)")
    return tuple(out)


def variant_environment(variant: str) -> dict[str, str]:
    """Environment variables the variant's process starts with (read by TensorFlow at start-up)."""
    if variant == "onednn-off":
        return {"TF_ENABLE_ONEDNN_OPTS": "0"}
    if variant == "onednn-bf16":
        return {"ONEDNN_DEFAULT_FPMATH_MODE": "BF16"}
    threads = thread_counts(variant)
    if threads:
        return {"TF_NUM_INTRAOP_THREADS": str(threads[0]), "TF_NUM_INTEROP_THREADS": str(threads[1])}
    return {}


def measure_variant(cfg: BenchConfig, variant: str) -> dict:
    """Train `variant` in this process and return its figures."""
    import keras
    import tensorflow as tf

    threads = thread_counts(variant)
    if threads:  # the environment variables already apply; this makes it explicit
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])

    from export.data import cifar10_data
    from export.data.image_data import stratified_limit
    from export.models.cifar10_model import build_model
    from export.training.loop import ProgressLog, input_pipeline
    from export.training.precision import training_precision

    data = stratified_limit(cifar10_data.load(cfg.data, cfg.cache_dir).train, cfg.images, seed=0)
    keras.utils.set_random_seed(0)
    with training_precision("mixed_bfloat16" if variant == "bf16" else "float32"):
        model = build_model()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=variant == "xla")
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self._t)

    callbacks = [Timer()] + ([ProgressLog(cfg.log_every_steps, cfg.batch_size)] if cfg.log_every_steps > 0 else [])
    if variant == "numpy":
        history = model.fit(data.images.astype("float32"), data.labels, batch_size=cfg.batch_size,
                            epochs=cfg.epochs, callbacks=callbacks, verbose=0)
    else:
        history = model.fit(input_pipeline(data, cfg.batch_size, True, 0), epochs=cfg.epochs, callbacks=callbacks,
                            verbose=0, shuffle=False)
    steady = times[1:] or times
    epoch_s = sum(steady) / len(steady)
    return {"variant": variant, "images": len(data), "first_epoch_s": round(times[0], 2),
            "steady_epoch_s": round(epoch_s, 2), "images_per_s": round(len(data) / epoch_s, 1),
            "final_train_accuracy": round(float(history.history["accuracy"][-1]), 4)}


def run(cfg: BenchConfig) -> dict:
    """Run every variant in its own child process, in order; ratios are to the first variant."""
    results = []
    for variant in cfg.variants:
        cmd = [sys.executable, "-m", "export.lab.bench_training", "--data", cfg.data, "--images", str(cfg.images),
               "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size), "--cache-dir", str(cfg.cache_dir),
               "--log-every-steps", str(cfg.log_every_steps), "--variants", variant, "--child"]
        logging.getLogger(__name__).info("variant %s: %s", variant, variant_environment(variant) or "defaults")
        proc = subprocess.run(cmd, env={**os.environ, **variant_environment(variant)}, stdout=subprocess.PIPE,
                              text=True, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode or not lines:
            results.append({"variant": variant, "error": f"exit status {proc.returncode}"})
            continue
        results.append(json.loads(lines[-1]))
    base = next((r for r in results if "images_per_s" in r), None)
    for r in results:
        if base and "images_per_s" in r:
            r["ratio_to_first"] = round(r["images_per_s"] / base["images_per_s"], 3)
    from export.training.precision import cpu_bf16_units

    return {"images": cfg.images, "batch_size": cfg.batch_size, "epochs": cfg.epochs, "cpu_count": os.cpu_count(),
            "cpu_bf16_units": cpu_bf16_units(), "variants": results}


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print a table and a JSON line."""
    p = argparse.ArgumentParser(prog="python -m export.lab.bench_training", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", help="CIFAR-10 source as for `python -m export cifar10`")
    p.add_argument("--images", type=int, default=3200, help="training images per epoch (default 3200)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per variant, the first is warm-up (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help=f"comma-separated variants, the first is the baseline (default {DEFAULT_VARIANTS})")
    p.add_argument("--log-every-steps", type=int, default=50,
                   help="log step, images/s, loss, accuracy and ETA every N steps (0: none; default 50)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is warm-up)")
    try:
        variants = parse_variants(a.variants)
    except ValueError as e:
        p.error(str(e))
    cfg = BenchConfig(a.data, a.images, a.epochs, a.batch_size, a.cache_dir, variants, a.log_every_steps)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.child:
        from serving.tf_logging import quiet_tensorflow

        quiet_tensorflow()
        print(json.dumps(measure_variant(cfg, variants[0])))
        return 0
    r = run(cfg)
    print(f"{'variant':<16}{'images/s':>10}{'ratio':>8}{'epoch s':>9}{'1st epoch s':>13}{'train acc':>11}")
    for m in r["variants"]:
        if "error" in m:
            print(f"{m['variant']:<16}  failed: {m['error']}")
            continue
        print(f"{m['variant']:<16}{m['images_per_s']:>10}{m['ratio_to_first']:>8.3f}{m['steady_epoch_s']:>9}"
              f"{m['first_epoch_s']:>13}{m['final_train_accuracy']:>11}")
    print(json.dumps(r))
    return 0 if all("error" not in m for m in r["variants"]) else 1


if __name__ == "__main__":
    sys.exit(main())
