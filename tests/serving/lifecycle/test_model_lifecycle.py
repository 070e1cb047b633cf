"""Hot reload, broken versions, labels, config reload and graceful shutdown, against a running server."""

import shutil
import signal
import threading
import time

import grpc
import numpy as np
import pytest
import requests
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tests.serving.conftest import CONFIGS, METRICS_PATH, install_version, metric, start_server, write_predict_warmup

pytestmark = pytest.mark.e2e
MONITORING = CONFIGS / "monitoring.config"
FAST_POLL = ["--file_system_poll_wait_seconds=1", "--max_num_load_retries=1", "--load_retry_interval_micros=100000"]


def versions(server, model="half_plus_two"):
    r = requests.get(f"{server.rest}/v1/models/{model}", timeout=10)
    return {int(s["version"]): s for s in r.json()["model_version_status"]} if r.ok else {}


def predict_version(server, model="half_plus_two"):
    r = requests.post(f"{server.rest}/v1/models/{model}:predict", json={"inputs": [1.0]}, timeout=10)
    r.raise_for_status()
    return r.json()


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


class Hammer:
    """Sends predicts in a loop from a thread and records every failure."""

    def __init__(self, server):
        self.server, self.failures, self.count = server, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                r = requests.post(f"{self.server.rest}/v1/models/half_plus_two:predict", json={"instances": [1.0]},
                                  timeout=10)
                if r.status_code != 200:
                    self.failures.append(r.text)
            except requests.RequestException as e:
                self.failures.append(str(e))
            self.count += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture
def repo(tmp_path, half_plus_two_source):
    base = tmp_path / "half_plus_two"
    install_version(half_plus_two_source, base, 1)
    return base


def test_hot_reload_new_version_replaces_old_without_failures(server_kind, repo, tmp_path, half_plus_two_source):
    with start_server(server_kind, ["--model_name=half_plus_two", f"--model_base_path={repo}", *FAST_POLL],
                      tmp_path) as server:
        server.wait_available("half_plus_two")
        with Hammer(server) as hammer:
            install_version(half_plus_two_source, repo, 2)
            wait_for(lambda: versions(server).get(1, {}).get("state") == "END", what="version 1 unloaded")
            assert versions(server)[2]["state"] == "AVAILABLE"
        assert hammer.count > 0 and hammer.failures == []


def test_broken_new_versions_never_replace_the_serving_one(server_kind, repo, tmp_path, half_plus_two_source):
    with start_server(server_kind, ["--model_name=half_plus_two", f"--model_base_path={repo}", *FAST_POLL],
                      tmp_path) as server:
        server.wait_available("half_plus_two")
        # Version 2: corrupt saved_model.pb.
        broken = tmp_path / "broken"
        shutil.copytree(half_plus_two_source, broken)
        (broken / "saved_model.pb").write_bytes(b"this is not a protobuf")
        install_version(broken, repo, 2)
        wait_for(lambda: versions(server).get(2, {}).get("state") == "END", what="version 2 failed")
        status = versions(server)
        assert status[2]["status"]["error_code"] != "OK" and status[2]["status"]["error_message"]
        assert status[1]["state"] == "AVAILABLE"
        # Version 3: a warmup request that fails (wrong input name).
        bad_warmup = tmp_path / "bad-warmup"
        shutil.copytree(half_plus_two_source, bad_warmup)
        write_predict_warmup(bad_warmup, "half_plus_two", {"not_an_input": [1.0]})
        install_version(bad_warmup, repo, 3)
        wait_for(lambda: versions(server).get(3, {}).get("state") == "END", what="version 3 failed warmup")
        assert versions(server)[1]["state"] == "AVAILABLE"
        assert predict_version(server) == {"outputs": [2.5]}


def _config(base, labels=None, versions_=(1, 2)):
    config = model_server_config_pb2.ModelServerConfig()
    m = config.model_config_list.config.add()
    m.name, m.base_path, m.model_platform = "half_plus_two", str(base), "tensorflow"
    m.model_version_policy.specific.versions.extend(versions_)
    for k, v in (labels or {}).items():
        m.version_labels[k] = v
    return config


