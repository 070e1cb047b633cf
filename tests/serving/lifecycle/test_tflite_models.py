"""`--prefer_tflite_model`: a version's `model.tflite` is served through TF Lite's interpreter with TF Serving's
TfLiteSession semantics (signatures stored in the model, else one built from its tensor names; inputs resized to
the request's batch), over both APIs; without the flag the SavedModel beside it is served."""

from __future__ import annotations

import shutil

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.lifecycle.tflite_bundle import TFLITE_FILE, stored_signature_defs, with_signature_defs
from tests.serving.conftest import SERVER_KINDS, start_server

pytestmark = pytest.mark.e2e


def converted(saved_model) -> tuple[bytes, str, str]:
    """half_plus_two's serving_default as a TF Lite model, with its input and output tensor names (such as
    `serving_default_x:0`: TF Serving serves them without the `:0`)."""
    model = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"]).convert()
    interpreter = tf.lite.Interpreter(model_content=model)
    (x,), (y,) = interpreter.get_input_details(), interpreter.get_output_details()
    return model, x["name"], y["name"]


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory, half_plus_two_source):
    """Version directories: the SavedModel with a converted model.tflite beside it, and one whose model.tflite
    carries stored SignatureDefs (x → y, named with the `:0` suffix TF Serving strips when it must)."""
    root = tmp_path_factory.mktemp("tflite")
    plain, x_name, y_name = converted(half_plus_two_source)
    # Without its warmup file: those records name the SavedModel's input `x`, which the TF Lite signature lacks
    # (the real server replays them for a TF Lite model too, and would fail the load just the same).
    shutil.copytree(half_plus_two_source, root / "both" / "1", ignore=shutil.ignore_patterns("assets.extra"))
    (root / "both" / "1" / TFLITE_FILE).write_bytes(plain)
    sigdef = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    sigdef.inputs["x"].name, sigdef.inputs["x"].dtype = x_name, tf.float32.as_datatype_enum
    sigdef.outputs["y"].name, sigdef.outputs["y"].dtype = y_name, tf.float32.as_datatype_enum
    (root / "named" / "1").mkdir(parents=True)
    (root / "named" / "1" / TFLITE_FILE).write_bytes(with_signature_defs(plain, {"serving_default": sigdef}))
    return root


def grpc_predict(server, model: str, alias: str, rows: list[float]) -> list[float]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[alias].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.float32))
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    (output,) = reply.outputs.values()
    return list(output.float_val)


def test_stored_signature_defs_round_trip(tflite_models):
    stored = stored_signature_defs((tflite_models / "named" / "1" / TFLITE_FILE).read_bytes())
    assert list(stored) == ["serving_default"] and set(stored["serving_default"].inputs) == {"x"}
    assert stored_signature_defs((tflite_models / "both" / "1" / TFLITE_FILE).read_bytes()) == {}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_the_tflite_model_is_served_with_a_signature_built_from_its_tensor_names(kind, tflite_models, tmp_path):
    args = ["--model_name=both", f"--model_base_path={tflite_models / 'both'}", "--prefer_tflite_model=true",
            "--max_num_load_retries=0"]
    with start_server(kind, args, tmp_path) as server:
        server.wait_available("both")
        metadata = requests.get(f"{server.rest}/v1/models/both/metadata", timeout=30).json()
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
        assert list(signatures) == ["serving_default"]  # the SavedModel's classify/regress signatures are not served
        assert list(signatures["serving_default"]["inputs"]) == ["serving_default_x"]
        assert grpc_predict(server, "both", "serving_default_x", [1.0, 2.0, 3.0]) == [2.5, 3.0, 3.5]  # resized
        assert grpc_predict(server, "both", "serving_default_x", [4.0]) == [4.0]
        url = f"{server.rest}/v1/models/both:predict"
        wide = requests.post(url, json={"inputs": {"serving_default_x": [[1.0, 2.0]]}}, timeout=30)
        assert wide.json() == {"outputs": [[2.5, 3.0]]}  # any shape the model's ops take
        assert requests.post(url, json={"inputs": {"x": [1.0]}}, timeout=30).status_code == 400


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_stored_signatures_are_served_by_their_aliases_over_rest(kind, tflite_models, tmp_path):
    args = ["--model_name=named", f"--model_base_path={tflite_models / 'named'}", "--prefer_tflite_model",
            "--max_num_load_retries=0"]
    with start_server(kind, args, tmp_path) as server:
        server.wait_available("named")
        reply = requests.post(f"{server.rest}/v1/models/named:predict", json={"instances": [1.0, 2.0]},
                              timeout=30)
    assert reply.json() == {"predictions": [2.5, 3.0]}


def test_without_the_flag_the_savedmodel_is_served(tflite_models, tmp_path):
    args = ["--model_name=both", f"--model_base_path={tflite_models / 'both'}"]
    with start_server("in-process", args, tmp_path) as server:
        server.wait_available("both")
        metadata = requests.get(f"{server.rest}/v1/models/both/metadata", timeout=30).json()
        assert "classify_x_to_y" in metadata["metadata"]["signature_def"]["signature_def"]
        assert grpc_predict(server, "both", "x", [1.0]) == [2.5]


def test_serving_check_validates_the_tflite_model(tflite_models, capsys):
    import json

    from serving.check import main

    assert main([str(tflite_models / "named" / "1"), "--prefer_tflite_model", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and list(report["signatures"]["serving_default"]["inputs"]) == ["x"]
    assert not report["probe"]["serving_default"].get("fatal")  # an empty batch may be refused, not fatal
    assert main([str(tflite_models / "both" / "1"), "--json"]) == 0  # the SavedModel beside it
    assert "classify_x_to_y" in json.loads(capsys.readouterr().out)["signatures"]
