"""A failed request's decoded tensors are freed when it is answered, not when a garbage collection happens to run:
the transports keep no reference cycle through the error's traceback (with a 37-byte gRPC request that fills 1 Mi
strings, such cycles grew the server by about 1 MiB per refused request until Python's collector ran)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2

from serving.errors import InvalidArgument
from serving.protocol.grpc_api import PredictionServicer
from serving.protocol.rest_api import RestApi

DECODED: list[weakref.ref] = []


class RefusingCore:
    """Decodes the request's inputs, keeps only a weak reference to them, then refuses the request."""

    async def predict(self, ref, decode, *args, **kwargs):
        inputs = decode(None)
        DECODED.append(weakref.ref(next(iter(inputs.values()))))
        raise InvalidArgument("Expects arg[0] to be float but string is provided")


class Aborted(Exception):
    pass


class Context:
    """The part of grpc.aio's ServicerContext the servicer uses; abort raises as grpc's does."""

    def time_remaining(self):
        return None

    async def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(details)


@pytest.fixture
def no_collector():
    DECODED.clear()
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_a_refused_grpc_request_leaves_no_decoded_tensor_behind(no_collector):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_STRING
    tensor.tensor_shape.dim.add().size = 1 << 16
    tensor.string_val.append(b"x")
    context = Context()
    with pytest.raises(Aborted):
        asyncio.run(PredictionServicer(RefusingCore()).Predict(request, context))
    assert context.details.startswith("Expects arg[0]")
    assert len(DECODED) == 1 and DECODED[0]() is None


def test_a_refused_rest_request_leaves_no_decoded_tensor_behind(no_collector):
    class Request:
        method, path = "POST", "/v1/models/m:predict"

    async def handler(request):
        return await RefusingCore().predict(None, lambda servable: {"x": np.zeros(1 << 16, np.float32)})

    api = RestApi(core=None, timeout_ms=0, cors=False)
    response = asyncio.run(api._errors(Request(), handler))
    assert response.status == 400
    assert len(DECODED) == 1 and DECODED[0]() is None
