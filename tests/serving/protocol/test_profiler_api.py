"""TensorFlow's ProfilerService on the gRPC port (`--enable_profiler`, default on, as in tensorflow_model_server):
TensorBoard's profiler client collects a trace of the serving process under load."""

from __future__ import annotations

import threading

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from serving.protos import profiler_service_pb2 as pb
from tests.serving.conftest import install_version, start_server

pytestmark = pytest.mark.e2e


def serve(tmp_path, half_plus_two_source, *extra):
    install_version(half_plus_two_source, tmp_path / "half_plus_two", 1)
    return start_server("in-process", ["--model_name=half_plus_two",
                                       f"--model_base_path={tmp_path / 'half_plus_two'}", *extra], tmp_path)


def profile(target: str, request: pb.ProfileRequest) -> pb.ProfileResponse:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/tensorflow.ProfilerService/Profile",
                                   request_serializer=pb.ProfileRequest.SerializeToString,
                                   response_deserializer=pb.ProfileResponse.FromString)
        return call(request, timeout=60)


def test_tensorboards_profiler_client_collects_a_trace_of_the_server_under_load(tmp_path, half_plus_two_source):
    with serve(tmp_path, half_plus_two_source) as server:
        server.wait_available("half_plus_two")
        done = threading.Event()

        def load():
            while not done.is_set():
                requests.post(f"{server.rest}/v1/models/half_plus_two:predict", json={"instances": [1.0]}, timeout=30)

        thread = threading.Thread(target=load)
        thread.start()
        try:
            tf.profiler.experimental.client.trace(server.grpc_target, str(tmp_path / "logs"), 500, "", 5)
        finally:
            done.set()
            thread.join()
    traces = list((tmp_path / "logs" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1
    space = xplane_pb2.XSpace.FromString(traces[0].read_bytes())
    host = next(p for p in space.planes if p.name == "/host:CPU")
    names = {host.event_metadata[e.metadata_id].name for line in host.lines for e in line.events}
    assert "SessionRun" in names  # the model's Session runs, as TensorBoard's trace viewer shows them


def test_a_request_without_a_repository_is_invalid_and_the_server_keeps_serving(tmp_path, half_plus_two_source):
    with serve(tmp_path, half_plus_two_source) as server:
        server.wait_available("half_plus_two")
        for bad in (pb.ProfileRequest(duration_ms=10, session_id="s"),
                    pb.ProfileRequest(duration_ms=10, repository_root=str(tmp_path), session_id="../x")):
            with pytest.raises(grpc.RpcError) as e:
                profile(server.grpc_target, bad)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reply = profile(server.grpc_target, pb.ProfileRequest(duration_ms=10, repository_root=str(tmp_path / "r"),
                                                              session_id="s", host_name="h", emit_xspace=True))
        assert (tmp_path / "r" / "s" / "h.xplane.pb").read_bytes() == reply.xspace


def test_with_the_profiler_disabled_the_service_is_absent(tmp_path, half_plus_two_source):
    with serve(tmp_path, half_plus_two_source, "--enable_profiler=false") as server:
        server.wait_available("half_plus_two")
        with pytest.raises(grpc.RpcError) as e:
            profile(server.grpc_target, pb.ProfileRequest(duration_ms=10, repository_root=str(tmp_path),
                                                          session_id="s"))
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
