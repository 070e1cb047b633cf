"""One loaded model version: a SessionBundle, its SignatureDefs, and running them on numpy inputs by tensor name."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving.codecs import tensor_codec
from serving.errors import DataLoss, FailedPrecondition, InvalidArgument
from serving.lifecycle.saved_model_bundle import SessionBundle, SessionOptions, translate_tf_error
from serving.lifecycle.tflite_bundle import TfLiteBundle, has_tflite_model

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
WARMUP_FILE = Path(tf.saved_model.ASSETS_DIRECTORY + ".extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # WarmupConsts::kMaxNumRecords

# DataTypeString() names, which TensorFlow's runtime errors use ("Expects arg[0] to be float but double ...").



@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: alias, graph tensor name, TF dtype, numpy dtype, shape (-1: unknown dim)."""

    alias: str
    tensor_name: str
    dtype: int
    np_dtype: np.dtype
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class Signature:
    """A SignatureDef in runnable form."""

    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def _spec(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    try:
        np_dtype = tensor_codec.numpy_dtype(info.dtype)
    except InvalidArgument:
        np_dtype = np.dtype(object)  # a dtype no request can carry; the signature is still listed in metadata
    return TensorSpec(alias, info.name, info.dtype, np_dtype, shape)


class Servable:
    """A SavedModel version loaded like TF Serving's SavedModelBundle (graph-mode Session over the tagged MetaGraph),
    or with `prefer_tflite` its `model.tflite` through TF Lite's interpreter, as TF Serving's TfLiteSession."""

    def __init__(self, name: str, version: int, path: Path, tags: tuple[str, ...] = ("serve",),
                 session_options: SessionOptions | None = None, prefer_tflite: bool = False):
        self.name, self.version, self.path = name, version, Path(path)
        if prefer_tflite and has_tflite_model(self.path):  # --prefer_tflite_model: TF Serving's TfLiteSession
            self.bundle = TfLiteBundle(self.path)
        else:
            self.bundle = SessionBundle(self.path, tags, session_options or SessionOptions())
        self.signature_defs = self.bundle.signature_defs
        self.signatures: dict[str, Signature] = {
            key: Signature(
                name=key,
                method_name=sdef.method_name,
                inputs={a: _spec(a, i) for a, i in sdef.inputs.items()},
                outputs={a: _spec(a, i) for a, i in sdef.outputs.items()},
            )
            for key, sdef in self.signature_defs.items()
            if key != "__saved_model_init_op"  # TF2's init op travels as a pseudo-signature; TF Serving skips it
        }

    def signature(self, name: str) -> Signature:
        """The signature called `name` (empty means serving_default), FAILED_PRECONDITION if absent (Predict)."""
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
        """Run already-checked inputs by tensor name; `wanted` output aliases (all when None) as numpy arrays."""
        aliases = list(wanted or signature.outputs)
        feeds = {signature.inputs[alias].tensor_name: value for alias, value in inputs.items()}
        fetches = tuple(signature.outputs[alias].tensor_name for alias in aliases)
        values = self.bundle.run(feeds, fetches)
        return dict(zip(aliases, values, strict=True))

    def warmup(self, replay: Callable[[Servable, object], None]) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests` under TF Serving's rules; returns the record count.

        A missing file is fine; each record must parse as a PredictionLog and run without error; more than
        1,000 records fail the load (checked after each record, as TF Serving does).
        """
        from tensorflow_serving.apis import prediction_log_pb2

        path = self.path / WARMUP_FILE
        if not path.exists():
            logger.info("No warmup data file found at %s", path)
            return 0
        started, count = time.monotonic(), 0
        try:
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                log = prediction_log_pb2.PredictionLog()
                try:
                    log.ParseFromString(raw)
                except Exception as e:
                    raise InvalidArgument(f"Failed to parse warmup record: {raw[:64]!r} from {path}") from e
                replay(self, log)
                count += 1
                if count > MAX_WARMUP_RECORDS:
                    raise InvalidArgument(
                        f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
        except tf.errors.DataLossError as e:
            raise DataLoss(f"{e.message.strip()}. Please verify your warmup data is in TFRecord format.") from e
        except tf.errors.OpError as e:
            raise translate_tf_error(e) from e
        logger.info("warmed up %s version %d with %d requests in %.2fs", self.name, self.version, count,
                    time.monotonic() - started)
        return count

    def close(self) -> None:
        """Release the session now (otherwise it goes with the last reference)."""
        self.bundle.close()


def check_inputs(signature: Signature, inputs: dict[str, np.ndarray]) -> None:
    """Every signature input present and nothing extra (VerifyRequestInputsSize), each with the input's dtype
    (what Session::Run checks, with its message). Shapes are left to the graph, as in TF Serving."""
    expected = set(signature.inputs)
    given = set(inputs)
    if given != expected:
        raise InvalidArgument(
            f"input size does not match signature: {len(given)}!={len(expected)} len({{{','.join(sorted(given))}}}) "
            f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(given - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - given))}}}."
        )
    feed_order = sorted(signature.inputs[a].tensor_name for a in inputs)
    for alias, arr in inputs.items():
        spec = signature.inputs[alias]
        if arr.dtype != spec.np_dtype:
            index = feed_order.index(spec.tensor_name)
            raise InvalidArgument(f"Expects arg[{index}] to be {tensor_codec.tf_type_name(spec.np_dtype)} but "
                                  f"{tensor_codec.tf_type_name(arr.dtype)} is provided")


def check_output_filter(signature: Signature, output_filter=()) -> list[str]:
    """The output aliases a request wants (all when the filter is empty); INVALID_ARGUMENT for an unknown or
    repeated one, with PreProcessPrediction's messages."""
    wanted = list(output_filter) or list(signature.outputs)
    seen: set[str] = set()
    for alias in wanted:
        if alias not in signature.outputs:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return wanted


