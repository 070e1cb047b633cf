"""REST conformance vectors (tests/serving/protocol/conformance_vectors.py) against each server kind."""

from __future__ import annotations

import json

import pytest
import requests

from tests.serving.protocol.conformance_vectors import REST

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("vector", REST, ids=[v.id for v in REST])
def test_rest_vector(conformance_server, vector):
    path = vector.path if vector.path.startswith("/") else f"/v1/models/{vector.path}"
    url = conformance_server.rest + path
    data = vector.body if isinstance(vector.body, str) else (None if vector.body is None else json.dumps(vector.body))
    r = requests.request(vector.method, url, data=data, timeout=30)
    assert r.status_code == vector.status, (vector.source, r.text)
    body = r.json()
    if vector.json is not None:
        assert body == vector.json, vector.source
    if vector.error is not None:
        assert body == {"error": vector.error}, vector.source
    if vector.error_prefix is not None:
        assert set(body) == {"error"} and body["error"].startswith(vector.error_prefix), (vector.source, body)


def test_metadata_json_has_tf_servings_shape(conformance_server):
    """get_model_metadata_impl.cc + the JSON printer TF Serving uses (testdata/*_model_metadata.json)."""
    body = requests.get(f"{conformance_server.rest}/v1/models/half_plus_two/metadata", timeout=30).json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "123"}
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(defs)
    x = defs["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT" and x["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}],
                                                               "unknown_rank": False}
    assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert defs["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
