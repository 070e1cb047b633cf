"""Property-based fuzzing of both APIs on a running server (Hypothesis, bounded for the suite): generated HTTP
requests, JSON bodies and gRPC TensorProtos never get a 5xx or INTERNAL/UNKNOWN, and the server keeps serving.
`FUZZ_EXAMPLES` sets the number of examples per test (the suite's default keeps this file near half a minute)."""

from __future__ import annotations

import os

import grpc
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.codecs.test_codecs_fuzz import JSON, tensor_protos
from tests.serving.conftest import CONFIGS, PROTOCOL_KINDS, labelled_half_plus_two

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SIGNATURES = ["", "serving_default", "classify_x_to_y", "regress_x_to_y", "two_inputs", "echo_bytes", "nope"]
PATHS = st.sampled_from([
    "/v1/models/half_plus_two", "/v1/models/half_plus_two:predict", "/v1/models/half_plus_two:classify",
    "/v1/models/half_plus_two:regress", "/v1/models/half_plus_two/metadata", "/v1/models/half_plus_two/versions/1",
    "/v1/models/half_plus_two/labels/stable:predict", "/v1/models/nope:predict", "/v1", "/v1/models/",
    "/v1/models/half_plus_two/versions/x:predict", "/v1/models/half_plus_two:explain",
])
GOOD = {"instances": [1.0]}


@pytest.fixture(scope="module", params=[*PROTOCOL_KINDS, "in-process+batching"])
def fuzzed_server(request, tmp_path_factory, half_plus_two_source):
    """half_plus_two versions 1 and 2 (labels stable, canary) with CORS; also the local server with batching."""
    kind, _, batching = request.param.partition("+")
    extra = ("--enable_batching", f"--batching_parameters_file={CONFIGS / 'batching.config'}") if batching else ()
    yield from labelled_half_plus_two(kind, half_plus_two_source, tmp_path_factory.mktemp("fuzz"), {1: "1", 2: "2"},
                                      "model_version_policy { all {} }", {"stable": 1, "canary": 2},
                                      ("--rest_api_enable_cors_support=true", *extra))


def still_serving(server) -> None:
    r = requests.post(f"{server.rest}/v1/models/half_plus_two:predict", json=GOOD, timeout=30)
    assert r.status_code == 200 and r.json() == {"predictions": [2.5]}


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]), path=PATHS,
       body=st.one_of(st.binary(max_size=64), JSON.map(lambda v: repr(v).encode())))
def test_any_method_path_and_body_gets_a_4xx_or_an_answer(fuzzed_server, method, path, body):
    r = requests.request(method, fuzzed_server.rest + path, data=body, timeout=30)
    assert r.status_code < 500, (method, path, body, r.status_code, r.text[:300])


@FUZZ
@given(verb=st.sampled_from(["predict", "classify", "regress"]), signature=st.sampled_from(SIGNATURES),
       key=st.sampled_from(["instances", "inputs", "examples", "context"]), value=JSON)
def test_any_json_request_gets_a_4xx_or_an_answer(fuzzed_server, verb, signature, key, value):
    body = {key: value, **({"signature_name": signature} if signature else {})}
    r = requests.post(f"{fuzzed_server.rest}/v1/models/half_plus_two:{verb}", json=body, timeout=30)
    assert r.status_code < 500, (verb, body, r.status_code, r.text[:300])


@FUZZ
@given(signature=st.sampled_from(SIGNATURES), alias=st.sampled_from(["x", "a", "b", "inputs", "data_bytes", "?"]),
       proto=tensor_protos())
def test_any_tensor_proto_gets_a_client_error_code_or_an_answer(fuzzed_server, signature, alias, proto):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "half_plus_two", signature
    request.inputs[alias].CopyFrom(proto)
    with grpc.insecure_channel(fuzzed_server.grpc_target) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        except grpc.RpcError as e:
            assert e.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (e.code(), e.details())


def test_the_server_serves_after_the_fuzzing(fuzzed_server):
    still_serving(fuzzed_server)
