"""ServerMetrics in-process: every exported family is one tensorflow_model_server exports, with its labels and type.

The names, label names and kinds below are written out from TF Serving's and TensorFlow's sources (the monitoring
name with `/` turned into `:`), not read from serving.core.metrics, so a renamed or invented metric fails here:
servables/tensorflow/util.cc, batching/batching_session.cc, batching/batching_util.h,
servables/tensorflow/saved_model_warmup_util.cc and tensorflow/cc/saved_model/loader.cc.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.core.metrics import ServerMetrics
from serving.errors import NotFound

TF_SERVING_METRICS = {
    ":tensorflow:serving:request_count": ("counter", {"model_name", "status"}),
    ":tensorflow:serving:request_latency": ("histogram", {"model_name", "API", "entrypoint"}),
    ":tensorflow:serving:runtime_latency": ("histogram", {"model_name", "API", "runtime"}),
    ":tensorflow:serving:batching_session:queuing_latency": ("histogram", {"thread_pool_name"}),
    ":tensorflow:serving:batching_session:wrapped_run_count": ("counter", set()),
    ":tensorflow:serving:batching_session:input_batch_size": ("histogram", set()),
    ":tensorflow:serving:batching_session:processed_batch_size": ("histogram", set()),
    ":tensorflow:serving:batching_session:padding_size": ("histogram", {"execution_batch_size"}),
    ":tensorflow:serving:model_warmup_latency": ("histogram", {"model_path", "status"}),
    ":tensorflow:cc:saved_model:load_attempt_count": ("counter", {"model_path", "status"}),
    ":tensorflow:cc:saved_model:load_latency": ("counter", {"model_path"}),
}


@pytest.fixture
def exposition():
    metrics = ServerMetrics(known_models=lambda: ["m"])
    with metrics.request("m", "Predict", "GRPC"):
        pass
    with pytest.raises(NotFound), metrics.request("m", "predict", "REST"):
        raise NotFound("no such version")
    metrics.runtime("m", "predict", 0.002)
    metrics.runtime("m", "multi_inference", 0.002)  # TF Serving records no runtime latency for MultiInference
    metrics.scheduled(3)
    metrics.queued(0.001)
    metrics.batch(3, 4)
    metrics.load("/models/m/1", True, 0.5)
    metrics.load("/models/m/2", False, 0.1)
    metrics.warmup("/models/m/1", "OK", 0.2)
    return metrics.exposition().decode()


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_family_is_tf_servings_with_its_labels_and_type(exposition):
    found = families(exposition)
    names = {name.removesuffix("_total") for name in found}  # the parser strips counters' `_total` from names
    assert names == set(TF_SERVING_METRICS)
    for name, family in found.items():
        kind, labels = TF_SERVING_METRICS[name.removesuffix("_total")]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


def test_counters_keep_their_bare_names_and_samples(exposition):
    lines = exposition.splitlines()
    assert "# TYPE :tensorflow:serving:request_count counter" in lines
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1.0' in lines
    assert ':tensorflow:serving:request_count{model_name="m",status="NOT_FOUND"} 1.0' in lines
    assert ':tensorflow:cc:saved_model:load_attempt_count{model_path="/models/m/1",status="success"} 1.0' in lines
    assert ':tensorflow:cc:saved_model:load_attempt_count{model_path="/models/m/2",status="fail"} 1.0' in lines
    assert ':tensorflow:cc:saved_model:load_latency{model_path="/models/m/1"} 500000.0' in lines  # µs, successes
    assert ":tensorflow:serving:batching_session:wrapped_run_count 1.0" in lines


def test_samplers_use_tf_servings_buckets_and_labels(exposition):
    lines = exposition.splitlines()
    # runtime latency: API as the predictor records it, one observation (MultiInference's left out)
    assert ':tensorflow:serving:runtime_latency_count{API="Predict",model_name="m",runtime="TF"} 1.0' in lines
    assert sum(line.startswith(":tensorflow:serving:runtime_latency_count") for line in lines) == 1
    # Buckets::Exponential(10, 1.8, 33): the last finite limit is 10 * 1.8**32
    latency_limits = [line for line in lines if line.startswith(":tensorflow:serving:request_latency_bucket")]
    assert len(latency_limits) == 33 + 1 and 'le="+Inf"' in latency_limits[-1]
    # the batch of 3 rows padded to 4: processed size 4, padding 1 under execution_batch_size="4"
    assert ":tensorflow:serving:batching_session:processed_batch_size_sum 4.0" in lines
    assert ':tensorflow:serving:batching_session:padding_size_sum{execution_batch_size="4"} 1.0' in lines
    assert ":tensorflow:serving:batching_session:input_batch_size_sum 3.0" in lines
    assert ':tensorflow:serving:batching_session:queuing_latency_count{thread_pool_name=""} 1.0' in lines
    assert ':tensorflow:serving:model_warmup_latency_count{model_path="/models/m/1",status="OK"} 1.0' in lines


def test_unknown_model_names_do_not_become_label_values():
    metrics = ServerMetrics(known_models=lambda: ["m"])
    for i in range(50):
        with pytest.raises(NotFound), metrics.request(f"made-up-{i}", "predict", "REST"):
            raise NotFound("Servable not found")
    text = metrics.exposition().decode()
    assert "made-up" not in text
    assert ':tensorflow:serving:request_count{model_name="(unknown model)",status="NOT_FOUND"} 50.0' in text
