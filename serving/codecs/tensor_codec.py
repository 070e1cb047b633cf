"""TensorProto ↔ numpy.

Decoding accepts both encodings (`tensor_content` bytes or the typed repeated fields). Encoding answers as TF
Serving does by default: the typed repeated fields (`float_val`, `int64_val`, `string_val`, …: Tensor::AsProtoField,
its `kAsProtoField` Predict serialization), so clients reading `outputs["scores"].float_val` work; `as_content=True`
packs numeric values into `tensor_content` (`--enable_serialization_as_tensor_content`, and our own requests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import InvalidArgument

_NUMPY_FOR_DTYPE = {
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_INT16: np.dtype(np.int16),
    types_pb2.DT_INT8: np.dtype(np.int8),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
    types_pb2.DT_UINT16: np.dtype(np.uint16),
    types_pb2.DT_HALF: np.dtype(np.float16),
    types_pb2.DT_UINT32: np.dtype(np.uint32),
    types_pb2.DT_UINT64: np.dtype(np.uint64),
    types_pb2.DT_STRING: np.dtype(object),
}
_DTYPE_FOR_NUMPY = {v: k for k, v in _NUMPY_FOR_DTYPE.items() if k != types_pb2.DT_STRING}

# Which repeated field holds the values of each dtype when tensor_content is empty.
_VAL_FIELD = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT16: "int_val", types_pb2.DT_INT64: "int64_val", types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val", types_pb2.DT_UINT32: "uint32_val", types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_STRING: "string_val",
}


# A TensorProto with one value (or none) for a larger shape is filled as TF's Tensor::FromProto does; the filled
# tensor may not exceed this many elements (1 Mi: 4 MiB of float32, 8 MiB of string references), so a request of
# a few dozen bytes cannot make the server allocate hundreds of MiB before its batch size is even checked (the
# real server fills any size: a deliberate difference).
MAX_FILLED_ELEMENTS = 1 << 20
MAX_DIMS = 64  # numpy's limit; TensorShape allows 254


_TF_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half", "object": "string"}


def tf_type_name(dtype: np.dtype) -> str:
    """TensorFlow's DataTypeString for a numpy dtype."""
    return _TF_TYPE_NAMES.get(dtype.name, dtype.name)


def dtype_name(dtype: int) -> str:
    """`DT_FLOAT` etc. for messages (the number for a value outside the enum)."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DataType({dtype})"


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype of a TF DataType, or INVALID_ARGUMENT when it is not supported."""
    try:
        return _NUMPY_FOR_DTYPE[dtype]
    except KeyError:
        raise InvalidArgument(f"unsupported tensor dtype {dtype_name(dtype)}") from None


INT64_MAX = 2**63 - 1


def _fits_tensor_shape(shape: tuple[int, ...]) -> bool:
    """TensorShape's rule: the element count, multiplied dimension by dimension in order, never passes int64's
    range (MultiplyWithoutOverflow; a 0 seen first keeps the product 0)."""
    count = 1
    for size in shape:
        count *= size
        if count > INT64_MAX:
            return False
    return True


def declared_rows(protos: Mapping[str, tensor_pb2.TensorProto]) -> int | None:
    """The 0th dimension every input's shape declares, read without decoding (None when the inputs disagree, one is
    a scalar, or a shape is one Tensor::FromProto refuses: then decoding answers first)."""
    rows = set()
    for proto in protos.values():
        shape = tuple(d.size for d in proto.tensor_shape.dim)
        if not shape or proto.tensor_shape.unknown_rank or min(shape) < 0 or not _fits_tensor_shape(shape):
            return None
        rows.add(shape[0])
    return rows.pop() if len(rows) == 1 else None


def to_numpy(proto: tensor_pb2.TensorProto, name: str = "") -> np.ndarray:
    """Decode a TensorProto (tensor_content or typed values; a single value is broadcast as TF does)."""
    dtype = numpy_dtype(proto.dtype)
    if proto.tensor_shape.unknown_rank:
        raise InvalidArgument(f"input {name!r}: tensor shape has unknown rank")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if any(s < 0 for s in shape):
        raise InvalidArgument(f"input {name!r}: negative dimension in shape {list(shape)}")
    if len(shape) > MAX_DIMS:
        raise InvalidArgument(f"input {name!r}: {len(shape)} dimensions, at most {MAX_DIMS} are supported")
    if not _fits_tensor_shape(shape):  # Tensor::FromProto refuses it: GetInputValues' message
        raise InvalidArgument(f"tensor parsing error: {name}")
    count = math.prod(shape)  # exact Python ints (np.prod costs ~20 µs per request here)
    if proto.tensor_content and proto.dtype != types_pb2.DT_STRING:
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise InvalidArgument(
                f"input {name!r}: tensor_content has {len(proto.tensor_content)} bytes, shape {list(shape)} of "
                f"{dtype_name(proto.dtype)} needs {count * dtype.itemsize}"
            )
        try:
            return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
        except ValueError as e:
            raise InvalidArgument(f"input {name!r}: shape {list(shape)} cannot be held as an array ({e})") from e
    values = getattr(proto, _VAL_FIELD[proto.dtype])
    if len(values) != count:
        if len(values) > 1:
            raise InvalidArgument(f"input {name!r}: {len(values)} values do not fill shape {list(shape)}")
        if count > MAX_FILLED_ELEMENTS:
            raise InvalidArgument(f"input {name!r}: shape {list(shape)} declares {count} elements but the request "
                                  f"carries {len(values)} value(s); filling more than {MAX_FILLED_ELEMENTS} is refused")
    if proto.dtype == types_pb2.DT_STRING:
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    elif proto.dtype == types_pb2.DT_HALF:
        arr = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        arr = np.asarray(values, dtype=dtype)
    try:
        if len(arr) == count:
            return arr.reshape(shape)
        if len(arr) == 1:  # the only other cases the check above lets through: one value or none, filled
            return np.full(shape, arr[0], dtype=dtype)
        return np.zeros(shape, dtype=dtype) if proto.dtype != types_pb2.DT_STRING else np.full(shape, b"", object)
    except (ValueError, MemoryError) as e:  # a valid TensorShape (e.g. with a 0) beyond what an array can index
        raise InvalidArgument(f"input {name!r}: shape {list(shape)} cannot be held as an array ({e})") from e


def from_numpy(array: np.ndarray, as_content: bool = False) -> tensor_pb2.TensorProto:
    """Encode a numpy array: typed repeated fields (AsProtoField) or, with `as_content`, numeric values as
    `tensor_content` bytes (AsProtoTensorContent; strings always go to `string_val`)."""
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    dims = proto.tensor_shape.dim
    for s in array.shape:
        dims.add().size = s
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1))
        return proto
    try:
        proto.dtype = _DTYPE_FOR_NUMPY[array.dtype]
    except KeyError:
        raise InvalidArgument(f"cannot encode numpy dtype {array.dtype}") from None
    if as_content:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
        return proto
    flat = array.reshape(-1)
    if proto.dtype == types_pb2.DT_HALF:
        flat = flat.view(np.uint16)  # half_val holds the raw 16 bits in an int32 field
    getattr(proto, _VAL_FIELD[proto.dtype]).extend(flat.tolist())
    return proto
