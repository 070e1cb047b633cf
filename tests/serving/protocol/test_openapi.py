"""The REST API's OpenAPI 3 description: it validates, covers every route of the REST application, is served at
`/openapi.yaml`, and Schemathesis fuzzes every operation in it against a running server (no 5xx, every status,
content type and body as described). `FUZZ_EXAMPLES` sets Schemathesis's examples per operation too."""

from __future__ import annotations

import re

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.protocol.rest_api import OPENAPI_FILE, OPENAPI_PATH, RestApi
from tests.serving.conftest import CONFIGS, PROTOCOL_KINDS, labelled_half_plus_two
from tests.serving.protocol.test_fuzz_apis import EXAMPLES, still_serving

DOCUMENT = yaml.safe_load(OPENAPI_FILE.read_text())
SCHEMA = schemathesis.openapi.from_path(OPENAPI_FILE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
_PIECES = {"{v1}": "v1", "{models}": "models", "{versions}": "versions", "{labels}": "labels",
           "{metadata}": "metadata", "{name}": "{model_name}"}


def test_the_document_is_valid_openapi_3():
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.")


def described_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
            if method in ("get", "post", "put", "delete", "patch", "options")}


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the REST application, in OpenAPI's spelling (the catch-all for malformed
    /v1 requests aside: the document describes it in prose)."""
    async def metrics(request):  # pragma: no cover - only routed, never called
        raise NotImplementedError

    app = RestApi(core=None, timeout_ms=0, cors=False, metrics_route=("/monitoring/prometheus/metrics", metrics)).app()
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical
        if path.endswith("{tail}"):
            continue
        for piece, spelled in _PIECES.items():
            path = path.replace(piece, spelled)
        verbs = ("classify", "regress", "predict") if "{verb}" in path else ("",)
        for verb in verbs:
            routes.add((route.method, path.replace("{verb}", verb)))
    return routes


def test_every_route_of_the_rest_application_is_described():
    missing = app_routes() - described_routes()
    # /v1/models/metadata is a model named "metadata" (the named route takes it first, as TF Serving's regex).
    assert missing == {("GET", "/v1/models/metadata")}
    described = {(m, p) for m, p in described_routes() if m != "OPTIONS"}
    assert described - app_routes() == set()


def test_every_operation_has_an_error_answer_in_tf_servings_format():
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            if method in ("get", "post") and path.startswith("/v1"):
                error = op["responses"]["default"]["$ref"]
                assert error == "#/components/responses/Error", (method, path)


@pytest.fixture(scope="module", params=PROTOCOL_KINDS)
def described_server(request, tmp_path_factory, half_plus_two_source):
    """half_plus_two (versions 1 and 2, labels stable and canary) with CORS and Prometheus metrics on."""
    root = tmp_path_factory.mktemp("openapi")
    yield from labelled_half_plus_two(
        request.param, half_plus_two_source, root, {1: "1", 2: "2"}, "model_version_policy { all {} }",
        {"stable": 1, "canary": 2}, ("--rest_api_enable_cors_support=true",
                                     f"--monitoring_config_file={CONFIGS / 'monitoring.config'}"))


@pytest.mark.e2e
def test_the_local_server_serves_the_document(described_server):
    if described_server.kind == "tensorflow_model_server":
        pytest.skip("the document is the local server's addition")
    r = requests.get(described_server.rest + OPENAPI_PATH, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(r.text) == DOCUMENT


@pytest.mark.e2e
@pytest.mark.fuzz
@SCHEMA.parametrize()
@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_described(case, described_server):
    if described_server.kind == "tensorflow_model_server" and case.path == OPENAPI_PATH:
        pytest.skip("the document is the local server's addition")
    case.call_and_validate(base_url=described_server.rest, checks=CHECKS, timeout=30)


@pytest.mark.e2e
def test_the_server_serves_after_schemathesis(described_server):
    still_serving(described_server)
    assert re.search(r"^:tensorflow:serving:request_count", requests.get(
        described_server.rest + "/monitoring/prometheus/metrics", timeout=30).text, re.M)
