"""A TF Lite model served as TF Serving serves it with `--prefer_tflite_model` (its TfLiteSession).

A version directory holding `model.tflite` is loaded through TF Lite's interpreter instead of the SavedModel. Its
SignatureDefs are TF Serving's: those stored in the model's `signature_defs_metadata` (TF Lite's
signature_def_util: a FlexBuffer map of serialized SignatureDefs), each tensor name checked against the
interpreter's tensors, falling back to the legacy name without `:0`; without stored ones, a `serving_default`
predict signature whose aliases are the input and output tensor names (without `:0`). A request's tensor whose shape
differs from the interpreter's resizes that input, as TfLiteSession does, so any batch size runs.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving.errors import AlreadyExists, InvalidArgument, NotFound

logger = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"  # kTfLiteModelFilename
SIGNATURE_DEFS_METADATA = b"signature_defs_metadata"
PREDICT_METHOD = "tensorflow/serving/predict"


def has_tflite_model(version_dir: Path) -> bool:
    """Whether the version directory holds a TF Lite model (what --prefer_tflite_model serves)."""
    return (Path(version_dir) / TFLITE_FILE).is_file()


def legacy_name(tensor_name: str) -> str:
    """TfToTfLiteLegacyTensorName: early TF Lite converters dropped the `:0` suffix."""
    return tensor_name.split(":", 1)[0]


def stored_signature_defs(model: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs a converter stored in the model's metadata (empty when there are none)."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.tools import flatbuffer_utils

    parsed = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    for entry in parsed.metadata or []:
        if entry.name != SIGNATURE_DEFS_METADATA:
            continue
        data = parsed.buffers[entry.buffer].data
        try:
            stored = flexbuffers.GetRoot(bytes(data if data is not None else b"")).AsMap
            return {key.AsKey: meta_graph_pb2.SignatureDef.FromString(bytes(value.AsStringBytes))
                    for key, value in zip(stored.Keys, stored.Values, strict=True)}
        except Exception as e:  # a metadata buffer that is no map of SignatureDefs
            raise InvalidArgument(f"Invalid SignatureDefs found in TfLite model: {e}") from e
    return {}


def with_signature_defs(model: bytes, signature_defs: dict[str, meta_graph_pb2.SignatureDef]) -> bytes:
    """The model with `signature_defs` stored as TF Serving reads them (what TF Lite's C++ SetSignatureDefMap
    writes: a `signature_defs_metadata` buffer holding a FlexBuffer map of name → serialized SignatureDef)."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    builder = flexbuffers.Builder()
    with builder.Map():
        for key in sorted(signature_defs):
            builder.Key(key)
            # A FlexBuffer string holding the proto's bytes, as the C++ builder's String(key, std::string) writes
            # it; the Python builder's String() takes text only, so its blob writer is used with the string type.
            builder._WriteBlob(signature_defs[key].SerializeToString(), append_zero=True,
                               type_=flexbuffers.Type.STRING)
    parsed = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    parsed.metadata = [m for m in (parsed.metadata or []) if m.name != SIGNATURE_DEFS_METADATA]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(bytes(builder.Finish()), dtype=np.uint8)
    parsed.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = SIGNATURE_DEFS_METADATA, len(parsed.buffers) - 1
    parsed.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(parsed))


def _tensor_info(detail: dict) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=detail["name"], dtype=tf.as_dtype(detail["dtype"]).as_datatype_enum)
    for size in detail["shape"]:
        info.tensor_shape.dim.add().size = int(size)
    return info


class TfLiteBundle:
    """A TF Lite interpreter with TF Serving's signatures; `run` feeds and fetches by tensor name (one run at a
    time per model: an interpreter is not thread-safe)."""

    def __init__(self, export_dir: Path, num_threads: int | None = None):
        self.export_dir = Path(export_dir)
        path = self.export_dir / TFLITE_FILE
        try:
            model = path.read_bytes()
        except OSError as e:
            raise NotFound(f"Could not read TF Lite model {path}: {e}") from e
        try:
            with warnings.catch_warnings():  # tf.lite's notice that LiteRT is its successor
                warnings.simplefilter("ignore")
                self.interpreter = tf.lite.Interpreter(model_content=model, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise InvalidArgument(f"Cannot build Interpreter from {path}: {e}") from e
        self._inputs = self._index(self.interpreter.get_input_details(), "Input")
        # Each input's current shape (resized by requests), so a run need not copy a tensor out to learn it.
        self._shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in self._inputs.values()}
        self._outputs = self._index(self.interpreter.get_output_details(), "Output")
        self.signature_defs = self._signatures(model)
        self._lock = threading.Lock()

    @staticmethod
    def _index(details: list[dict], kind: str) -> dict[str, dict]:
        index: dict[str, dict] = {}
        for detail in details:
            if detail["name"] in index:
                raise AlreadyExists(f"{kind} tensor name: {detail['name']} has multiple indices")
            index[detail["name"]] = detail
        return index

    def _signatures(self, model: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
        stored = stored_signature_defs(model)
        if not stored:
            logger.warning("No signature def found in TFLite model. Generating one.")
            sigdef = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
            for name, detail in self._inputs.items():
                sigdef.inputs[legacy_name(name)].CopyFrom(_tensor_info(detail))
            for name, detail in self._outputs.items():
                sigdef.outputs[legacy_name(name)].CopyFrom(_tensor_info(detail))
            return {tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: sigdef}
        for sigdef in stored.values():
            for side, tensors, known in (("input", sigdef.inputs, self._inputs),
                                         ("output", sigdef.outputs, self._outputs)):
                for alias, info in tensors.items():
                    try:
                        info.name = self._fixed(known, info.name)
                    except InvalidArgument as e:
                        raise InvalidArgument(f"Signature {side} {alias} references an unknown tensor: "
                                              f"{e.message}") from e
        return stored

    @staticmethod
    def _fixed(known: dict[str, dict], name: str) -> str:
        """FixTfLiteTensorName: the name itself, else its legacy form, else unknown."""
        for candidate in (name, legacy_name(name)):
            if candidate in known:
                return candidate
        raise InvalidArgument(f"Unknown tensor '{name}'.")

    def run(self, feeds: dict[str, np.ndarray], fetches: tuple[str, ...]) -> list[np.ndarray]:
        """Set the inputs (resizing those whose shape differs), invoke, copy the fetched outputs."""
        targets = [(self._inputs[self._fixed(self._inputs, name)], value) for name, value in feeds.items()]
        with self._lock:
            resized = False
            for detail, value in targets:
                if self._shapes[detail["index"]] != value.shape:
                    try:
                        self.interpreter.resize_tensor_input(detail["index"], list(value.shape))
                    except (ValueError, RuntimeError) as e:
                        raise InvalidArgument(f"Failed to resize input tensor: {detail['name']} to shape "
                                              f"{list(value.shape)}: {e}") from e
                    self._shapes[detail["index"]] = value.shape
                    resized = True
            try:
                if resized:
                    self.interpreter.allocate_tensors()
                for detail, value in targets:
                    self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(value))
                self.interpreter.invoke()
            except (ValueError, RuntimeError) as e:  # shapes the model's ops cannot take
                raise InvalidArgument(f"Failed to invoke TfLite interpreter: {e}") from e
            return [self.interpreter.get_tensor(self._outputs[self._fixed(self._outputs, name)]["index"]).copy()
                    for name in fetches]

    def close(self) -> None:
        """Drop the interpreter."""
        self.interpreter = None
