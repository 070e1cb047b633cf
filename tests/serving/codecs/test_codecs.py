"""Tensor (proto) and JSON codecs."""

import base64

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.codecs import json_codec, tensor_codec
from serving.errors import InvalidArgument


@pytest.mark.parametrize("arr", [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, -2], np.int64), np.array([[True, False]]),
    np.array([1.5], np.float64), np.arange(6, dtype=np.uint8).reshape(2, 3), np.float16([0.5, 2.0]),
])
def test_numeric_round_trip_and_tf_compatibility(arr):
    for as_content in (False, True):
        proto = tensor_codec.from_numpy(arr, as_content=as_content)
        assert bool(proto.tensor_content) == as_content
        np.testing.assert_array_equal(tensor_codec.to_numpy(proto), arr)
        np.testing.assert_array_equal(tf.make_ndarray(proto), arr)  # what TF clients decode
    np.testing.assert_array_equal(tensor_codec.to_numpy(tf.make_tensor_proto(arr)), arr)


def test_responses_use_the_typed_fields_as_tf_servings_as_proto_field():
    """TF Serving's default Predict serialization (kAsProtoField): clients read `float_val`, `int64_val`, …"""
    assert list(tensor_codec.from_numpy(np.array([[0.5, 0.25]], np.float32)).float_val) == [0.5, 0.25]
    assert list(tensor_codec.from_numpy(np.array([7, 8], np.int64)).int64_val) == [7, 8]
    assert list(tensor_codec.from_numpy(np.array([3], np.int32)).int_val) == [3]
    assert list(tensor_codec.from_numpy(np.array([2.5], np.float64)).double_val) == [2.5]
    assert list(tensor_codec.from_numpy(np.array([True])).bool_val) == [True]
    assert list(tensor_codec.from_numpy(np.float16([1.0])).half_val) == [0x3C00]  # raw IEEE half bits
    assert list(tensor_codec.from_numpy(np.array([b"cat"], dtype=object)).string_val) == [b"cat"]


def test_strings_round_trip():
    arr = np.array([b"a", b"\xff\x00"], dtype=object)
    proto = tensor_codec.from_numpy(arr)
    assert list(tf.make_ndarray(proto)) == [b"a", b"\xff\x00"]
    assert list(tensor_codec.to_numpy(tf.make_tensor_proto([b"x", b"y"]))) == [b"x", b"y"]


def test_typed_values_and_broadcast():
    p = tf.make_tensor_proto(3.0, shape=[2, 2])  # one value filling the shape
    np.testing.assert_array_equal(tensor_codec.to_numpy(p), np.full((2, 2), 3.0, np.float32))
    from tensorflow.core.framework import tensor_pb2, types_pb2

    p = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1, 2, 3])
    p.tensor_shape.dim.add(size=2)
    with pytest.raises(InvalidArgument, match="do not fill"):
        tensor_codec.to_numpy(p, "x")
    p = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00" * 7)
    p.tensor_shape.dim.add(size=2)
    with pytest.raises(InvalidArgument, match="tensor_content has 7 bytes"):
        tensor_codec.to_numpy(p, "x")


def test_row_format_single_and_named_inputs():
    f32 = np.dtype(np.float32)
    assert json_codec.decode_inputs("row", [[1, 2], [3, 4]], {"x": f32})["x"].shape == (2, 2)
    out = json_codec.decode_inputs("row", [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}], {"a": f32, "b": f32})
    assert out["a"].tolist() == [1, 2] and out["b"].shape == (2, 2)
    with pytest.raises(InvalidArgument, match="instance 1 has inputs"):
        json_codec.decode_inputs("row", [{"a": 1, "b": 1}, {"a": 2}], {"a": f32, "b": f32})
    with pytest.raises(InvalidArgument, match="2 inputs"):
        json_codec.decode_inputs("row", [1, 2], {"a": f32, "b": f32})
    with pytest.raises(InvalidArgument):
        json_codec.decode_inputs("row", [[1, 2], [3]], {"x": f32})


