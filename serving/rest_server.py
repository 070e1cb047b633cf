"""REST transport (aiohttp): TF Serving's `/v1/models/...` API, translating JSON ↔ core in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from concurrent import futures

from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import json_codec
from serving.errors import DeadlineExceeded, InvalidArgument, PayloadTooLarge, as_serving_error
from serving.inference import InferenceCore, ModelRef
from serving.servable import DEFAULT_SIGNATURE

logger = logging.getLogger(__name__)

# Default --rest_api_max_body_bytes: a batch of 32 224×224 images as JSON pixels is ~20 MB; a body is held about
# 4× in memory while it is parsed, so this bounds one request's peak near 256 MiB.
MAX_BODY_BYTES = 64 << 20
_POST_RE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)$", re.I)
_GET_RE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?$", re.I)
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, Authorization",
    "Access-Control-Max-Age": "3600",
}


def _ref(match: re.Match, signature_name: str = "") -> ModelRef:
    name, version, label = match.group(1), match.group(2), match.group(3)
    return ModelRef(name=name, version=int(version) if version else None, label=label,
                    signature_name=signature_name)


def status_json(core: InferenceCore, ref: ModelRef) -> dict:
    """`GET /v1/models/{name}[...]`: model_version_status as TF Serving prints it."""
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in core.status(ref)
    ]}


def metadata_json(core: InferenceCore, ref: ModelRef) -> dict:
    """`GET …/metadata`: model_spec and the signature_def map."""
    servable = core.metadata(ref)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for k, v in servable.signature_defs.items():
        sig_map.signature_def[k].CopyFrom(v)
    return {
        "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)},
    }


def post_json(core: InferenceCore, match: re.Match, body: bytes, deadline: float | None = None) -> dict:
    """`POST …:predict|classify|regress` from raw body to response object."""
    request = json_codec.loads(body)
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise InvalidArgument(f"JSON Value: {json_codec.debug_string(signature_name)} not formatted correctly. "
                              f"'signature_name' key must be a string value.")
    ref = _ref(match, signature_name)
    verb = match.group(4).lower()
    if verb == "predict":
        servable = core.resolve(ref)
        signature = servable.signatures.get(signature_name or DEFAULT_SIGNATURE)
        if signature is None:  # GetInfoMap, before the body is read as a PredictRequest
            raise InvalidArgument(f'Serving signature name: "{signature_name or DEFAULT_SIGNATURE}" not found in '
                                  f'signature def')
        fmt, payload = json_codec.predict_format(request)
        specs = {a: s.np_dtype for a, s in signature.inputs.items()}
        inputs = json_codec.decode_inputs(fmt, payload, specs)
        result = core.predict_on(servable, signature_name, inputs, (), deadline)
        return json_codec.encode_predict_response(fmt, result.value)
    examples, context = json_codec.decode_examples(request)
    prefix = context.SerializeToString() if context is not None else b""
    serialized = [prefix + e.SerializeToString() for e in examples]
    if verb == "classify":
        return {"results": [[[label, score] for label, score in row]
                            for row in core.classify(ref, serialized).value]}
    return {"results": core.regress(ref, serialized).value}


class RestApi:
    """The aiohttp application; inference runs on a thread pool so the event loop keeps accepting."""

    def __init__(self, core: InferenceCore, threads: int, timeout_ms: int, cors: bool, metrics_route=None,
                 metrics=None, max_body_bytes: int = MAX_BODY_BYTES):
        self.core = core
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.pool = futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rest")
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.cors = cors
        self.metrics_route = metrics_route  # (path, handler) or None
        self.in_flight = 0

    @web.middleware
    async def _count_in_flight(self, request: web.Request, handler):
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is being handled (or `timeout`); True when drained."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return self.in_flight == 0

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[self._count_in_flight])
        if self.metrics_route:
            app.router.add_get(self.metrics_route[0], self.metrics_route[1])
        app.router.add_route("*", "/v1/{tail:.*}", self.handle)
        return app

    def _respond(self, status: int, body: bytes) -> web.Response:
        headers = dict(_CORS) if self.cors else {}
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    def _error(self, err) -> web.Response:
        return self._respond(err.http_status, json_codec.dumps({"error": err.message}))

    async def handle(self, request: web.Request) -> web.Response:
        """Route /v1/... requests."""
        if request.method == "OPTIONS" and self.cors:
            return web.Response(status=204, headers=_CORS)
        path = request.path
        try:
            if request.method == "GET" and (m := _GET_RE.match(path)):
                ref = _ref(m)
                fn = metadata_json if m.group(4) else status_json
                obj = await self._in_thread(fn, self.core, ref)
                return self._respond(200, json_codec.dumps(obj))
            if request.method == "POST" and (m := _POST_RE.match(path)):
                try:
                    # A client trickling its body must not hold a connection and a handler forever.
                    raw = await asyncio.wait_for(request.read(), self.timeout)
                except asyncio.TimeoutError:
                    return self._respond(408, json_codec.dumps(
                        {"error": f"Request body not received within {int(self.timeout * 1000)} ms"}))
                except web.HTTPRequestEntityTooLarge as e:
                    raise PayloadTooLarge(f"Request body exceeds the limit of {self.max_body_bytes} bytes "
                                          f"(--rest_api_max_body_bytes)") from e
                body = _decompress(raw, request.headers.get("Content-Encoding", ""), self.max_body_bytes)
                deadline = time.perf_counter() + self.timeout if self.timeout else None

                def work() -> bytes:
                    if self.metrics is None:
                        return json_codec.dumps(post_json(self.core, m, body, deadline))
                    with self.metrics.request(m.group(1), m.group(4).lower(), "REST"):
                        return json_codec.dumps(post_json(self.core, m, body, deadline))

                return self._respond(200, await self._in_thread(work))
            if request.method not in ("GET", "POST"):
                return self._respond(405, json_codec.dumps({"error": f"Unsupported method {request.method}"}))
            raise InvalidArgument(f"Malformed request: {request.method} {path}")
        except RecursionError as e:  # a JSON value nested deeper than any tensor can be
            return self._error(InvalidArgument(f"JSON value nested too deeply: {e}"))
        except Exception as e:  # every failure leaves as {"error": ...} with TF Serving's HTTP status
            err = as_serving_error(e)
            if err.code == "INTERNAL":
                logger.exception("internal error for %s %s", request.method, path)
            return self._error(err)

    async def _in_thread(self, fn, *args):
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, fn, *args)
        if self.timeout is None:
            return await future
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"Request timed out after {int(self.timeout * 1000)} ms") from None

    def close(self) -> None:
        """Wait for in-flight inference to finish."""
        self.pool.shutdown(wait=True)


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
