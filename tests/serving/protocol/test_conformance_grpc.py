"""gRPC conformance vectors (tests/serving/protocol/conformance_vectors.py) against each server kind."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.serving.protocol.conformance_vectors import GRPC

pytestmark = pytest.mark.e2e


def _spec(target, r: dict, default_signature: str = "") -> None:
    target.name = r.get("model", "half_plus_two")
    target.signature_name = r.get("signature", default_signature)
    if "version" in r:
        target.version.value = r["version"]
    if "label" in r:
        target.version_label = r["label"]


def _examples(target, values) -> None:
    for v in values:
        target.example_list.examples.add().features.feature["x"].float_list.value.append(v)


def build(vector):
    r = vector.request
    if vector.rpc == "Predict":
        req = predict_pb2.PredictRequest()
        _spec(req.model_spec, r)
        for key in ("x", "a", "b"):
            if key in r:
                req.inputs[key].CopyFrom(tf.make_tensor_proto(np.array(r[key], np.float32)))
        if "x_double" in r:
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(r["x_double"], np.float64)))
        req.output_filter.extend(r.get("output_filter", []))
        return req
    if vector.rpc in ("Classify", "Regress"):
        req = (classification_pb2.ClassificationRequest() if vector.rpc == "Classify"
               else regression_pb2.RegressionRequest())
        _spec(req.model_spec, r)
        _examples(req.input, r["examples"])
        return req
    if vector.rpc == "MultiInference":
        req = inference_pb2.MultiInferenceRequest()
        for signature, method in r["tasks"]:
            task = req.tasks.add(method_name=method)
            task.model_spec.name, task.model_spec.signature_name = "half_plus_two", signature
        _examples(req.input, r["examples"])
        return req
    req = get_model_status_pb2.GetModelStatusRequest()
    _spec(req.model_spec, r)
    return req


@pytest.fixture(scope="module")
def stubs(conformance_server):
    channel = grpc.insecure_channel(conformance_server.grpc_target)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


@pytest.mark.parametrize("vector", GRPC, ids=[v.id for v in GRPC])
def test_grpc_vector(stubs, vector):
    prediction, model = stubs
    stub = model if vector.rpc == "GetModelStatus" else prediction
    call = getattr(stub, vector.rpc)
    if vector.code != "OK":
        with pytest.raises(grpc.RpcError) as e:
            call(build(vector), timeout=30)
        assert e.value.code() == grpc.StatusCode[vector.code], vector.source
        assert e.value.details() == vector.message, vector.source
        return
    resp = call(build(vector), timeout=30)
    want = vector.expect
    if "float_val" in want:  # typed fields, as TF Serving's default kAsProtoField serialization
        for alias, values in want["float_val"].items():
            assert list(resp.outputs[alias].float_val) == values and not resp.outputs[alias].tensor_content
    if "outputs" in want:
        assert sorted(resp.outputs) == want["outputs"]
    if "spec" in want:
        assert (resp.model_spec.name, resp.model_spec.version.value, resp.model_spec.signature_name) == want["spec"]
    if "classifications" in want:
        got = [[(c.label, c.score) for c in row.classes] for row in resp.result.classifications]
        assert got == want["classifications"]
    if "regressions" in want:
        assert [r.value for r in resp.result.regressions] == want["regressions"]
    if "results" in want:
        assert len(resp.results) == want["results"]
        assert resp.results[0].classification_result.classifications[0].classes[0].score == 3.0
        assert resp.results[1].regression_result.regressions[0].value == 3.0
    if "versions" in want:
        assert [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
                for s in resp.model_version_status] == want["versions"]
