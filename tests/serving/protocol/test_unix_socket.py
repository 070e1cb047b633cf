"""`--grpc_socket_path`: a second gRPC listener on a Unix domain socket with every service of the TCP port (as
server.cc adds `unix:<path>`); the socket is the server's user's and group's only and is removed at shutdown."""

from __future__ import annotations

import os
import stat

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.serving.conftest import PROTOCOL_KINDS, install_version, start_server

pytestmark = pytest.mark.e2e


def predict_over(target: str) -> list[float]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0], [3.0]], dtype=tf.float32))
    with grpc.insecure_channel(target) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return list(reply.outputs["y"].float_val)


@pytest.mark.parametrize("kind", PROTOCOL_KINDS)
def test_the_unix_socket_serves_every_service_of_the_port(kind, tmp_path, half_plus_two_source):
    install_version(half_plus_two_source, tmp_path / "half_plus_two", 1)
    sock = tmp_path / "grpc.sock"
    args = ["--model_name=half_plus_two", f"--model_base_path={tmp_path / 'half_plus_two'}",
            f"--grpc_socket_path={sock}"]
    with start_server(kind, args, tmp_path) as server:
        server.wait_available("half_plus_two")
        assert predict_over(f"unix:{sock}") == predict_over(server.grpc_target) == [2.5, 3.5]
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "half_plus_two"}), timeout=30)
        assert [v.version for v in status.model_version_status] == [1]
        if kind != "tensorflow_model_server":
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    if kind != "tensorflow_model_server":
        assert not sock.exists()


def test_a_stale_socket_is_replaced_and_a_file_in_the_way_refused(tmp_path, half_plus_two_source):
    import socket

    install_version(half_plus_two_source, tmp_path / "half_plus_two", 1)
    sock = tmp_path / "grpc.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))  # left behind by a server that was killed
    stale.close()
    args = ["--model_name=half_plus_two", f"--model_base_path={tmp_path / 'half_plus_two'}",
            f"--grpc_socket_path={sock}"]
    with start_server("local", args, tmp_path) as server:
        server.wait_available("half_plus_two")
        assert predict_over(f"unix:{sock}") == [2.5, 3.5]
    sock.write_text("not a socket")
    server = start_server("local", args, tmp_path)
    assert server.wait_exit(120) == 255
    assert f"Failed to start server. Error: cannot serve gRPC on unix:{sock}: a file that is not a socket" \
        in server.log()
    assert sock.read_text() == "not a socket"


def test_the_socket_alone_is_enough(tmp_path, half_plus_two_source):
    install_version(half_plus_two_source, tmp_path / "half_plus_two", 1)
    sock = tmp_path / "grpc.sock"
    args = ["--model_name=half_plus_two", f"--model_base_path={tmp_path / 'half_plus_two'}",
            f"--grpc_socket_path={sock}", "--port=0"]
    with start_server("in-process", args, tmp_path) as server:
        server.wait_available("half_plus_two")
        assert predict_over(f"unix:{sock}") == [2.5, 3.5]
