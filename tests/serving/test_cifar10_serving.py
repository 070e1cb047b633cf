"""The CIFAR-10 export (issue 2's serving contract) served over REST and gRPC; results equal in-process ones."""

import base64

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, input_pb2, predict_pb2, prediction_service_pb2_grpc

from export.data.cifar10_data import CLASS_NAMES
from tests.serving.conftest import REAL_BINARY, SERVER_KINDS, real_binary_unavailable, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", params=SERVER_KINDS)
def cifar_server(request, exported_cifar10, tmp_path_factory):
    if request.param == "tensorflow_model_server" and not REAL_BINARY:
        real_binary_unavailable()
    with serving(request.param, "cifar10", exported_cifar10.parent, tmp_path_factory.mktemp("cifar-server")) as s:
        yield s


@pytest.fixture(scope="module")
def in_process(exported_cifar10):
    return tf.saved_model.load(str(exported_cifar10)).signatures


def test_rest_predict_bytes_matches_in_process(cifar_server, in_process, real_jpegs):
    raw = [p.read_bytes() for p in real_jpegs[:8]]
    body = {"instances": [{"b64": base64.b64encode(b).decode()} for b in raw]}
    r = requests.post(f"{cifar_server.rest}/v1/models/cifar10:predict", json=body, timeout=30)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    expected = in_process["serving_default"](image_bytes=tf.constant(raw))
    np.testing.assert_allclose([p["probabilities"] for p in preds], expected["probabilities"].numpy(), atol=1e-6)
    assert [p["class_names"] for p in preds] == [[n.decode() for n in row] for row in expected["class_names"].numpy()]
    assert all(set(p["class_names"]) <= set(CLASS_NAMES) for p in preds)


def test_rest_classify_with_image_examples(cifar_server, real_jpegs):
    raw = real_jpegs[0].read_bytes()
    body = {"signature_name": "classify", "examples": [{"image/encoded": {"b64": base64.b64encode(raw).decode()}}]}
    r = requests.post(f"{cifar_server.rest}/v1/models/cifar10:classify", json=body, timeout=30)
    assert r.status_code == 200, r.text
    (row,) = r.json()["results"]
    assert len(row) == 5 and all(label in CLASS_NAMES for label, _ in row)
    scores = [s for _, s in row]
    assert scores == sorted(scores, reverse=True)


def test_grpc_predict_pixels_and_classify(cifar_server, in_process, real_jpegs):
    with grpc.insecure_channel(cifar_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        pixels = np.stack([tf.io.decode_jpeg(p.read_bytes(), dct_method="INTEGER_ACCURATE").numpy()
                           for p in real_jpegs[:4]]).astype(np.float32)
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = "cifar10", "predict_pixels"
        req.inputs["pixels"].CopyFrom(tf.make_tensor_proto(pixels))
        resp = stub.Predict(req, timeout=30)
        expected = in_process["predict_pixels"](pixels=tf.constant(pixels))["probabilities"].numpy()
        np.testing.assert_allclose(tf.make_ndarray(resp.outputs["probabilities"]), expected, atol=1e-6)
        assert resp.model_spec.version.value == 1

        creq = classification_pb2.ClassificationRequest(input=input_pb2.Input())
        creq.model_spec.name, creq.model_spec.signature_name = "cifar10", "classify"
        ex = creq.input.example_list.examples.add()
        ex.features.feature["image/encoded"].bytes_list.value.append(real_jpegs[1].read_bytes())
        cresp = stub.Classify(creq, timeout=30)
        classes = cresp.result.classifications[0].classes
        assert len(classes) == 5 and classes[0].label in CLASS_NAMES


def test_corrupt_image_is_invalid_argument(cifar_server):
    body = {"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}
    r = requests.post(f"{cifar_server.rest}/v1/models/cifar10:predict", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"]
    # ... and the server keeps serving.
    ok = requests.get(f"{cifar_server.rest}/v1/models/cifar10", timeout=10)
    assert ok.json()["model_version_status"][0]["state"] == "AVAILABLE"
