"""`python -m serving.check`: the pre-`docker build` check of a SavedModel, and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.check import main, parse_args, run_check
from tests.serving.conftest import ROOT, build_half_plus_two
from tests.serving.lifecycle.test_saved_model_bundle import save_keras_wrapped_the_old_way


def write_logs(path, logs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def predict_log(x: list[float], y: list[float] | None = None) -> prediction_log_pb2.PredictionLog:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half_plus_two"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(x, np.float32)))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
    if y is not None:
        log.predict_log.response.outputs["y"].CopyFrom(tf.make_tensor_proto(np.array(y, np.float32)))
    return log


@pytest.fixture
def h2t(tmp_path):
    return build_half_plus_two(tmp_path / "half_plus_two" / "1", with_warmup=True)


def test_a_servable_model_passes_with_its_signatures_probe_and_warmup(h2t, capsys):
    assert main([str(h2t), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["model_name"] == "half_plus_two"
    assert report["warmup"]["records"] == 1 and report["load_seconds"] > 0
    assert all(p["ok"] for p in report["probe"].values())
    assert report["signatures"]["serving_default"]["inputs"]["x"] == {"dtype": "DT_FLOAT", "shape": [None],
                                                                      "tensor": "serving_default_x:0"}
    assert report["signatures"]["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"


def test_the_old_keras_export_pattern_fails_at_the_probe(tmp_path, capsys):
    path = tmp_path / "old" / "1"
    save_keras_wrapped_the_old_way(path)
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED at probe: FAILED_PRECONDITION" in out and "Could not find variable" in out


def test_more_than_1000_warmup_records_fail_as_in_tf_serving(h2t):
    write_logs(h2t / "assets.extra" / "tf_serving_warmup_requests", [predict_log([1.0])] * 1001)
    report = run_check(parse_args([str(h2t)]))
    assert not report["ok"] and report["error"]["stage"] == "warmup"
    assert report["error"]["code"] == "INVALID_ARGUMENT"
    assert report["error"]["message"].startswith("Number of warmup records exceeds the maximum (1000) at ")


def test_unsupported_warmup_record_is_unimplemented(h2t):
    log = prediction_log_pb2.PredictionLog()
    log.session_run_log.SetInParent()
    write_logs(h2t / "assets.extra" / "tf_serving_warmup_requests", [log])
    report = run_check(parse_args([str(h2t)]))
    number = prediction_log_pb2.PredictionLog.DESCRIPTOR.fields_by_name["session_run_log"].number
    assert report["error"] == {"stage": "warmup", "code": "UNIMPLEMENTED",
                               "message": f"Unsupported log_type for warmup: {number}"}


def test_a_failing_warmup_request_fails_the_check_with_the_requests_error(h2t):
    bad = prediction_log_pb2.PredictionLog()
    bad.predict_log.request.model_spec.signature_name = "no_such_signature"
    write_logs(h2t / "assets.extra" / "tf_serving_warmup_requests", [predict_log([1.0]), bad])
    report = run_check(parse_args([str(h2t)]))
    assert report["error"]["code"] == "FAILED_PRECONDITION"
    assert report["error"]["message"] == 'Serving signature key "no_such_signature" not found.'


def test_compare_replays_expected_responses_within_the_tolerance(h2t, tmp_path):
    good, off = tmp_path / "good", tmp_path / "off"
    write_logs(good, [predict_log([1.0, 4.0], [2.5, 4.0])])
    write_logs(off, [predict_log([1.0, 4.0], [2.5, 4.1])])
    report = run_check(parse_args([str(h2t), "--compare", str(good)]))
    assert report["ok"] and report["comparison"]["serving_default"]["max_abs_diff"] == 0.0
    report = run_check(parse_args([str(h2t), "--compare", str(off)]))
    assert not report["ok"] and report["error"]["code"] == "OUT_OF_RANGE"
    assert abs(report["comparison"]["serving_default"]["max_abs_diff"] - 0.1) < 1e-5


def test_exit_codes_from_the_command_line(h2t, tmp_path):
    missing = subprocess.run([sys.executable, "-m", "serving.check", str(tmp_path / "nope")],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    (tmp_path / "empty").mkdir()
    no_model = subprocess.run([sys.executable, "-m", "serving.check", str(tmp_path / "empty")],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert no_model.returncode == 1
    assert "FAILED at load: NOT_FOUND: Could not find SavedModel .pb or .pbtxt" in no_model.stdout
    ok = subprocess.run([sys.executable, "-m", "serving.check", str(h2t)], capture_output=True, text=True,
                        cwd=ROOT, timeout=120)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("would load and serve in tensorflow_model_server")
