"""Prometheus metrics on the REST port with TF Serving's names and labels; batching observed end to end."""

import re
import threading

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import CONFIGS, METRICS_PATH, install_version, metric, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["batching", "no-batching"])
def server(request, server_kind, tmp_path, half_plus_two_source):
    base = tmp_path / "half_plus_two"
    install_version(half_plus_two_source, base, 1)
    # A batch closes as soon as it holds 8 rows: 8 concurrent one-row requests make exactly one batch, a request of 8
    # instances one batch by itself (the 2 s timeout only closes the warmup's batch of 2 rows).
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 2000000 } "
                        "num_batch_threads { value: 1 } max_enqueued_batches { value: 100 }")
    args = ["--model_name=half_plus_two", f"--model_base_path={base}",
            f"--monitoring_config_file={CONFIGS / 'monitoring.config'}"]
    if request.param == "batching":
        args += ["--enable_batching", f"--batching_parameters_file={batching}"]
    with start_server(server_kind, args, tmp_path) as s:
        s.batching = request.param == "batching"
        s.wait_available("half_plus_two")
        yield s


def test_request_metrics_for_both_transports_and_batching(server):
    before = requests.get(server.rest + METRICS_PATH, timeout=10).text
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half_plus_two"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([1.0])))
    errors = []
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def grpc_call():
            try:
                stub.Predict(req, timeout=30)
            except grpc.RpcError as e:
                errors.append(e)

        threads = [threading.Thread(target=grpc_call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for _ in range(3):
        ok = requests.post(f"{server.rest}/v1/models/half_plus_two:predict", json={"instances": [1.0] * 8},
                           timeout=30)
        assert ok.status_code == 200, ok.text
    requests.post(f"{server.rest}/v1/models/half_plus_two/versions/9:predict", json={"instances": [1.0]}, timeout=30)
    after = requests.get(server.rest + METRICS_PATH, timeout=10)
    assert after.status_code == 200 and after.headers["Content-Type"].startswith("text/plain")
    text = after.text
    assert not errors
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    delta = lambda name, **kw: metric(text, name, **kw) - metric(before, name, **kw)  # noqa: E731
    assert delta(":tensorflow:serving:request_count", model_name="half_plus_two", status="OK") == 11
    assert delta(":tensorflow:serving:request_count", model_name="half_plus_two", status="NOT_FOUND") == 1
    # TF Serving's labels: gRPC method names, REST verbs; latency is recorded for successful requests only.
    assert delta(":tensorflow:serving:request_latency_count", model_name="half_plus_two", API="Predict",
                 entrypoint="GRPC") == 8
    assert delta(":tensorflow:serving:request_latency_count", model_name="half_plus_two", API="predict",
                 entrypoint="REST") == 3
    assert delta(":tensorflow:serving:runtime_latency_count", model_name="half_plus_two", API="Predict",
                 runtime="TF") == 11
    assert metric(text, ":tensorflow:cc:saved_model:load_attempt_count", status="success") == 1
    assert metric(text, ":tensorflow:cc:saved_model:load_latency") > 0
    assert metric(text, ":tensorflow:serving:model_warmup_latency_count", status="OK") == 1
    # The batching session's own metrics (batching_util.h, batching_session.cc): every input's batch size at
    # scheduling, each batch's processed size and padding, and the wrapped session runs.
    inputs = delta(":tensorflow:serving:batching_session:input_batch_size_count")
    processed = delta(":tensorflow:serving:batching_session:processed_batch_size_count")
    if server.batching:
        assert inputs == 11  # 8 gRPC requests + 3 REST requests, one input each
        assert delta(":tensorflow:serving:batching_session:input_batch_size_sum") == 8 + 3 * 8
        assert processed == 4  # the 8 gRPC requests merged into one batch, each REST request a batch of its own
        assert delta(":tensorflow:serving:batching_session:processed_batch_size_sum") == 32
        assert delta(":tensorflow:serving:batching_session:padding_size_count", execution_batch_size="8") == 4
        assert delta(":tensorflow:serving:batching_session:wrapped_run_count") == 4
        assert delta(":tensorflow:serving:batching_session:queuing_latency_count") == 11
    else:
        assert inputs == processed == 0
    assert re.search(r":tensorflow:serving:request_latency_bucket\{.*le=", text)
