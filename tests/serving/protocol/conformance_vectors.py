"""Conformance vectors: requests and the answers tensorflow_model_server gives, as its source and tests state them.

Each vector names where the expectation comes from (a file of tensorflow/serving, `tensorflow_serving/` omitted).
The model is TF Serving's test model: half_plus_two (y = 0.5·x + 2) in `00000123/`, label `stable` → 123, with the
signatures `serving_default` (x → y), `classify_x_to_y`, `regress_x_to_y`, `two_inputs` (a, b → sum, product) and
`echo_bytes` (data_bytes → out_bytes, length). They run against the local server and, when it is on PATH, against
the real binary (tests/serving/protocol/test_conformance_rest.py, test_conformance_grpc.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATUS_123 = {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                        "status": {"error_code": "OK", "error_message": ""}}]}


@dataclass(frozen=True)
class RestVector:
    """One HTTP exchange: the exact JSON answer, or the HTTP status with the exact `error` text (or its start)."""

    id: str
    area: str
    source: str
    method: str
    path: str
    body: object = None  # a JSON value, or a str sent verbatim
    status: int = 200
    json: object = None
    error: str | None = None
    error_prefix: str | None = None


@dataclass(frozen=True)
class GrpcVector:
    """One PredictionService/ModelService call (built from `request`), its gRPC code and message or checked reply."""

    id: str
    area: str
    source: str
    rpc: str
    request: dict = field(default_factory=dict)
    code: str = "OK"
    message: str | None = None
    expect: dict = field(default_factory=dict)


REST: list[RestVector] = [
    # ---- model status (get_model_status_impl.cc, tensorflow_model_server_test.py testGetStatusREST)
    RestVector("status", "status", "tensorflow_model_server_test.py", "GET", "half_plus_two", json=STATUS_123),
    RestVector("status-version", "status", "get_model_status_impl.cc", "GET", "half_plus_two/versions/123",
               json=STATUS_123),
    RestVector("status-label-is-all-versions", "status", "get_model_status_impl.cc (labels are not resolved)",
               "GET", "half_plus_two/labels/anything", json=STATUS_123),
    RestVector("status-unknown-model", "status", "get_model_status_impl.cc", "GET", "nope", status=404,
               error="Could not find any versions of model nope"),
    RestVector("status-unknown-version", "status", "get_model_status_impl.cc", "GET", "half_plus_two/versions/9",
               status=404, error="Could not find version 9 of model half_plus_two"),
    # ---- metadata (get_model_metadata_impl.cc)
    RestVector("metadata-unknown-model", "metadata", "server_core.cc ServableRequest::Latest", "GET",
               "nope/metadata", status=404, error="Servable not found for request: Latest(nope)"),
    RestVector("metadata-unknown-version", "metadata", "server_core.cc", "GET", "half_plus_two/versions/9/metadata",
               status=404, error="Servable not found for request: Specific(half_plus_two, 9)"),
    # ---- predict, row and columnar (http_rest_api_handler_test.cc, tensorflow_model_server_test.py)
    RestVector("predict-row", "predict", "tensorflow_model_server_test.py testPredictREST", "POST",
               "half_plus_two:predict", {"instances": [2.0, 3.0, 4.0]}, json={"predictions": [3.0, 3.5, 4.0]}),
    RestVector("predict-columnar", "predict", "tensorflow_model_server_test.py testPredictColumnarREST", "POST",
               "half_plus_two:predict", {"inputs": [2.0, 3.0, 4.0]}, json={"outputs": [3.0, 3.5, 4.0]}),
    RestVector("predict-version", "predict", "http_rest_api_handler_test.cc Predict", "POST",
               "half_plus_two/versions/123:predict", {"instances": [1.0, 2.0]}, json={"predictions": [2.5, 3.0]}),
    RestVector("predict-label", "predict", "http_rest_api_handler.cc", "POST", "half_plus_two/labels/stable:predict",
               {"instances": [1.0]}, json={"predictions": [2.5]}),
    RestVector("predict-named-signature", "predict", "http_rest_api_handler_test.cc Predict", "POST",
               "half_plus_two:predict", {"signature_name": "serving_default", "inputs": [3.0, 4.0]},
               json={"outputs": [3.5, 4.0]}),
    RestVector("predict-named-instances", "predict", "json_tensor.cc FillTensorMapFromInstancesList", "POST",
               "half_plus_two:predict", {"instances": [{"x": 1.0}, {"x": 2.0}]}, json={"predictions": [2.5, 3.0]}),
    RestVector("predict-named-inputs", "predict", "json_tensor.cc FillTensorMapFromInputsMap", "POST",
               "half_plus_two:predict", {"inputs": {"x": [1.0]}}, json={"outputs": [2.5]}),
    RestVector("predict-multi-output-row", "predict", "json_tensor.cc MakeRowFormatJsonFromTensors", "POST",
               "half_plus_two:predict", {"signature_name": "two_inputs", "instances": [{"a": 1.0, "b": 2.0}]},
               json={"predictions": [{"product": 2.0, "sum": 3.0}]}),
    RestVector("predict-multi-output-columnar", "predict", "json_tensor.cc MakeColumnarFormatJsonFromTensors",
               "POST", "half_plus_two:predict", {"signature_name": "two_inputs", "inputs": {"a": [1.0], "b": [2.0]}},
               json={"outputs": {"product": [2.0], "sum": [3.0]}}),
    RestVector("predict-b64-in-and-out", "predict", "json_tensor.cc (_bytes suffix → b64)", "POST",
               "half_plus_two:predict", {"signature_name": "echo_bytes", "instances": [{"b64": "aGVsbG8="}]},
               json={"predictions": [{"length": 5, "out_bytes": {"b64": "aGVsbG8="}}]}),
    # ---- predict errors (http_rest_api_handler_test.cc PredictRequestErrors, json_tensor.cc)
    RestVector("predict-empty-body", "predict errors", "json_tensor.cc ParseJson", "POST", "half_plus_two:predict",
               "", status=400, error="JSON Parse error: The document is empty"),
    RestVector("predict-bad-json", "predict errors", "json_tensor.cc ParseJson", "POST", "half_plus_two:predict",
               "{ \"instances\": [1.0,, ] }", status=400, error_prefix="JSON Parse error: "),
    RestVector("predict-wrong-type", "predict errors", "http_rest_api_handler_test.cc", "POST",
               "half_plus_two:predict", {"instances": ["x", "y"]}, status=400,
               error='JSON Value: "x" Type: String is not of expected type: float'),
    RestVector("predict-signature-not-string", "predict errors", "http_rest_api_handler_test.cc", "POST",
               "half_plus_two:predict", {"signature_name": 100}, status=400,
               error="JSON Value: 100 not formatted correctly. 'signature_name' key must be a string value."),
    RestVector("predict-missing-key", "predict errors", "json_tensor.cc FillPredictRequestFromJson", "POST",
               "half_plus_two:predict", {"x": [1.0]}, status=400, error="Missing 'inputs' or 'instances' key"),
    RestVector("predict-both-keys", "predict errors", "json_tensor.cc FillPredictRequestFromJson", "POST",
               "half_plus_two:predict", {"instances": [1.0], "inputs": [1.0]}, status=400,
               error="JSON Value: {\"instances\":[1.0],\"inputs\":[1.0]} Not formatted correctly expecting only one "
                     "of 'inputs' or 'instances' keys to exist "),
    RestVector("predict-empty-instances", "predict errors", "json_tensor.cc", "POST", "half_plus_two:predict",
               {"instances": []}, status=400, error="JSON Value: {\"instances\":[]} No values in 'instances' array"),
    RestVector("predict-unknown-label", "predict errors", "http_rest_api_handler_test.cc", "POST",
               "half_plus_two/labels/nope:predict", {"instances": [1.0]}, status=400,
               error_prefix="Unrecognized servable version label: nope"),
    RestVector("predict-unknown-version", "predict errors", "server_core.cc", "POST",
               "half_plus_two/versions/9:predict", {"instances": [1.0]}, status=404,
               error="Servable not found for request: Specific(half_plus_two, 9)"),
    RestVector("predict-unknown-model", "predict errors", "server_core.cc", "POST", "nope:predict",
               {"instances": [1.0]}, status=404, error="Servable not found for request: Latest(nope)"),
    RestVector("predict-unknown-signature", "predict errors", "http_rest_api_handler.cc GetInfoMap", "POST",
               "half_plus_two:predict", {"signature_name": "nope", "instances": [1.0]}, status=400,
               error='Serving signature name: "nope" not found in signature def'),
    RestVector("malformed-path", "routing", "http_rest_api_handler_test.cc UnsupportedApiCalls", "GET",
               "half_plus_two:predict", status=400, error_prefix="Malformed request: GET /v1/models/half_plus_two"),
    RestVector("bad-version-path", "routing", "http_rest_api_handler_test.cc", "POST",
               "half_plus_two/versions/abc:predict", {"instances": [1.0]}, status=400,
               error_prefix="Malformed request: POST"),
    RestVector("status-without-model-name", "routing", "http_rest_api_handler.cc ProcessModelStatusRequest", "GET",
               "/v1/models", status=400, error="Missing model name in request."),
    RestVector("metadata-without-model-name", "routing", "http_rest_api_handler.cc ProcessModelMetadataRequest",
               "GET", "/v1/models/versions/123/metadata", status=400, error="Missing model name in request."),
    RestVector("version-past-int64", "routing", "http_rest_api_util.cc ParseModelInfo (SimpleAtoi)", "GET",
               "half_plus_two/versions/99999999999999999999", status=400,
               error="Failed to convert version: 99999999999999999999 to numeric."),
    RestVector("malformed-path-as-sent", "routing", "evhttp_request.cc uri_path: the raw path with its query",
               "POST", "half_plus_two/versions/1%0A:predict?a=%2F", {"instances": [1.0]}, status=400,
               error="Malformed request: POST /v1/models/half_plus_two/versions/1%0A:predict?a=%2F"),
    # ---- classify / regress (http_rest_api_handler_test.cc Classify, Regress; tensorflow_model_server_test.py)
    RestVector("classify", "classify", "tensorflow_model_server_test.py testClassifyREST", "POST",
               "half_plus_two:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
               json={"results": [[["", 3.0]]]}),
    RestVector("regress", "regress", "tensorflow_model_server_test.py testRegressREST", "POST",
               "half_plus_two:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
               json={"results": [3.0]}),
    RestVector("regress-context", "regress", "json_tensor.cc FillClassificationRequestFromJson (context)", "POST",
               "half_plus_two:regress",
               {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{}]},
               json={"results": [4.0]}),
    RestVector("classify-predict-signature", "classify", "classifier.cc PreProcessClassification", "POST",
               "half_plus_two:classify", {"examples": [{"x": 2.0}]}, status=400,
               error_prefix="No classification inputs found in SignatureDef: "),
    RestVector("regress-unknown-signature", "regress", "regressor.cc GetRegressionSignatureDef", "POST",
               "half_plus_two:regress", {"signature_name": "nope", "examples": [{"x": 2.0}]}, status=400,
               error="No signature was found with the name: nope"),
]


GRPC: list[GrpcVector] = [
    # ---- Predict (predict_util.cc, tensorflow_model_server_test.py VerifyPredictRequest)
    GrpcVector("predict-typed-fields-and-spec-echo", "predict", "predict_util.cc kAsProtoField, MakeModelSpec",
               "Predict", {"x": [1.0, 2.0]},
               expect={"float_val": {"y": [2.5, 3.0]}, "spec": ("half_plus_two", 123, "serving_default")}),
    GrpcVector("predict-label", "predict", "server_core.cc", "Predict", {"x": [2.0], "label": "stable"},
               expect={"float_val": {"y": [3.0]}, "spec": ("half_plus_two", 123, "serving_default")}),
    GrpcVector("predict-output-filter", "predict", "predict_util.cc PreProcessPrediction", "Predict",
               {"signature": "two_inputs", "a": [1.0], "b": [3.0], "output_filter": ["sum"]},
               expect={"float_val": {"sum": [4.0]}, "outputs": ["sum"]}),
    GrpcVector("predict-unknown-output", "predict", "predict_util.cc", "Predict", {"x": [1.0], "output_filter": ["z"]},
               code="INVALID_ARGUMENT",
               message="output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
    GrpcVector("predict-duplicate-output", "predict", "predict_util.cc", "Predict",
               {"signature": "two_inputs", "a": [1.0], "b": [1.0], "output_filter": ["sum", "sum"]},
               code="INVALID_ARGUMENT", message="duplicate output tensor alias: sum"),
    GrpcVector("predict-missing-input", "predict", "util.cc VerifyRequestInputsSize", "Predict",
               {"signature": "two_inputs", "a": [1.0]}, code="INVALID_ARGUMENT",
               message="input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
                       "Missing but required: {b}."),
    GrpcVector("predict-wrong-dtype", "predict", "DirectSession::Run", "Predict", {"x_double": [1.0]},
               code="INVALID_ARGUMENT", message="Expects arg[0] to be float but double is provided"),
    GrpcVector("predict-unknown-signature", "predict", "predict_util.cc", "Predict", {"x": [1.0], "signature": "nope"},
               code="FAILED_PRECONDITION", message='Serving signature key "nope" not found.'),
    GrpcVector("predict-unknown-version", "predict", "server_core.cc", "Predict", {"x": [1.0], "version": 9},
               code="NOT_FOUND", message="Servable not found for request: Specific(half_plus_two, 9)"),
    GrpcVector("predict-unknown-model", "predict", "server_core.cc", "Predict", {"x": [1.0], "model": "nope"},
               code="NOT_FOUND", message="Servable not found for request: Latest(nope)"),
    # ---- Classify / Regress / MultiInference (classifier.cc, regressor.cc, multi_inference.cc)
    GrpcVector("classify", "classify", "classifier.cc PostProcessClassificationResult", "Classify",
               {"signature": "classify_x_to_y", "examples": [2.0, 4.0]},
               expect={"classifications": [[("", 3.0)], [("", 4.0)]],
                       "spec": ("half_plus_two", 123, "classify_x_to_y")}),
    GrpcVector("classify-no-examples", "classify", "util.cc InputToSerializedExampleTensor", "Classify",
               {"signature": "classify_x_to_y", "examples": []}, code="INVALID_ARGUMENT",
               message="Input is empty."),
    GrpcVector("classify-unknown-signature", "classify", "classifier.cc", "Classify",
               {"signature": "nope", "examples": [1.0]}, code="INVALID_ARGUMENT",
               message="No signature was found with the name: nope"),
    GrpcVector("regress", "regress", "regressor.cc PostProcessRegressionResult", "Regress",
               {"signature": "regress_x_to_y", "examples": [2.0]}, expect={"regressions": [3.0]}),
    GrpcVector("multi-inference", "multi_inference", "multi_inference.cc", "MultiInference",
               {"tasks": [("classify_x_to_y", "tensorflow/serving/classify"),
                          ("regress_x_to_y", "tensorflow/serving/regress")], "examples": [2.0]},
               expect={"results": 2}),
    GrpcVector("multi-inference-duplicate", "multi_inference", "multi_inference.cc", "MultiInference",
               {"tasks": [("regress_x_to_y", "tensorflow/serving/regress"),
                          ("regress_x_to_y", "tensorflow/serving/regress")], "examples": [2.0]},
               code="INVALID_ARGUMENT", message="Duplicate evaluation of signature: regress_x_to_y"),
    GrpcVector("multi-inference-predict-method", "multi_inference", "multi_inference.cc", "MultiInference",
               {"tasks": [("serving_default", "tensorflow/serving/predict")], "examples": [2.0]},
               code="UNIMPLEMENTED", message="Unsupported signature method_name: tensorflow/serving/predict"),
    # ---- ModelService (get_model_status_impl.cc)
    GrpcVector("status", "status", "tensorflow_model_server_test.py testGetModelStatus", "GetModelStatus", {},
               expect={"versions": [(123, "AVAILABLE")]}),
    GrpcVector("status-unknown-version", "status", "get_model_status_impl.cc", "GetModelStatus", {"version": 9},
               code="NOT_FOUND", message="Could not find version 9 of model half_plus_two"),
    GrpcVector("status-label-is-all-versions", "status", "get_model_status_impl.cc", "GetModelStatus",
               {"label": "anything"}, expect={"versions": [(123, "AVAILABLE")]}),
]
