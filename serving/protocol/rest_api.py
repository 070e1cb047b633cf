"""REST transport (aiohttp): TF Serving's `/v1/models/...` API on aiohttp's router, translating JSON ↔ core.

Routes follow TF Serving's path rules (http_rest_api_util.cc: case-insensitive `/v1/models`, `versions`, `labels`
and `metadata`; the verb must be lower case; anything else under `/v1/` is "Malformed request"). Small bodies are
parsed on the event loop; bodies over `DECODE_IN_POOL_BYTES` are parsed and decoded on the core's worker pool so
one large request cannot stall the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.codecs import json_codec, tensor_codec
from serving.core.inference import InferenceCore, ModelRef
from serving.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, PayloadTooLarge, as_serving_error
from serving.lifecycle.servable import DEFAULT_SIGNATURE

logger = logging.getLogger(__name__)

# Default --rest_api_max_body_bytes: a batch of 32 224×224 images as JSON pixels is ~20 MB; a body is held about
# 4× in memory while it is parsed, so this bounds one request's peak near 256 MiB.
MAX_BODY_BYTES = 64 << 20
DECODE_IN_POOL_BYTES = 256 << 10
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, Authorization",
    "Access-Control-Max-Age": "3600",
}
_ORIGIN = re.compile(r"https?://")
# TF Serving's path pieces, case-insensitive as its (?i) regexes; `{name}` excludes '/' and ':'.
_MODELS = "/{v1:(?i:v1)}/{models:(?i:models)}"
_MODEL = _MODELS + "/{name:[^/:]+}"
# RE2's \\d is ASCII only (Python's would take any Unicode digit).
_WHICH = ("", "/{versions:(?i:versions)}/{version:[0-9]+}", "/{labels:(?i:labels)}/{label:[^/:]+}")
_METADATA = "/{metadata:(?i:metadata)}"
# The OpenAPI 3 description of this API, served as written (TF Serving has none: an addition outside /v1).
OPENAPI_PATH = "/openapi.yaml"
OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")


def _ref(info: Mapping[str, str], signature_name: str = "") -> ModelRef:
    """The model reference a route's match names (ParseModelInfo's checks)."""
    version = info.get("version")
    if version and int(version) > tensor_codec.INT64_MAX:  # ParseModelInfo: absl::SimpleAtoi into an int64
        raise InvalidArgument(f"Failed to convert version: {version} to numeric.")
    return ModelRef(name=info["name"], version=int(version) if version else None, label=info.get("label"),
                    signature_name=signature_name)


@functools.cache
def _openapi_document() -> bytes:
    """The shipped OpenAPI file, read once, when it is first asked for."""
    return OPENAPI_FILE.read_bytes()


def status_json(statuses) -> dict:
    """`GET /v1/models/{name}[...]`: model_version_status as TF Serving prints it."""
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in statuses
    ]}


def metadata_json(servable) -> dict:
    """`GET …/metadata`: model_spec and the signature_def map."""
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for k, v in servable.signature_defs.items():
        sig_map.signature_def[k].CopyFrom(v)
    return {
        "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)},
    }


def _predict_decoder(request_json: dict, signature_name: str):
    """Predict inputs from the JSON body once the servable is known (the signature's dtypes drive the decoding)."""
    fmt, payload = json_codec.predict_format(request_json)

    def decode(servable):
        signature = servable.signatures.get(signature_name or DEFAULT_SIGNATURE)
        if signature is None:  # GetInfoMap, before the body is read as a PredictRequest
            raise InvalidArgument(f'Serving signature name: "{signature_name or DEFAULT_SIGNATURE}" not found in '
                                  f'signature def')
        return json_codec.decode_inputs(fmt, payload, {a: s.np_dtype for a, s in signature.inputs.items()})

    return fmt, decode


def _serialized_examples(request_json: dict) -> list[bytes]:
    examples, context = json_codec.decode_examples(request_json)
    prefix = context.SerializeToString() if context is not None else b""
    return [prefix + e.SerializeToString() for e in examples]


class RestApi:
    """The aiohttp application: one handler per TF Serving REST API, each only translating JSON ↔ core."""

    def __init__(self, core: InferenceCore, timeout_ms: int, cors: bool, metrics_route=None,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.core = core
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.cors = cors
        self.metrics_route = metrics_route  # (path, handler) or None
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no handler runs (or `timeout`); True when idle. aiohttp's own graceful shutdown stops reading
        from connections before it waits for handlers, so a request still uploading its body would be cut: the
        server stops the listeners, waits here, then lets `AppRunner.cleanup` close what is left."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def app(self) -> web.Application:
        """Build the aiohttp application and its routes."""
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[self._errors])
        if self.metrics_route:
            app.router.add_get(self.metrics_route[0], self.metrics_route[1], allow_head=False)
        for which in _WHICH:
            app.router.add_post(f"{_MODEL}{which}:{{verb:classify|regress|predict}}", self.post)
            app.router.add_get(f"{_MODEL}{which}", self.status, allow_head=False)
            app.router.add_get(f"{_MODEL}{which}{_METADATA}", self.metadata, allow_head=False)
        for which in _WHICH:  # TF Serving's GET pattern makes the name optional, then refuses an empty one
            app.router.add_get(f"{_MODELS}{which}", self.nameless, allow_head=False)
            app.router.add_get(f"{_MODELS}{which}{_METADATA}", self.nameless, allow_head=False)
        app.router.add_route("*", "/{v1:(?i:v1)}{tail:(/[\\s\\S]*)?}", self.malformed)  # any character, newlines too
        app.router.add_get(OPENAPI_PATH, self.openapi, allow_head=False)
        return app

    # ---- responses and errors -------------------------------------------------------------------------------
    def _respond(self, status: int, body: bytes) -> web.Response:
        headers = dict(_CORS) if self.cors else {}
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        """Every failure leaves as `{"error": ...}` with TF Serving's HTTP status; handlers in flight are counted."""
        self.in_flight += 1
        self._idle.clear()
        try:
            if request.method == "OPTIONS":  # any path: http_server.cc answers preflights before routing
                return await self.preflight(request)
            return await handler(request)
        except web.HTTPException:  # aiohttp's own answers outside /v1 (404 for other paths)
            raise
        except RecursionError as e:  # a JSON value nested deeper than any tensor can be
            err = InvalidArgument(f"JSON value nested too deeply: {e}")
        except Exception as e:
            err = as_serving_error(e)
            if err.code == "INTERNAL":
                logger.exception("internal error for %s %s", request.method, request.path)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
        status, body = err.http_status, json_codec.dumps({"error": err.message})
        # Dropped before answering: the error's traceback holds this frame, so keeping it would make a cycle that
        # keeps the failed request's decoded tensors alive until a garbage collection happens to run.
        del err
        return self._respond(status, body)

    async def preflight(self, request: web.Request) -> web.Response:
        """OPTIONS on any path of the API: CORS preflight, answered as http_server.cc does before any routing. An
        http(s) Origin is required; without one the status is FAILED_PRECONDITION (HTTP 400) and, as there, the
        body is empty (the handler that writes `{"error": …}` never runs for OPTIONS)."""
        ok = _ORIGIN.search(request.headers.get("Origin", "")) is not None
        status = 200 if ok else FailedPrecondition("Origin header is missing in CORS preflight").http_status
        return web.Response(status=status, headers=dict(_CORS) if self.cors else {})

    async def malformed(self, request: web.Request) -> web.Response:
        """Anything under /v1 that no API route takes."""
        # The path as sent (percent-encoded, with its query), as evhttp hands it to TF Serving's handler.
        raise InvalidArgument(f"Malformed request: {request.method} {request.raw_path}")

    async def nameless(self, request: web.Request) -> web.Response:
        """GET /v1/models[/versions/{v}|/labels/{l}][/metadata]: TF Serving parses these, then refuses them."""
        _ref({**request.match_info, "name": ""})  # a version past int64 is refused first, as there
        raise InvalidArgument("Missing model name in request.")

    async def openapi(self, request: web.Request) -> web.Response:
        """GET /openapi.yaml: the API's OpenAPI 3 description."""
        return web.Response(body=_openapi_document(), content_type="application/yaml")

    # ---- the APIs -------------------------------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.Response:
        """GET /v1/models/{name}[/versions/{v}|/labels/{l}]."""
        return self._respond(200, json_codec.dumps(status_json(await self.core.status(_ref(request.match_info)))))

    async def metadata(self, request: web.Request) -> web.Response:
        """GET …/metadata."""
        servable = await self.core.metadata(_ref(request.match_info))
        return self._respond(200, json_codec.dumps(await self.core.offload(metadata_json, servable)))

    async def post(self, request: web.Request) -> web.Response:
        """POST …:predict|classify|regress. Receiving the body and answering are each bounded by
        --rest_api_timeout_in_ms (a client trickling its body gets 408, a slow answer 504)."""
        try:
            # A client trickling its body must not hold a connection and a handler forever.
            raw = await asyncio.wait_for(request.read(), self.timeout)
        except asyncio.TimeoutError:
            return self._respond(408, json_codec.dumps(
                {"error": f"Request body not received within {int(self.timeout * 1000)} ms"}))
        except web.HTTPRequestEntityTooLarge as e:
            raise PayloadTooLarge(f"Request body exceeds the limit of {self.max_body_bytes} bytes "
                                  f"(--rest_api_max_body_bytes)") from e
        try:
            return await asyncio.wait_for(self._answer(request, raw), self.timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"Request timed out after {int(self.timeout * 1000)} ms") from None

    async def _answer(self, request: web.Request, raw: bytes) -> web.Response:
        deadline = time.perf_counter() + self.timeout if self.timeout else None
        body = _decompress(raw, request.headers.get("Content-Encoding", ""), self.max_body_bytes)
        big = len(body) > DECODE_IN_POOL_BYTES
        request_json = await self.core.offload(json_codec.loads, body) if big else json_codec.loads(body)
        signature_name = request_json.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise InvalidArgument(f"JSON Value: {json_codec.debug_string(signature_name)} not formatted correctly. "
                                  f"'signature_name' key must be a string value.")
        ref = _ref(request.match_info, signature_name)
        verb = request.match_info["verb"]
        if verb == "predict":
            fmt, decode = _predict_decoder(request_json, signature_name)
            result = await self.core.predict(ref, decode, (), deadline, entrypoint="REST", decode_in_pool=big)
            encode = json_codec.encode_predict_response
            out = await self.core.offload(encode, fmt, result.value) if big else encode(fmt, result.value)
            return self._respond(200, json_codec.dumps(out))
        examples = lambda: _serialized_examples(request_json)  # noqa: E731
        if verb == "classify":
            result = await self.core.classify(ref, examples, entrypoint="REST")
            return self._respond(200, json_codec.dumps(
                {"results": [[[label, score] for label, score in row] for row in result.value]}))
        result = await self.core.regress(ref, examples, entrypoint="REST")
        return self._respond(200, json_codec.dumps({"results": result.value}))


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """gzip/deflate bodies, inflated at most to `limit` bytes (a small bomb must not cost gigabytes)."""
    enc = encoding.strip().lower()
    if not enc or enc == "identity":
        return body
    if enc not in ("gzip", "deflate"):
        raise InvalidArgument(f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise InvalidArgument(f"cannot decompress {enc} request body: {e}") from e
    if len(out) > limit:
        raise PayloadTooLarge(f"{enc} request body inflates beyond the limit of {limit} bytes "
                              f"(--rest_api_max_body_bytes)")
    if not inflater.eof:
        raise InvalidArgument(f"cannot decompress {enc} request body: truncated stream")
    return out
