"""Training precision: float32 (the reference numerics) or Keras's mixed_bfloat16 policy, for CPUs with bf16 units.

Under mixed_bfloat16 the layers compute in bfloat16 while the variables (and so the optimizer's updates and the
trained weights) stay float32. Only training uses it: the exported model is always rebuilt in float32 and gets the
trained weights, so every serving signature, the gate, the warmup replay and `tensorflow_model_server` see the same
float32 graph whatever the training precision was.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from export.settings import PRECISIONS

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

# /proc/cpuinfo flags of CPU units that run bfloat16 arithmetic natively (Intel AMX since Sapphire Rapids,
# AVX512-BF16 since Cooper Lake / Zen 4). Without them, bfloat16 is emulated and much slower than float32.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...] | None:
    """The bf16 flags this CPU reports (empty: none), or None where /proc/cpuinfo cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def resolve_precision(requested: str) -> str:
    """The Keras policy to train under: `requested` itself, or for "auto" mixed_bfloat16 where this CPU has bf16
    units (where it was measured 1.3-1.9x faster at the same accuracy) and float32 elsewhere (where bf16 is
    emulated, several times slower)."""
    if requested != "auto":
        return requested
    units = cpu_bf16_units()
    chosen = "mixed_bfloat16" if units else "float32"
    logger.info("--precision auto: %s (%s)", chosen,
                f"CPU bf16 units: {', '.join(units)}" if units else "no CPU bf16 units found")
    return chosen


@contextlib.contextmanager
def training_precision(precision: str) -> Iterator[None]:
    """Keras's global dtype policy set to `precision` inside the block (layers built there use it), and the
    previous policy back afterwards, also on errors."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "float32":
        units = cpu_bf16_units()
        if units == ():
            logger.warning("--precision %s on a CPU without bf16 units (no %s in /proc/cpuinfo): training will be "
                           "several times slower than float32", precision, " or ".join(BF16_CPU_FLAGS))
        elif units:
            logger.info("training in %s (CPU bf16 units: %s)", precision, ", ".join(units))
    import keras  # here, not at import time: `cpu_bf16_units` serves the benchmark's parent process without Keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def as_float32(model: keras.Model, build: Callable[[], keras.Model], rebuild: bool = False) -> keras.Model:
    """`model` itself when it computes in float32, else a float32 model from `build` (the same architecture,
    built under the float32 policy) holding `model`'s trained weights, which mixed precision keeps in float32.
    `rebuild`: a new model in any case (one trained under a distribution strategy is rebuilt outside it, so that
    evaluating and exporting it runs in this process alone)."""
    if model.dtype_policy.name == "float32" and not rebuild:
        return model
    with training_precision("float32"):
        copy = build()
    copy.set_weights(model.get_weights())
    return copy
