"""Hostile input never takes the server down nor gets a 5xx/INTERNAL/UNKNOWN (issue 14, items 3 and 7–8).

Each case was reproduced against the earlier server: a 40-byte PredictRequest declaring a 1e9-element tensor made it
allocate the declared size; an unknown dtype enum or an unparseable message answered INTERNAL/UNKNOWN; a small gzip
bomb inflated fully before failing; a body over the size limit answered 500; every made-up model name became a
Prometheus label value.
"""

from __future__ import annotations

import contextlib
import gzip

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.codecs import tensor_codec
from serving.errors import InvalidArgument, PayloadTooLarge
from serving.protocol.rest_api import _decompress
from tests.serving.conftest import CONFIGS, install_version, start_server


def test_a_declared_shape_without_values_is_refused_before_allocating():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    proto.tensor_shape.dim.add().size = 1_000_000_000
    with pytest.raises(InvalidArgument, match=r"input 'image_bytes': shape \[1000000000\] declares 1000000000 "):
        tensor_codec.to_numpy(proto, "image_bytes")
    small = tf.make_tensor_proto(1.5, shape=[2, 3])  # TF's own fill of one value stays allowed
    assert tensor_codec.to_numpy(small, "x").tolist() == [[1.5] * 3] * 2


def test_unknown_dtype_and_too_many_dimensions_are_invalid_argument():
    with pytest.raises(InvalidArgument, match=r"unsupported tensor dtype DataType\(999\)"):
        tensor_codec.to_numpy(tensor_pb2.TensorProto(dtype=999), "x")
    deep = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for _ in range(70):
        deep.tensor_shape.dim.add().size = 1
    with pytest.raises(InvalidArgument, match="70 dimensions"):
        tensor_codec.to_numpy(deep, "x")


def test_a_gzip_bomb_stops_inflating_at_the_limit():
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in ~8 KB
    assert len(bomb) < 64 << 10
    with pytest.raises(PayloadTooLarge, match="inflates beyond the limit of 1048576 bytes") as e:
        _decompress(bomb, "gzip", 1 << 20)
    assert e.value.http_status == 413 and e.value.code == "INVALID_ARGUMENT"
    assert _decompress(gzip.compress(b'{"instances": [1]}'), "gzip", 1 << 20) == b'{"instances": [1]}'
    with pytest.raises(InvalidArgument, match="truncated"):
        _decompress(bomb[:100], "gzip", 1 << 20)


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory, half_plus_two_source):
    root = tmp_path_factory.mktemp("hostile")
    install_version(half_plus_two_source, root / "half_plus_two", 1)
    with start_server("local", ["--model_name=half_plus_two", f"--model_base_path={root / 'half_plus_two'}",
                                "--rest_api_max_body_bytes=4096",
                                "--grpc_channel_arguments=grpc.max_receive_message_length=100000",
                                f"--monitoring_config_file={CONFIGS / 'monitoring.config'}"], root) as server:
        server.wait_available("half_plus_two")
        yield server


@pytest.mark.e2e
def test_rest_limits_and_nesting_answer_4xx_and_the_server_keeps_serving(small_limit_server):
    url = f"{small_limit_server.rest}/v1/models/half_plus_two:predict"
    big = requests.post(url, data=b'{"instances": [' + b"1.0," * 2000 + b"1.0]}", timeout=30)
    assert big.status_code == 413 and "--rest_api_max_body_bytes" in big.json()["error"]
    bomb = requests.post(url, data=gzip.compress(b" " * 100_000), headers={"Content-Encoding": "gzip"}, timeout=30)
    assert bomb.status_code == 413
    nested = requests.post(url, data=b'{"instances": ' + b"[" * 100 + b"1.0" + b"]" * 100 + b"}", timeout=30)
    assert nested.status_code == 400, nested.text
    very_nested = requests.post(url, data=b'{"instances": ' + b"[" * 1500 + b"]" * 1500 + b"}", timeout=30)
    assert very_nested.status_code == 400, very_nested.text
    ok = requests.post(url, json={"instances": [1.0]}, timeout=30)
    assert ok.json() == {"predictions": [2.5]}