def test_strings_b64_and_ragged_strings():
    obj = np.dtype(object)
    enc = base64.b64encode(b"\x00\x01").decode()
    arr = json_codec.decode_inputs("columnar", [{"b64": enc}, "plain"], {"s": obj})["s"]
    assert arr.tolist() == [b"\x00\x01", b"plain"]
    single = json_codec.decode_inputs("columnar", {"b64": enc}, {"s": obj})["s"]
    assert single.shape == () and single[()] == b"\x00\x01"
    # json_tensor.cc's FillTensorProto messages for ragged lists
    with pytest.raises(InvalidArgument, match="^Encountered list at unexpected size: 2 at level: 1 expected size: 1$"):
        json_codec.decode_inputs("columnar", [["a"], ["b", "c"]], {"s": obj})
    with pytest.raises(InvalidArgument, match="^Encountered list at unexpected level: 1 expected < 1$"):
        json_codec.decode_inputs("columnar", [1.0, [2.0]], {"s": np.dtype(np.float32)})
    with pytest.raises(InvalidArgument, match=r"^JSON Value: 2.0 found at incorrect level: 2 in the JSON DOM\. "
                                              r"Expected at level: 2$"):
        json_codec.decode_inputs("columnar", [[1.0], 2.0], {"s": np.dtype(np.float32)})
    with pytest.raises(InvalidArgument, match="base64"):
        json_codec.decode_inputs("columnar", [{"b64": "***"}], {"s": obj})


def test_response_formats():
    out = {"y": np.float32([1.5, 2.0])}
    assert json_codec.loads(json_codec.dumps(json_codec.encode_predict_response("row", out))) == {
        "predictions": [1.5, 2.0]}
    multi = {"a": np.int64([1, 2]), "name_bytes": np.array([b"\x00", b"z"], object), "label": np.array([b"x", b"y"],
                                                                                                         object)}
    rows = json_codec.loads(json_codec.dumps(json_codec.encode_predict_response("row", multi)))["predictions"]
    assert rows[0] == {"a": 1, "name_bytes": {"b64": "AA=="}, "label": "x"}
    cols = json_codec.loads(json_codec.dumps(json_codec.encode_predict_response("columnar", multi)))["outputs"]
    assert cols["label"] == ["x", "y"]
    with pytest.raises(InvalidArgument, match="same batch size"):
        json_codec.encode_predict_response("row", {"a": np.zeros(2), "b": np.zeros(3)})


def test_examples_feature_types():
    examples, context = json_codec.decode_examples(
        {"context": {"c": "s"}, "examples": [{"i": 3, "f": [1.5, 2], "b": {"b64": "AAE="}}]})
    feat = examples[0].features.feature
    assert list(feat["i"].int64_list.value) == [3]
    assert list(feat["f"].float_list.value) == [1.5, 2.0]
    assert list(feat["b"].bytes_list.value) == [b"\x00\x01"]
    assert list(context.features.feature["c"].bytes_list.value) == [b"s"]


def test_declared_rows_reads_the_common_0th_dimension_without_decoding():
    def proto(*dims):
        p = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
        for d in dims:
            p.tensor_shape.dim.add().size = d
        p.float_val.append(1.0)
        return p

    assert tensor_codec.declared_rows({"a": proto(20000, 32, 32, 3), "b": proto(20000)}) == 20000
    assert tensor_codec.declared_rows({"a": proto(2, 3), "b": proto(3)}) is None  # they disagree
    assert tensor_codec.declared_rows({"a": proto()}) is None  # a scalar has no rows
    assert tensor_codec.declared_rows({"a": proto(2**62, 2**62)}) is None  # FromProto refuses it first
    assert tensor_codec.declared_rows({"a": proto(-1, 3)}) is None
    assert tensor_codec.declared_rows({}) is None
