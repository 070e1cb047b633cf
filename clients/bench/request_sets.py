"""The request functions `clients.bench` (and `clients.bench.transport_floor`) load a server with.

Every request of a run is the same, so it is encoded once (as perf_analyzer prepares its input data once, and as the
in-process baseline reuses its input tensor): the load generator's own CPU shares the server's cores. A request
function returns its (send_s, wait_s, recv_s) phases.
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlparse

import orjson

from clients.bench.load import RequestFn

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


def predict_payload(model: str, signature: str, alias: str, value) -> bytes:
    """One serialized PredictRequest."""
    from tensorflow_serving.apis import predict_pb2

    from clients.grpc_transport import _tensor

    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = model, signature
    req.inputs[alias].CopyFrom(_tensor(value))
    return req.SerializeToString()


def grpc_request_factory(target: str, payload: bytes, output: str = "probabilities"):
    """Per-worker request functions that send `payload` to Predict over one shared channel and decode `output`."""
    import grpc
    from tensorflow_serving.apis import predict_pb2

    from clients.grpc_transport import _array

    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 2**31 - 1)])
    predict = channel.unary_unary(PREDICT_METHOD, request_serializer=None,
                                  response_deserializer=predict_pb2.PredictResponse.FromString)

    def factory() -> RequestFn:
        def call():
            t1 = time.perf_counter()
            resp = predict(payload, timeout=30)
            t2 = time.perf_counter()
            _array(resp.outputs[output])
            return 0.0, t2 - t1, time.perf_counter() - t2
        return call
    return factory


def rest_request_factory(base_url: str, model: str, signature: str, value):
    """Per-worker request functions that POST one pre-encoded `:predict` body (`instances`: `value`), each worker on
    its own keep-alive connection."""
    target = urlparse(base_url)
    path = f"{target.path.rstrip('/')}/v1/models/{model}:predict"
    headers = {"Content-Type": "application/json"}
    body = orjson.dumps({"signature_name": signature, "instances": value}, option=orjson.OPT_SERIALIZE_NUMPY)

    def factory() -> RequestFn:
        # One keep-alive connection per worker with the standard library's HTTP client, as a load generator should
        # be: `requests` adds ~1 ms of client-side Python per call, which would be charged to the server.
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)

        def call():
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                t1 = time.perf_counter()
                r = conn.getresponse()
                content = r.read()
            except (OSError, http.client.HTTPException):
                conn.close()  # reconnects on the next call
                raise
            t2 = time.perf_counter()
            if r.status != 200:
                raise RuntimeError(content.decode(errors="replace"))
            orjson.loads(content)
            return t1 - t0, t2 - t1, time.perf_counter() - t2
        return call
    return factory