@pytest.mark.e2e
def test_grpc_hostile_messages_are_invalid_argument_and_the_server_keeps_serving(small_limit_server):
    with grpc.insecure_channel(small_limit_server.grpc_target) as channel:
        raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                  request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\x0a\xff\xff\xff\xff garbage", timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Could not parse the request as tensorflow.serving.PredictRequest" in e.value.details()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "half_plus_two"
        req.inputs["x"].dtype = types_pb2.DT_FLOAT
        req.inputs["x"].tensor_shape.dim.add().size = 1_000_000_000
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "input 'x'" in e.value.details()
        req.inputs["x"].dtype = 999
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        big = predict_pb2.PredictRequest()
        big.model_spec.name = "half_plus_two"
        big.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones(50_000, np.float32)))  # 200 KB > the 100 KB limit
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(big, timeout=30)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        good = predict_pb2.PredictRequest()
        good.model_spec.name = "half_plus_two"
        good.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([2.0], np.float32)))
        assert list(stub.Predict(good, timeout=30).outputs["y"].float_val) == [3.0]
    from serving.protocol.grpc_api import DEFAULT_MAX_RECEIVE_BYTES, MAX_MESSAGE_BYTES

    assert DEFAULT_MAX_RECEIVE_BYTES == 256 << 20 < MAX_MESSAGE_BYTES  # the local default, below TF Serving's 2 GiB


@pytest.mark.e2e
def test_made_up_model_names_do_not_become_metric_labels(small_limit_server):
    for i in range(20):
        requests.post(f"{small_limit_server.rest}/v1/models/nope{i}:predict", json={"instances": [1]}, timeout=30)
    page = requests.get(f"{small_limit_server.rest}/monitoring/prometheus/metrics", timeout=30).text
    assert "nope" not in page
    assert 'model_name="(unknown model)",status="NOT_FOUND"' in page


def test_grpc_channel_arguments_parse_as_tensorflow_model_server_reads_them():
    from serving.protocol.grpc_api import parse_channel_arguments

    assert parse_channel_arguments("grpc.max_connection_idle_ms=1000, grpc.primary_user_agent=x") == {
        "grpc.max_connection_idle_ms": 1000, "grpc.primary_user_agent": "x"}
    assert parse_channel_arguments("") == {}
    with pytest.raises(InvalidArgument, match="expected key=value"):
        parse_channel_arguments("grpc.max_connection_idle_ms")


@pytest.mark.e2e
def test_idle_and_slow_rest_clients_are_cut_off_while_others_are_served(tmp_path, half_plus_two_source):
    import socket

    install_version(half_plus_two_source, tmp_path / "half_plus_two", 1)
    with contextlib.ExitStack() as stack, \
            start_server("local", ["--model_name=half_plus_two", f"--model_base_path={tmp_path / 'half_plus_two'}",
                                "--rest_api_idle_timeout_seconds=1", "--rest_api_timeout_in_ms=1500",
                                "--grpc_channel_arguments=grpc.max_connection_idle_ms=2000"], tmp_path) as server:
        server.wait_available("half_plus_two")
        idle = stack.enter_context(socket.create_connection(("127.0.0.1", server.rest_port)))
        slow = stack.enter_context(socket.create_connection(("127.0.0.1", server.rest_port)))
        slow.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        # Without the server's limits both sockets would stay open: recv() then raises socket.timeout after 30 s.
        for s in (idle, slow):
            s.settimeout(30)
        ok = requests.post(f"{server.rest}/v1/models/half_plus_two:predict", json={"instances": [1.0]}, timeout=10)
        assert ok.json() == {"predictions": [2.5]}
        assert idle.recv(100) == b""  # closed by the server (idle timeout)
        answer = slow.recv(200)
        assert answer.startswith(b"HTTP/1.1 408"), answer  # answered by the server (request timeout)
