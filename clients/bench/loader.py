"""`python -m clients.bench.loader SAVED_MODEL`: the model server's graph-mode loader against TF2's, in process.

The local server loads versions the way TF Serving does (a Session over the `serve` MetaGraph, signatures run by
tensor name through cached C++ callables) instead of `tf.saved_model.load`. This measures what that costs: both
paths are loaded in one process and timed alternately (rounds of TF2, then session), at batch 1 and batch 32, on
the same JPEG (serving_default) or its pixels (predict_pixels). Prints a table with the median of the rounds and
the session/TF2 ratio (below 1: the session path is faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoaderBenchConfig:
    """What to measure."""

    saved_model: Path
    image: Path
    rounds: int = 5
    seconds: float = 1.0


def parse_args(argv: list[str] | None) -> LoaderBenchConfig:
    """Flags into the config (no TensorFlow import)."""
    p = argparse.ArgumentParser(prog="python -m clients.bench.loader", description=__doc__.split("\n\n")[1])
    p.add_argument("saved_model", type=Path, help="a SavedModel version directory of the project's contract")
    p.add_argument("--image", type=Path, required=True, help="the JPEG every call sends")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per case (default 5)")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per path per round (default 1)")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.seconds <= 0:
        p.error("--rounds must be ≥ 1 and --seconds > 0")
    return LoaderBenchConfig(a.saved_model, a.image, a.rounds, a.seconds)


def _per_call_ms(fn, seconds: float) -> float:
    fn()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or calls < 3:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls * 1e3


def run(cfg: LoaderBenchConfig) -> list[dict]:
    """Median ms per call of each path for each (signature, batch) case."""
    import numpy as np
    import tensorflow as tf

    from export.data.preprocessing import decode_batch
    from serving.lifecycle.servable import Servable

    tf2 = tf.saved_model.load(str(cfg.saved_model)).signatures
    servable = Servable("bench", 1, cfg.saved_model)
    jpeg = cfg.image.read_bytes()
    pixels_spec = servable.signature("predict_pixels").inputs["pixels"].shape
    pixels = decode_batch(tf.constant([jpeg]), tuple(pixels_spec[1:3])).numpy()
    rows = []
    for key, alias, one in (("serving_default", "image_bytes", np.array([jpeg], dtype=object)),
                            ("predict_pixels", "pixels", pixels)):
        sig = servable.signature(key)
        for batch in (1, 32):
            value = np.repeat(one, batch, axis=0)
            tensor = tf.constant(value)
            tf2_fn = lambda t=tensor, k=key, a=alias: tf2[k](**{a: t})["probabilities"].numpy()  # noqa: E731
            sess_fn = lambda v=value, s=sig, a=alias: servable.execute(s, {a: v}, ["probabilities"])  # noqa: E731
            np.testing.assert_allclose(tf2_fn(), sess_fn()["probabilities"], atol=1e-5)
            tf2_ms, sess_ms = [], []
            for _ in range(cfg.rounds):
                tf2_ms.append(_per_call_ms(tf2_fn, cfg.seconds))
                sess_ms.append(_per_call_ms(sess_fn, cfg.seconds))
            a, b = statistics.median(tf2_ms), statistics.median(sess_ms)
            rows.append({"signature": key, "batch": batch, "tf2_ms": a, "session_ms": b, "ratio": b / a})
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the table."""
    cfg = parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    rows = run(cfg)
    print(f"{'signature':16} {'batch':>5} {'TF2 ms':>9} {'session ms':>11} {'session/TF2':>12}")
    for r in rows:
        print(f"{r['signature']:16} {r['batch']:>5} {r['tf2_ms']:>9.2f} {r['session_ms']:>11.2f} {r['ratio']:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
