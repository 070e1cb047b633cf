"""What a version costs to serve, measured where `tensorflow_model_server` spends it: each predict signature run
through the graph-mode session (the SessionBundle path), after warmup, at batch 1 (p50 and p99 latency) and at
batch 32 (images per second). Inputs are real requests (the version's warmup or comparison records), their rows
repeated to the batch size. Several versions measured together take turns run by run, so that a comparison between
them is made on the same machine, in the same process, under the same load.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

LARGE_BATCH = 32


@dataclass(frozen=True)
class CostSettings:
    """How much to run per version and signature: `batch1_runs` single-row runs and `large_runs` runs of LARGE_BATCH
    rows, after `warmup_runs` unmeasured ones of each."""

    batch1_runs: int = 100
    large_runs: int = 12
    warmup_runs: int = 5


def predict_inputs(logs) -> dict[str, dict[str, np.ndarray]]:
    """Per predict signature, the inputs of its request with the most rows among PredictionLog records."""
    from serving.codecs import tensor_codec

    chosen: dict[str, dict[str, np.ndarray]] = {}
    for log in logs:
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        inputs = {alias: tensor_codec.to_numpy(t, alias) for alias, t in request.inputs.items()}
        if not inputs or any(a.ndim == 0 or len(a) == 0 for a in inputs.values()):
            continue
        key = request.model_spec.signature_name or "serving_default"
        rows = len(next(iter(inputs.values())))
        if key not in chosen or rows > len(next(iter(chosen[key].values()))):
            chosen[key] = inputs
    return chosen


def with_rows(inputs: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The inputs with exactly `n` rows, repeating the given ones in order."""
    return {alias: np.take(value, np.arange(n) % len(value), axis=0) for alias, value in inputs.items()}


def _seconds(servable, signature, inputs: dict[str, np.ndarray]) -> float:
    started = time.perf_counter()
    servable.execute(signature, inputs)
    return time.perf_counter() - started


def measure(servables: list, inputs: dict[str, dict[str, np.ndarray]],
            settings: CostSettings = CostSettings()) -> list[dict[str, dict]]:
    """For each servable, per signature it has among `inputs`: batch-1 p50/p99 ms and batch-32 images/s. The
    versions take turns run by run, so that what else the machine does falls on each of them alike."""
    samples = [{key: ([], []) for key in inputs if key in s.signatures} for s in servables]
    for key, given in inputs.items():
        having = [(s, mine[key]) for s, mine in zip(servables, samples, strict=True) if key in mine]
        for batch, runs, slot in ((with_rows(given, 1), settings.batch1_runs, 0),
                                  (with_rows(given, LARGE_BATCH), settings.large_runs, 1)):
            for servable, _ in having:
                for _ in range(settings.warmup_runs):
                    _seconds(servable, servable.signatures[key], batch)
            for _ in range(runs):
                for servable, measured in having:
                    measured[slot].append(_seconds(servable, servable.signatures[key], batch))
    return [{key: _summary(ones, larges) for key, (ones, larges) in mine.items()} for mine in samples]


def _summary(ones: list[float], larges: list[float]) -> dict:
    ms = np.asarray(ones) * 1000
    return {"batch1_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "batch1_p99_ms": round(float(np.percentile(ms, 99)), 3),
            f"batch{LARGE_BATCH}_images_per_s": round(LARGE_BATCH * len(larges) / sum(larges), 1),
            "runs": {"batch1": len(ones), f"batch{LARGE_BATCH}": len(larges)}}


def thread_settings(session_options=None) -> dict:
    """The settings the figures were taken under (0: TensorFlow chooses, as in tensorflow_model_server)."""
    return {"cpu_count": os.cpu_count(),
            "intra_op_parallelism": getattr(session_options, "intra_op_parallelism", 0),
            "inter_op_parallelism": getattr(session_options, "inter_op_parallelism", 0)}
