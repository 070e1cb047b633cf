"""`--tflite`: the published version carries `model.tflite` (predict_pixels, float32, its SignatureDef stored),
gated on its outputs through `serving.check --prefer_tflite_model`, and served by the local server with
`--prefer_tflite_model` with the SavedModel's `predict_pixels` contract."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from export.publish.gate import METADATA_PATH
from export.publish.warmup import read_warmup_file
from serving.lifecycle.servable import WARMUP_FILE
from serving.lifecycle.tflite_bundle import TFLITE_FILE, stored_signature_defs
from tests.serving.conftest import start_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def exported_with_tflite(tmp_path_factory) -> Path:
    from export.exporters.cifar import CifarExportConfig, run

    repo = tmp_path_factory.mktemp("models")
    summary = run(CifarExportConfig(data="synthetic", epochs=1, limit=512, model_base_path=repo, tflite=True,
                                    cache_dir=tmp_path_factory.mktemp("cache")))
    assert summary["published"], summary
    return Path(summary["path"])


def test_the_version_carries_a_gated_tflite_model_with_the_pixels_contract(exported_with_tflite):
    stored = stored_signature_defs((exported_with_tflite / TFLITE_FILE).read_bytes())
    assert list(stored) == ["predict_pixels"]
    assert set(stored["predict_pixels"].inputs) == {"pixels"}
    assert set(stored["predict_pixels"].outputs) == {"probabilities", "scores", "class_ids", "class_names"}
    metadata = json.loads((exported_with_tflite / METADATA_PATH).read_text())
    check = metadata["gate"]["checks"]["tflite"]
    assert check["ok"] and check["max_abs_diff"] <= check["tolerance"], check
    assert metadata["tflite"]["bytes"] == (exported_with_tflite / TFLITE_FILE).stat().st_size
    # TF Serving replays the warmup file against the TF Lite model too: only the signature both runtimes have.
    assert {log.predict_log.request.model_spec.signature_name
            for log in read_warmup_file(exported_with_tflite / WARMUP_FILE)} == {"predict_pixels"}


def test_both_runtimes_answer_predict_pixels_alike(exported_with_tflite, tmp_path):
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "cifar10", "predict_pixels"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(pixels))
    answers = {}
    for flag in ("", "--prefer_tflite_model"):
        args = ["--model_name=cifar10", f"--model_base_path={exported_with_tflite.parent}", *([flag] if flag else [])]
        with start_server("in-process", args, tmp_path) as server:
            server.wait_available("cifar10")
            with grpc.insecure_channel(server.grpc_target) as channel:
                reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
        answers[flag] = {k: tf.make_ndarray(v) for k, v in reply.outputs.items()}
    saved, lite = answers[""], answers["--prefer_tflite_model"]
    assert set(saved) == set(lite)
    np.testing.assert_allclose(lite["probabilities"], saved["probabilities"], atol=1e-4)
    assert lite["class_names"].shape == saved["class_names"].shape == (3, 5)
