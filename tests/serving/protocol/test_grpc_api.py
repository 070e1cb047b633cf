"""gRPC PredictionService and ModelService end to end (protos from tensorflow-serving-api)."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

pytestmark = pytest.mark.e2e
BIG = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def channel(h2t_server):
    ch = grpc.insecure_channel(h2t_server.grpc_target, options=[("grpc.max_send_message_length", BIG),
                                                                ("grpc.max_receive_message_length", BIG)])
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(x, version=None, label=None, signature="", **extra):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half_plus_two"
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    for k, v in extra.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    return req


def test_predict_echoes_resolved_model_spec(stub):
    resp = stub.Predict(predict_request([1.0, 2.0, 5.0]), timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["y"]), [2.5, 3.0, 4.5])
    assert resp.model_spec.name == "half_plus_two"
    assert resp.model_spec.version.value == 2  # latest
    assert resp.model_spec.signature_name == "serving_default"
    by_label = stub.Predict(predict_request([1.0], label="stable"), timeout=10)
    assert by_label.model_spec.version.value == 1


def test_predict_output_filter(stub):
    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = "half_plus_two", "two_inputs"
    req.inputs["a"].CopyFrom(tf.make_tensor_proto(np.float32([2, 3])))
    req.inputs["b"].CopyFrom(tf.make_tensor_proto(np.float32([4, 5])))
    req.output_filter.append("product")
    resp = stub.Predict(req, timeout=10)
    assert list(resp.outputs) == ["product"]
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["product"]), [8, 15])
    req.output_filter[:] = ["nope"]
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_large_messages_are_accepted(stub):
    x = np.ones(3_000_000, np.float32)  # 12 MB, above gRPC's default 4 MB limit
    resp = stub.Predict(predict_request(x), timeout=30)
    assert tf.make_ndarray(resp.outputs["y"]).shape == (3_000_000,)


def _examples(*xs):
    from tensorflow_serving.apis import input_pb2

    inp = input_pb2.Input()
    for x in xs:
        ex = inp.example_list.examples.add()
        ex.features.feature["x"].float_list.value.append(x)
    return inp


def test_classify_regress_and_multi_inference(stub):
    req = classification_pb2.ClassificationRequest(input=_examples(1.0, 2.0))
    req.model_spec.name, req.model_spec.signature_name = "half_plus_two", "classify_x_to_y"
    resp = stub.Classify(req, timeout=10)
    assert [c.classes[0].score for c in resp.result.classifications] == [2.5, 3.0]
    assert resp.model_spec.version.value == 2

    rreq = regression_pb2.RegressionRequest(input=_examples(4.0))
    rreq.model_spec.name, rreq.model_spec.signature_name = "half_plus_two", "regress_x_to_y"
    assert [r.value for r in stub.Regress(rreq, timeout=10).result.regressions] == [4.0]

    mreq = inference_pb2.MultiInferenceRequest(input=_examples(0.0))
    for sig, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                        ("regress_x_to_y", "tensorflow/serving/regress")):
        task = mreq.tasks.add()
        task.model_spec.name, task.model_spec.signature_name, task.method_name = "half_plus_two", sig, method
    mresp = stub.MultiInference(mreq, timeout=10)
    assert mresp.results[0].classification_result.classifications[0].classes[0].score == 2.0
    assert mresp.results[1].regression_result.regressions[0].value == 2.0


def test_get_model_metadata(stub):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "half_plus_two"
    resp = stub.GetModelMetadata(req, timeout=10)
    assert resp.model_spec.version.value == 2
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sig_map)
    assert sig_map.signature_def["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum
    req.metadata_field[:] = ["bogus"]
    with pytest.raises(grpc.RpcError) as e:
        stub.GetModelMetadata(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_model_status(model_stub):
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "half_plus_two"
    resp = model_stub.GetModelStatus(req, timeout=10)
    states = {s.version: s.state for s in resp.model_version_status}
    assert states == {1: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
                      2: get_model_status_pb2.ModelVersionStatus.AVAILABLE}
    req.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as e:
        model_stub.GetModelStatus(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: predict_request([1.0], version=9), grpc.StatusCode.NOT_FOUND),
        (lambda: predict_request([1.0], label="nolabel"), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: predict_request([1.0], signature="nosig"), grpc.StatusCode.FAILED_PRECONDITION),
        (lambda: predict_request([1.0], extra_input=np.float32([1])), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: predict_pb2.PredictRequest(model_spec={"name": "half_plus_two"}), grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["unknown-version", "unknown-label", "unknown-signature", "extra-input", "missing-input"],
)
def test_error_status_codes(stub, make, code):
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(make(), timeout=10)
    assert e.value.code() == code
    assert e.value.details()


def test_wrong_dtype_is_invalid_argument(stub):
    req = predict_pb2.PredictRequest(model_spec={"name": "half_plus_two"})
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([b"a"]))
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_service(channel, h2t_server):
    if h2t_server.kind != "local":
        pytest.skip("the health service is optional in the real server")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