def test_config_reload_by_rpc_and_labels(server_kind, repo, tmp_path, half_plus_two_source):
    from google.protobuf import text_format

    install_version(half_plus_two_source, repo, 2)
    cfg = tmp_path / "models.config"
    cfg.write_text(text_format.MessageToString(_config(repo, {"stable": 1}, versions_=(1,))))
    # Labels in the startup config need the flag (tensorflow_model_server checks labels before loading anything).
    with start_server(server_kind, [f"--model_config_file={cfg}", "--allow_version_labels_for_unavailable_models",
                                    *FAST_POLL], tmp_path) as server, grpc.insecure_channel(server.grpc_target) as ch:
        server.wait_available("half_plus_two")
        assert set(versions(server)) == {1}
        stub = model_service_pb2_grpc.ModelServiceStub(ch)
        req = model_management_pb2.ReloadConfigRequest(config=_config(repo, {"stable": 1, "canary": 2}))
        resp = stub.HandleReloadConfigRequest(req, timeout=60)
        assert resp.status.error_code == 0 and resp.status.error_message == ""
        assert versions(server)[2]["state"] == "AVAILABLE"
        r = requests.get(f"{server.rest}/v1/models/half_plus_two/labels/canary", timeout=10).json()
        assert r["model_version_status"][0]["version"] == "2"
        # An existing label may only move to an AVAILABLE version, even with the flag.
        bad = model_management_pb2.ReloadConfigRequest(config=_config(repo, {"stable": 7}))
        with pytest.raises(grpc.RpcError) as e:
            stub.HandleReloadConfigRequest(bad, timeout=60)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_config_file_poll_adds_a_model(server_kind, repo, tmp_path, half_plus_two_source):
    from google.protobuf import text_format

    cfg = tmp_path / "models.config"
    cfg.write_text(text_format.MessageToString(_config(repo, versions_=(1,))))
    with start_server(server_kind, [f"--model_config_file={cfg}", "--model_config_file_poll_wait_seconds=1",
                                    *FAST_POLL], tmp_path) as server:
        server.wait_available("half_plus_two")
        other = tmp_path / "other"
        install_version(half_plus_two_source, other, 5)
        config = _config(repo, versions_=(1,))
        m = config.model_config_list.config.add()
        m.name, m.base_path, m.model_platform = "other", str(other), "tensorflow"
        cfg.write_text(text_format.MessageToString(config))
        server.wait_available("other", timeout=60)
        assert predict_version(server, "other") == {"outputs": [2.5]}


def test_sigterm_finishes_in_flight_requests_and_exits_0(server_kind, repo, tmp_path):
    """The local server drains: requests whose bodies are still uploading when SIGTERM arrives are answered, then it
    exits 0. tensorflow_model_server has no SIGTERM handler (tensorflow/serving#1853): the signal ends it at once and
    the same requests fail (in Kubernetes the preStop sleep keeps new traffic away before the signal)."""
    release = threading.Event()
    results = []

    def slow_body():
        yield b'{"inputs": [1.0, '
        release.wait(60)  # the rest of the body only once SIGTERM has been delivered
        yield b"2.0]}"

    def in_flight_request():
        try:
            r = requests.post(f"{server.rest}/v1/models/half_plus_two:predict", data=slow_body(), timeout=60)
            results.append((r.status_code, r.json()))
        except requests.RequestException as e:
            results.append(type(e).__name__)

    with start_server(server_kind, ["--model_name=half_plus_two", f"--model_base_path={repo}"], tmp_path) as server:
        server.wait_available("half_plus_two")
        threads = [threading.Thread(target=in_flight_request) for _ in range(3)]
        for t in threads:
            t.start()
        server.wait_connections(3)  # all three requests accepted by the server, bodies incomplete
        server.proc.send_signal(signal.SIGTERM)
        if server.kind == "local":
            wait_for(lambda: "shutting down" in server.log(), what="the drain to start")
        release.set()
        for t in threads:
            t.join()
        code = server.wait_exit(60)
    assert code == server.sigterm_exit_code
    if server.kind == "local":
        assert results == [(200, {"outputs": [2.5, 3.0]})] * 3
    else:
        assert len(results) == 3 and all(isinstance(r, str) for r in results), results
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.rest}/v1/models/half_plus_two", timeout=5)


def queued_inputs(server) -> float:
    """Inputs the batching session has accepted into its queue (TF Serving records each at scheduling time)."""
    text = requests.get(server.rest + METRICS_PATH, timeout=10).text
    return metric(text, ":tensorflow:serving:batching_session:input_batch_size_count")


def test_sigterm_answers_a_grpc_request_still_waiting_in_the_batch_queue(server_kind, repo, tmp_path):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving.codecs.tensor_codec import from_numpy, to_numpy

    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1500000 }\n")
    args = ["--model_name=half_plus_two", f"--model_base_path={repo}", "--enable_batching",
            f"--batching_parameters_file={batching}", f"--monitoring_config_file={MONITORING}"]
    with start_server(server_kind, args, tmp_path) as server, grpc.insecure_channel(server.grpc_target) as channel:
        server.wait_available("half_plus_two")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(from_numpy(np.asarray([4.0], np.float32)))
        before = queued_inputs(server)
        pending = stub.Predict.future(request, timeout=30)
        wait_for(lambda: queued_inputs(server) > before, what="the request in the batch queue")
        code = server.stop()  # the batch would close only 1.5 s after the request arrived
        if server.kind == "local":
            assert to_numpy(pending.result().outputs["y"], "y").tolist() == [4.0]
        else:
            with pytest.raises(grpc.RpcError) as e:
                pending.result()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert code == server.sigterm_exit_code


