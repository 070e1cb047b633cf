"""TF Serving's REST JSON ↔ numpy: row (`instances`) and columnar (`inputs`) formats, `{"b64": …}` strings,
and `examples`/`context` for Classify and Regress."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson
from tensorflow.core.example import example_pb2, feature_pb2

from serving.codecs import tensor_codec
from serving.errors import InvalidArgument

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes) -> dict:
    """Parse a request body that must be a JSON object (ParseJson's messages)."""
    if not body:
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidArgument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from e
    if not isinstance(obj, dict):
        raise InvalidArgument(f"JSON request must be an object, got {type(obj).__name__}")
    return obj


def dumps(obj: Any) -> bytes:
    """Serialize a response (numpy arrays natively, anything else through .tolist())."""
    return orjson.dumps(obj, default=_fallback, option=_DUMP_OPTIONS)


def _fallback(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot serialize {type(o).__name__}")


def debug_string(value: Any) -> str:
    """A JSON value as TF Serving quotes it in messages (JsonValueToDebugString: compact JSON)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # a value orjson cannot write back (an integer beyond 64 bits): Python's own JSON
        import json

        return json.dumps(value, separators=(",", ":"))


def _json_type(value: Any) -> str:
    """rapidjson's type names, as json_tensor.cc's messages use them."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {str: "String", list: "Array", dict: "Object"}.get(type(value), "Number")


def predict_format(body: dict) -> tuple[str, Any]:
    """('row', instances) or ('columnar', inputs); exactly one of the two keys (FillPredictRequestFromJson)."""
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows and has_cols:
        raise InvalidArgument(f"JSON Value: {debug_string(body)} Not formatted correctly expecting only one of "
                              f"'inputs' or 'instances' keys to exist ")
    if not has_rows and not has_cols:
        raise InvalidArgument("Missing 'inputs' or 'instances' key")
    if has_rows:
        if not isinstance(body["instances"], list):
            raise InvalidArgument(f"JSON Value: {debug_string(body)} Expecting 'instances' to be an list/array")
        if not body["instances"]:
            raise InvalidArgument(f"JSON Value: {debug_string(body)} No values in 'instances' array")
    return ("row", body["instances"]) if has_rows else ("columnar", body["inputs"])


def _first_non_number(value: Any) -> Any:
    """The first leaf of nested lists that is not a JSON number (None when all are)."""
    if isinstance(value, list):
        for v in value:
            bad = _first_non_number(v)
            if bad is not None:
                return bad
        return None
    return None if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _b64(value: dict, name: str) -> bytes:
    data = value["b64"]
    if not isinstance(data, str):
        raise InvalidArgument(f"input {name!r}: \"b64\" value must be a string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidArgument(f"input {name!r}: unable to base64 decode ({e})") from e


def _strings(value: Any, name: str) -> Any:
    """Nested lists of str / {"b64"} → nested lists of bytes."""
    if isinstance(value, list):
        return [_strings(v, name) for v in value]
    if isinstance(value, str):
        return value.encode()
    if _is_b64(value):
        return _b64(value, name)
    raise InvalidArgument(f"input {name!r}: expected a string or {{\"b64\": ...}}, got {type(value).__name__}")


def _dense_shape(value: Any) -> tuple[int, ...]:
    """The shape read along the first elements (json_tensor.cc's GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _check_dense(value: Any, shape: tuple[int, ...], level: int = 0) -> None:
    """Refuse a ragged list with json_tensor.cc's FillTensorProto messages: every list at a level has that level's
    size, every value sits at the deepest level."""
    if not isinstance(value, list):
        if level != len(shape):
            raise InvalidArgument(f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the "
                                  f"JSON DOM. Expected at level: {len(shape)}")
        return
    if level >= len(shape):
        raise InvalidArgument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise InvalidArgument(f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
                              f"{shape[level]}")
    for v in value:
        _check_dense(v, shape, level + 1)


def _shape_of(value: Any, name: str) -> tuple[int, ...]:
    shape = _dense_shape(value)
    _check_dense(value, shape)
    return shape


def to_array(value: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """One input's JSON value as an array of the signature's dtype."""
    depth = len(_dense_shape(value))  # refused before any recursive walk over a value nested that deep
    if depth > tensor_codec.MAX_DIMS:
        raise InvalidArgument(f"input {name!r}: JSON lists nested {depth} deep; a tensor here has at most "
                              f"{tensor_codec.MAX_DIMS} dimensions")
    if dtype.kind == "O":
        converted = _strings(value, name)
        shape = _shape_of(converted, name)
        arr = np.empty(shape, dtype=object)
        if shape:
            arr[...] = converted if len(shape) > 1 else np.array(converted, dtype=object)
        else:
            arr[()] = converted
        return arr
    bad = _first_non_number(value)
    if bad is not None and not (dtype == np.bool_ and isinstance(bad, bool)):
        raise InvalidArgument(f"JSON Value: {debug_string(bad)} Type: {_json_type(bad)} is not of expected type: "
                              f"{tensor_codec.tf_type_name(dtype)}")
    try:
        return np.asarray(value, dtype=dtype)
    except OverflowError as e:  # an integer outside the dtype's range: json_tensor.cc's TypeError for it
        big = _first_out_of_range(value, np.iinfo(dtype)) if dtype.kind in "iu" else None
        raise InvalidArgument(f"JSON Value: {debug_string(value if big is None else big)} Type: Number is not of "
                              f"expected type: {tensor_codec.tf_type_name(dtype)}") from e
    except (ValueError, TypeError) as e:
        _check_dense(value, _dense_shape(value))  # a ragged list: TF Serving's message for it
        raise InvalidArgument(f"input {name!r}: cannot convert to a {dtype} tensor ({e})") from e


def _first_out_of_range(value: Any, limits) -> Any:
    """The first integer leaf of nested lists that `limits` (np.iinfo) cannot hold (None when there is none)."""
    if isinstance(value, list):
        for v in value:
            big = _first_out_of_range(v, limits)
            if big is not None:
                return big
        return None
    return value if isinstance(value, int) and not limits.min <= value <= limits.max else None


def decode_inputs(fmt: str, payload: Any, specs: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """Decode `instances`/`inputs` against the signature's input dtypes."""
    if fmt == "columnar":
        if isinstance(payload, dict) and not _is_b64(payload):
            return {k: to_array(v, specs.get(k, np.dtype(object)), k) for k, v in payload.items()}
        return {_only_input(specs): to_array(payload, specs[_only_input(specs)], _only_input(specs))}
    if not isinstance(payload, list):
        raise InvalidArgument('"instances" must be a list')
    if not payload:
        raise InvalidArgument('"instances" is an empty list')
    named = [isinstance(i, dict) and not _is_b64(i) for i in payload]
    if all(named):
        keys = set(payload[0])
        for i, inst in enumerate(payload):
            if set(inst) != keys:
                raise InvalidArgument(f"instance {i} has inputs {sorted(inst)}, instance 0 has {sorted(keys)}")
        columns = {k: [inst[k] for inst in payload] for k in keys}
        return {k: to_array(v, specs.get(k, np.dtype(object)), k) for k, v in columns.items()}
    if any(named):
        raise InvalidArgument("instances mix named-input objects and plain values")
    name = _only_input(specs)
    return {name: to_array(payload, specs[name], name)}


def _only_input(specs: dict[str, np.dtype]) -> str:
    if len(specs) != 1:
        raise InvalidArgument(
            f"the signature has {len(specs)} inputs {sorted(specs)}: name them (objects in \"instances\" "
            f"or an object in \"inputs\")"
        )
    return next(iter(specs))


def _jsonable(name: str, arr: np.ndarray) -> Any:
    if arr.dtype != object:
        return arr
    if name.endswith("_bytes"):
        return _map_nested(arr.tolist(), lambda b: {"b64": base64.b64encode(b).decode()})
    return _map_nested(arr.tolist(), lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b)


def _map_nested(value: Any, fn) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def encode_predict_response(fmt: str, outputs: dict[str, np.ndarray]) -> dict:
    """`{"predictions": …}` (row format) or `{"outputs": …}` (columnar), as TF Serving answers."""
    if fmt == "columnar":
        if len(outputs) == 1:
            (name, arr), = outputs.items()
            return {"outputs": _jsonable(name, arr)}
        return {"outputs": {k: _jsonable(k, v) for k, v in outputs.items()}}
    batch = {v.shape[0] if v.ndim else None for v in outputs.values()}
    if len(batch) != 1 or None in batch:
        raise InvalidArgument(
            "row format needs every output to have the same batch size; use \"inputs\" (columnar) instead"
        )
    if len(outputs) == 1:
        (name, arr), = outputs.items()
        return {"predictions": _jsonable(name, arr)}
    converted = {k: _jsonable(k, v) for k, v in outputs.items()}
    n = batch.pop()
    return {"predictions": [{k: v[i] for k, v in converted.items()} for i in range(n)]}


def _feature(value: Any, name: str) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, (bool, int)) for v in values) and values:
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and values:
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v.encode())
        elif _is_b64(v):
            out.append(_b64(v, name))
        else:
            raise InvalidArgument(f"feature {name!r}: unsupported value {v!r}")
    return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=out))


def example_from_json(obj: Any, where: str) -> example_pb2.Example:
    """A JSON object of feature name → value(s) as a tf.Example."""
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{where} must be an object of feature names to values")
    ex = example_pb2.Example()
    for name, value in obj.items():
        ex.features.feature[name].CopyFrom(_feature(value, name))
    return ex


def decode_examples(body: dict) -> tuple[list[example_pb2.Example], example_pb2.Example | None]:
    """`examples` (and optional `context`) of a :classify / :regress request."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise InvalidArgument('JSON object: "examples" must be a non-empty list')
    context = example_from_json(body["context"], "context") if "context" in body else None
    return [example_from_json(e, f"example {i}") for i, e in enumerate(examples)], context
