"""REST API end to end, as TF Serving's REST API documentation specifies it (half_plus_two)."""

import base64
import gzip

import pytest
import requests

pytestmark = pytest.mark.e2e


def post(server, path, body, **kw):
    return requests.post(f"{server.rest}/v1/models/{path}", json=body, timeout=30, **kw)


def test_status_of_model_version_and_label(h2t_server):
    r = requests.get(f"{h2t_server.rest}/v1/models/half_plus_two", timeout=10)
    assert r.status_code == 200
    statuses = r.json()["model_version_status"]
    assert sorted(s["version"] for s in statuses) == ["1", "2"]
    assert all(s["state"] == "AVAILABLE" and s["status"] == {"error_code": "OK", "error_message": ""}
               for s in statuses)
    one = requests.get(f"{h2t_server.rest}/v1/models/half_plus_two/versions/1", timeout=10).json()
    assert [s["version"] for s in one["model_version_status"]] == ["1"]
    # GetModelStatusWithModelSpec does not resolve labels: a label's status is every version's.
    canary = requests.get(f"{h2t_server.rest}/v1/models/half_plus_two/labels/canary", timeout=10).json()
    assert sorted(s["version"] for s in canary["model_version_status"]) == ["1", "2"]


def test_metadata_has_model_spec_and_signature_defs(h2t_server):
    r = requests.get(f"{h2t_server.rest}/v1/models/half_plus_two/versions/1/metadata", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(sigs)
    x = sigs["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT" and x["tensor_shape"]["dim"][0]["size"] == "-1"
    assert sigs["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"


def test_predict_row_and_columnar(h2t_server):
    r = post(h2t_server, "half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
    assert r.status_code == 200 and r.json() == {"predictions": [2.5, 3.0, 4.5]}
    r = post(h2t_server, "half_plus_two/versions/1:predict", {"inputs": [1.0, 2.0]})
    assert r.json() == {"outputs": [2.5, 3.0]}
    r = post(h2t_server, "half_plus_two/labels/stable:predict", {"inputs": {"x": [4.0]}})
    assert r.json() == {"outputs": [4.0]}


def test_predict_named_inputs_and_outputs(h2t_server):
    rows = post(h2t_server, "half_plus_two:predict",
                {"signature_name": "two_inputs", "instances": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]})
    assert rows.status_code == 200
    assert rows.json() == {"predictions": [{"sum": 3.0, "product": 2.0}, {"sum": 7.0, "product": 12.0}]}
    cols = post(h2t_server, "half_plus_two:predict",
                {"signature_name": "two_inputs", "inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}})
    assert cols.json() == {"outputs": {"sum": [3.0, 7.0], "product": [2.0, 12.0]}}


def test_b64_strings_in_and_out(h2t_server):
    data = bytes(range(256))
    r = post(h2t_server, "half_plus_two:predict",
             {"signature_name": "echo_bytes", "instances": [{"b64": base64.b64encode(data).decode()}]})
    assert r.status_code == 200
    pred = r.json()["predictions"][0]
    assert base64.b64decode(pred["out_bytes"]["b64"]) == data and pred["length"] == 256


def test_classify_and_regress_with_context(h2t_server):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}]}
    r = post(h2t_server, "half_plus_two:classify", body)
    assert r.status_code == 200
    assert r.json() == {"results": [[["", 2.5]], [["", 3.0]]]}
    body = {"signature_name": "regress_x_to_y", "context": {"x": 10.0}, "examples": [{"x": 4.0}, {}]}
    r = post(h2t_server, "half_plus_two:regress", body)
    assert r.json() == {"results": [4.0, 7.0]}  # the example overrides the context; {} gets x from context


def test_gzip_request_body(h2t_server):
    raw = gzip.compress(b'{"instances": [1.0]}')
    r = requests.post(f"{h2t_server.rest}/v1/models/half_plus_two:predict", data=raw, timeout=10,
                      headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json() == {"predictions": [2.5]}


def test_cors_preflight_and_headers(h2t_server):
    r = requests.options(f"{h2t_server.rest}/v1/models/half_plus_two:predict", timeout=10,
                         headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"})
    assert r.status_code in (200, 204)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    r = post(h2t_server, "half_plus_two:predict", {"instances": [1.0]}, headers={"Origin": "http://example.test"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("nope:predict", {"instances": [1.0]}, 404, "nope"),
        ("half_plus_two/versions/9:predict", {"instances": [1.0]}, 404, "9"),
        ("half_plus_two/labels/missing:predict", {"instances": [1.0]}, 400, "missing"),
        ("half_plus_two:predict", {"instances": [1.0], "inputs": [1.0]}, 400, "inputs"),
        ("half_plus_two:predict", {"signature_name": "serving_default"}, 400, "instances"),
        ("half_plus_two:predict", {"instances": ["a"]}, 400,
         'JSON Value: "a" Type: String is not of expected type: float'),
        ("half_plus_two:predict", {"signature_name": "two_inputs", "inputs": {"a": [[1.0], [2.0, 3.0]], "b": [1.0]}},
         400, "Encountered list at unexpected size: 2 at level: 1 expected size: 1"),
        ("half_plus_two:predict", {"signature_name": "echo_bytes", "instances": [{"b64": "%%%"}]}, 400, "base64"),
        ("half_plus_two:predict", {"signature_name": "nosuch", "instances": [1.0]}, 400, "nosuch"),
        ("half_plus_two:classify", {"signature_name": "classify_x_to_y"}, 400, "examples"),
    ],
    ids=["unknown-model", "unknown-version", "unknown-label", "both-keys", "neither-key", "wrong-dtype", "ragged",
         "bad-base64", "unknown-signature", "no-examples"],
)
def test_errors_have_tf_serving_status_and_json(h2t_server, path, body, status, needle):
    r = post(h2t_server, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err, str) and needle and needle in err


def test_malformed_json_and_unknown_status(h2t_server):
    r = requests.post(f"{h2t_server.rest}/v1/models/half_plus_two:predict", data=b"{not json", timeout=10)
    assert r.status_code == 400 and "error" in r.json()
    r = requests.get(f"{h2t_server.rest}/v1/models/nope", timeout=10)
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = requests.get(f"{h2t_server.rest}/v1/models/half_plus_two/versions/7", timeout=10)
    assert r.status_code == 404 and "7" in r.json()["error"]


def test_a_preflight_without_origin_is_400_with_tf_servings_empty_body_on_any_path(h2t_server):
    """http_server.cc answers OPTIONS before routing: FAILED_PRECONDITION without an http(s) Origin, and the
    handler that writes `{"error": …}` never runs, so the body is empty (before: aiohttp's 500 page)."""
    for path in ("/v1/models/half_plus_two:predict", "/v1/models/half_plus_two", "/v1/nowhere"):
        r = requests.options(f"{h2t_server.rest}{path}", timeout=10)
        assert (r.status_code, r.content) == (400, b""), (path, r.status_code, r.text[:200])
        ok = requests.options(f"{h2t_server.rest}{path}", headers={"Origin": "https://example.test"}, timeout=10)
        assert ok.status_code == 200, path


def test_bytes_that_are_no_tf_example_sent_to_an_example_signature_are_invalid_argument(h2t_server):
    # ParseExample's message quotes the request's bytes; TensorFlow's Python binding could not decode it (500).
    junk = base64.b64encode(b"\xff\xfe not an example").decode()
    r = post(h2t_server, "half_plus_two:predict", {"signature_name": "classify_x_to_y", "instances": [{"b64": junk}]})
    assert r.status_code == 400 and "Could not parse example input" in r.json()["error"], r.text[:300]


def test_json_nested_deeper_than_a_tensor_can_be_is_400(h2t_server):
    deep = "[" * 100 + '"a"' + "]" * 100
    r = requests.post(f"{h2t_server.rest}/v1/models/half_plus_two:predict", timeout=30,
                      data=f'{{"signature_name": "echo_bytes", "instances": {deep}}}')
    assert r.status_code == 400 and "nested 100 deep" in r.json()["error"], r.text[:300]
