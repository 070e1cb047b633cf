"""Property-based fuzzing of the codecs (Hypothesis): any TensorProto or JSON body either decodes or is refused
with INVALID_ARGUMENT, never another exception (which the transports would answer with 500 / INTERNAL), and never
after allocating what a tiny request declares."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.codecs import json_codec, tensor_codec
from serving.errors import InvalidArgument

# Derandomized: the suite sends the same examples every run (a red CI names a real regression, not a new draw);
# `python -m clients.bench.fuzz_apis --seed N` explores further.
pytestmark = pytest.mark.fuzz
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DIM = st.one_of(st.integers(0, 4), st.sampled_from([2**31, 2**40, 2**62, 2**63 - 1, 20000, 1 << 20]))
DTYPES = st.one_of(st.sampled_from(sorted(types_pb2.DataType.values())), st.integers(-5, 400))


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=draw(DTYPES))
    for size in draw(st.lists(DIM, max_size=6)):
        proto.tensor_shape.dim.add().size = size
    proto.tensor_shape.unknown_rank = draw(st.booleans()) and draw(st.booleans())
    kind = draw(st.sampled_from(["content", "float", "int", "string", "none"]))
    if kind == "content":
        proto.tensor_content = draw(st.binary(max_size=64))
    elif kind == "float":
        proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=8)))
    elif kind == "int":
        proto.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8)))
    elif kind == "string":
        proto.string_val.extend(draw(st.lists(st.binary(max_size=8), max_size=8)))
    return proto


@FUZZ
@given(tensor_protos())
def test_any_tensor_proto_decodes_or_is_invalid_argument_without_a_large_allocation(proto):
    try:
        array = tensor_codec.to_numpy(proto, "x")
    except InvalidArgument:
        return
    assert array.size <= max(tensor_codec.MAX_FILLED_ELEMENTS, 8)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
              st.fixed_dictionaries({"b64": st.one_of(st.text(max_size=8), st.integers())})),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=3), children,
                                                                                max_size=3)),
    max_leaves=30,
)
SPECS = st.sampled_from([{"x": np.dtype(np.float32)}, {"s": np.dtype(object)}, {"i": np.dtype(np.int64)},
                         {"a": np.dtype(np.float32), "b": np.dtype(object)}, {"flag": np.dtype(np.bool_)}])


@FUZZ
@given(st.sampled_from(["row", "columnar"]), JSON, SPECS)
def test_any_json_payload_decodes_or_is_invalid_argument(fmt, payload, specs):
    with contextlib.suppress(InvalidArgument):
        json_codec.decode_inputs(fmt, payload, specs)


def test_an_integer_beyond_the_dtypes_range_is_invalid_argument_naming_it():
    # orjson reads integers up to 2**64 - 1; json_tensor.cc refuses one an int64 input cannot hold as a TypeError
    with pytest.raises(InvalidArgument, match=r"^JSON Value: 9223372036854775808 Type: Number is not of expected "
                                              r"type: int64$"):
        json_codec.decode_inputs("row", [1, 9_223_372_036_854_775_808], {"i": np.dtype(np.int64)})


@pytest.mark.parametrize("depth", [65, 100, 500])
def test_json_nested_deeper_than_any_tensor_is_invalid_argument(depth):
    nested = "a"
    for _ in range(depth):
        nested = [nested]
    for dtype in (np.dtype(np.float32), np.dtype(object)):
        with pytest.raises(InvalidArgument):
            json_codec.decode_inputs("columnar", nested, {"x": dtype})


@pytest.mark.parametrize("dims", [[2**31, 2**40], [2**62, 2**63 - 1, 0], [2**63 - 1, 2]])
def test_shapes_past_int64_elements_are_tensor_parsing_errors_as_in_tf_serving(dims):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    with pytest.raises(InvalidArgument, match="^tensor parsing error: x$"):  # GetInputValues' message
        tensor_codec.to_numpy(proto, "x")
    zero_first = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in (0, *dims):
        zero_first.tensor_shape.dim.add().size = size
    with pytest.raises(InvalidArgument, match="cannot be held as an array"):  # valid for TF, too large for numpy
        tensor_codec.to_numpy(zero_first, "x")