@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_sigterm_right_after_a_burst_answers_every_grpc_call(repo, tmp_path, delay):
    """32 batched calls sent just before SIGTERM: grpc.aio's stop() cancels calls that reached the server but no
    handler yet (before: 96 of 128 CANCELLED at delay 0, 46 at 5 ms); every one must be answered OK."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving.codecs.tensor_codec import from_numpy

    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 300000 }\n"
                        "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 100 }\n")
    with start_server("local", ["--model_name=half_plus_two", f"--model_base_path={repo}", "--enable_batching",
                                f"--batching_parameters_file={batching}"], tmp_path) as server, \
            grpc.insecure_channel(server.grpc_target) as channel:
        server.wait_available("half_plus_two")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(from_numpy(np.asarray([1.0], np.float32)))
        stub.Predict(request, timeout=30)
        calls = [stub.Predict.future(request, timeout=30) for _ in range(32)]
        time.sleep(delay)  # the scenario: SIGTERM 0 or 10 ms after the burst was sent
        assert server.stop() == 0
        codes = []
        for call in calls:
            try:
                call.result()
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
    assert codes == ["OK"] * 32


def test_reload_rpc_empty_config_is_no_action_and_operators_can_restrict_it(repo, tmp_path):
    """An empty ReloadConfigRequest changes nothing (ServerCore: "Taking no action for empty config"); the local
    server can refuse the RPC or confine base paths to a root (the RPC is unauthenticated in TF Serving)."""
    outside = tmp_path / "elsewhere" / "half_plus_two"
    with start_server("local", ["--model_name=half_plus_two", f"--model_base_path={repo}",
                                f"--model_base_path_root={repo}", *FAST_POLL], tmp_path) as server, \
            grpc.insecure_channel(server.grpc_target) as channel:
        server.wait_available("half_plus_two")
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        reply = stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=60)
        assert reply.status.error_code == 0 and reply.status.error_message == ""
        assert versions(server)[1]["state"] == "AVAILABLE"  # not unloaded
        with pytest.raises(grpc.RpcError) as e:
            stub.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=_config(outside, {})), timeout=60)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "--model_base_path_root" in e.value.details()
        assert versions(server)[1]["state"] == "AVAILABLE"
    with start_server("local", ["--model_name=half_plus_two", f"--model_base_path={repo}",
                                "--disable_reload_config_rpc", *FAST_POLL], tmp_path) as server, \
            grpc.insecure_channel(server.grpc_target) as channel:
        server.wait_available("half_plus_two")
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=_config(repo, {})),
                                           timeout=60)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_broken_version_retrying_does_not_stall_new_versions_or_reloads(repo, tmp_path, half_plus_two_source):
    """With the default retry flags (5 retries, 60 s apart) a corrupt version retries on its own worker: its error
    shows in the status at once, a good version published after it loads, and a reload RPC answers meanwhile.
    (Before: the retries ran on the poll thread under one lock, so the model stalled for minutes.)"""
    with start_server("local", ["--model_name=half_plus_two", f"--model_base_path={repo}"], tmp_path) as server, \
            grpc.insecure_channel(server.grpc_target) as channel:
        server.wait_available("half_plus_two")
        (repo / ".incoming").mkdir()
        (repo / ".incoming" / "saved_model.pb").write_bytes(b"\x0a\xff\xff garbage")
        (repo / ".incoming").rename(repo / "2")
        wait_for(lambda: "as binary proto" in versions(server).get(2, {}).get("status", {}).get("error_message", ""),
                 timeout=20, what="version 2's load error in its status")
        install_version(half_plus_two_source, repo, 3)
        wait_for(lambda: versions(server).get(3, {}).get("state") == "AVAILABLE", timeout=30, what="version 3")
        assert predict_version(server) == {"outputs": [2.5]}
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        reply = stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=60)
        assert reply.status.error_code == 0
        # Answered while version 2 is still between its retries (60 s apart), not after them.
        assert versions(server)[2]["state"] != "END"


def test_sigterm_drain_is_bounded_and_says_what_it_cut(repo, tmp_path):
    """A client trickling its body must not hold the exit for minutes (before: 87 s): --shutdown_grace_seconds."""
    import socket

    with start_server("local", ["--model_name=half_plus_two", f"--model_base_path={repo}",
                                "--rest_api_timeout_in_ms=120000", "--shutdown_grace_seconds=2"], tmp_path) as server:
        server.wait_available("half_plus_two")
        with socket.create_connection(("127.0.0.1", server.rest_port)) as slow:
            slow.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            server.wait_connections(1)
            # The request would keep the server for 120 s; stop() gives it 30 s before it reports a hang.
            assert server.stop(timeout=30) == 0
        assert "still running after --shutdown_grace_seconds=2 are cut" in server.log()
