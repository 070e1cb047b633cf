"""One loaded model version: its signatures (as SignatureDefs, for metadata) and running them on numpy inputs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving import tensor_codec
from serving.errors import FailedPrecondition, InvalidArgument, ServingError, error_for_code

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: alias, TF dtype, numpy dtype, shape (-1 for unknown dims)."""

    alias: str
    dtype: int
    np_dtype: np.dtype
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class Signature:
    """A callable signature and its tensor specs."""

    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    function: object


def _spec(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(alias, info.dtype, tensor_codec.numpy_dtype(info.dtype), shape)


def translate_tf_error(e: tf.errors.OpError) -> ServingError:
    """A TensorFlow runtime error as the ServingError with the same canonical code."""
    err = error_for_code(e.error_code, e.message.strip())
    err.__cause__ = e
    return err


class Servable:
    """A SavedModel version loaded with `tf.saved_model.load`."""

    def __init__(self, name: str, version: int, path: Path, tags: tuple[str, ...] = ("serve",)):
        self.name, self.version, self.path = name, version, Path(path)
        self._loaded = tf.saved_model.load(str(path), tags=list(tags))
        self.signature_defs = self._read_signature_defs(tags)
        self.signatures: dict[str, Signature] = {}
        for key, sdef in self.signature_defs.items():
            if key not in self._loaded.signatures:
                continue
            self.signatures[key] = Signature(
                name=key,
                method_name=sdef.method_name,
                inputs={a: _spec(a, i) for a, i in sdef.inputs.items()},
                outputs={a: _spec(a, i) for a, i in sdef.outputs.items()},
                function=self._loaded.signatures[key],
            )

    def _read_signature_defs(self, tags: tuple[str, ...]) -> dict[str, meta_graph_pb2.SignatureDef]:
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((self.path / "saved_model.pb").read_bytes())
        for mg in saved.meta_graphs:
            if set(mg.meta_info_def.tags) == set(tags):
                return dict(mg.signature_def)
        raise FailedPrecondition(f"no MetaGraph with tags {list(tags)} in {self.path}")

    def signature(self, name: str) -> Signature:
        """The signature called `name` (empty means serving_default), FAILED_PRECONDITION if absent."""
        key = name or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise FailedPrecondition(f'Serving signature key "{key}" not found.') from None

    def run(self, signature: Signature, inputs: dict[str, np.ndarray], output_filter=()) -> dict[str, np.ndarray]:
        """Check inputs against the signature, run it, return the (filtered) outputs as numpy arrays."""
        check_inputs(signature, inputs)
        return self.execute(signature, inputs, check_output_filter(signature, output_filter))

    def execute(self, signature: Signature, inputs: dict[str, np.ndarray], wanted=None) -> dict[str, np.ndarray]:
        """Run already-checked inputs; `wanted` output aliases (all when None) as numpy arrays."""
        try:
            result = signature.function(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.OpError as e:
            raise translate_tf_error(e) from e
        except (TypeError, ValueError) as e:
            raise InvalidArgument(str(e).splitlines()[0]) from e
        return {alias: result[alias].numpy() for alias in (wanted or signature.outputs)}

    def warmup(self, replay) -> int:
        """Replay the warmup file through `replay(servable, PredictionLog)`; returns the number of records."""
        path = self.path / WARMUP_FILE
        if not path.exists():
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        started, count = time.monotonic(), 0
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(raw)
            replay(self, log)
            count += 1
            if count > 1000:
                raise InvalidArgument(f"warmup file {path} has more than 1000 records")
        logger.info("warmed up %s version %d with %d requests in %.2fs", self.name, self.version, count,
                    time.monotonic() - started)
        return count


def check_inputs(signature: Signature, inputs: dict[str, np.ndarray]) -> None:
    """Every signature input present (nothing extra), with its dtype and a compatible shape."""
    expected = set(signature.inputs)
    given = set(inputs)
    if given != expected:
        raise InvalidArgument(
            f"input size does not match signature: {len(given)}!={len(expected)} len({{{','.join(sorted(given))}}}) "
            f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(given - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - given))}}}."
        )
    for alias, arr in inputs.items():
        spec = signature.inputs[alias]
        if arr.dtype != spec.np_dtype:
            got = "string" if arr.dtype.kind == "O" else str(arr.dtype)
            want = "string" if spec.np_dtype.kind == "O" else str(spec.np_dtype)
            raise InvalidArgument(f"Expects arg[{alias}] to be {want} but {got} is provided")
        if spec.shape is not None and not _shape_fits(spec.shape, arr.shape):
            shape = [d if d >= 0 else None for d in spec.shape]
            raise InvalidArgument(f"input {alias!r} has shape {list(arr.shape)}, the signature expects {shape}")


def check_output_filter(signature: Signature, output_filter=()) -> list[str]:
    """The output aliases a request wants (all when the filter is empty); INVALID_ARGUMENT for an unknown one."""
    wanted = list(output_filter) or list(signature.outputs)
    for alias in wanted:
        if alias not in signature.outputs:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(sorted(signature.outputs))}}}."
            )
    return wanted


def _shape_fits(expected: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    return len(expected) == len(actual) and all(d in (-1, s) for d, s in zip(expected, actual, strict=True))
