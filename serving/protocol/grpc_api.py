"""gRPC transport: PredictionService and ModelService from tensorflow-serving-api, translating protos ↔ core.

The server is `grpc.aio` on the same event loop as REST: requests are parsed and answered there. Without batching
the inference call runs on a worker thread; with batching a Predict is queued and its future awaited, so no thread
is parked per request (measured at concurrency 32: the sync server with a waiting thread per request did
387–455/s, this design 502–588/s on the same machine).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import stat
import time

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.codecs import tensor_codec
from serving.core.inference import InferenceCore, ModelRef, Result, examples_from_input
from serving.errors import InvalidArgument, as_serving_error
from serving.lifecycle.servable import DEFAULT_SIGNATURE

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving's limit for both directions (SetMaxMessageSize(kint32max))
# The local server accepts requests up to 256 MiB unless --grpc_channel_arguments sets
# grpc.max_receive_message_length: a request costs about 3× its size in memory while parsed and converted, and one
# message just under 2 GiB was measured to kill the server in a 6 GiB pod. Larger ones get RESOURCE_EXHAUSTED.
DEFAULT_MAX_RECEIVE_BYTES = 256 << 20


def _ref(spec) -> ModelRef:
    choice = spec.WhichOneof("version_choice")
    return ModelRef(
        name=spec.name,
        version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None,
        signature_name=spec.signature_name,
    )


def _code_number(code: str) -> int:
    """A canonical code name's number (tensorflow.error.Code numbers are gRPC's)."""
    return grpc.StatusCode[code].value[0]


def _echo_spec(target, result: Result) -> None:
    target.name = result.servable.name
    target.version.value = result.servable.version
    target.signature_name = result.signature.name or DEFAULT_SIGNATURE


def _rpc(method):
    """Run a servicer method, turning every failure into the matching gRPC status."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except Exception as e:  # every failure leaves as a gRPC status
            err = as_serving_error(e)
            if err.code == "INTERNAL":
                logger.exception("internal error in %s", method.__name__)
            code, message = grpc.StatusCode[err.code], err.message
            del err  # nothing may keep the failed request's frames (and its decoded tensors) alive
        # Aborting outside the handler: the abort's own exception would otherwise chain the failure and its
        # traceback, whose frames hold the request's arrays until a garbage collection happens to run.
        await context.abort(code, message)

    return wrapper


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.perf_counter() + remaining


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference, GetModelMetadata: protos in, core call, protos out."""

    def __init__(self, core: InferenceCore, tensor_content: bool = False):
        self.core = core
        self.tensor_content = tensor_content  # --enable_serialization_as_tensor_content

    @_rpc
    async def Predict(self, request, context):
        def decode(servable):
            return {k: tensor_codec.to_numpy(v, k) for k, v in request.inputs.items()}

        rows = tensor_codec.declared_rows(request.inputs)
        result = await self.core.predict(_ref(request.model_spec), decode, tuple(request.output_filter),
                                         _deadline(context), entrypoint="GRPC",
                                         declared=None if rows is None else (request.inputs.keys(), rows))
        response = predict_pb2.PredictResponse()
        _echo_spec(response.model_spec, result)
        for alias, arr in result.value.items():
            response.outputs[alias].CopyFrom(tensor_codec.from_numpy(arr, as_content=self.tensor_content))
        return response

    @_rpc
    async def Classify(self, request, context):
        result = await self.core.classify(_ref(request.model_spec), lambda: examples_from_input(request.input),
                                          entrypoint="GRPC")
        response = classification_pb2.ClassificationResponse()
        _echo_spec(response.model_spec, result)
        _fill_classifications(response.result, result.value)
        return response

    @_rpc
    async def Regress(self, request, context):
        result = await self.core.regress(_ref(request.model_spec), lambda: examples_from_input(request.input),
                                         entrypoint="GRPC")
        response = regression_pb2.RegressionResponse()
        _echo_spec(response.model_spec, result)
        response.result.regressions.extend(regression_pb2.Regression(value=v) for v in result.value)
        return response

    @_rpc
    async def MultiInference(self, request, context):
        tasks = [(_ref(t.model_spec), t.method_name) for t in request.tasks]
        results = await self.core.multi_inference(tasks, lambda: examples_from_input(request.input))
        response = inference_pb2.MultiInferenceResponse()
        for (_, method), result in zip(tasks, results, strict=True):
            out = response.results.add()
            _echo_spec(out.model_spec, result)
            if method.endswith("classify"):
                _fill_classifications(out.classification_result, result.value)
            else:
                out.regression_result.regressions.extend(regression_pb2.Regression(value=v) for v in result.value)
        return response

    @_rpc
    async def GetModelMetadata(self, request, context):
        fields = list(request.metadata_field)
        if not fields:
            raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
        for f in fields:
            if f != "signature_def":
                raise InvalidArgument(f"Metadata field {f} is not supported")
        servable = await self.core.metadata(_ref(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for k, v in servable.signature_defs.items():
            sig_map.signature_def[k].CopyFrom(v)
        response.metadata["signature_def"].Pack(sig_map)
        return response


def _fill_classifications(target, rows) -> None:
    for row in rows:
        c = target.classifications.add()
        c.classes.extend(classification_pb2.Class(label=label, score=score) for label, score in row)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, core: InferenceCore, reload_config):
        self.core = core
        self.reload_config = reload_config

    @_rpc
    async def GetModelStatus(self, request, context):
        statuses = await self.core.status(_ref(request.model_spec))
        response = get_model_status_pb2.GetModelStatusResponse()
        for s in statuses:
            mvs = response.model_version_status.add()
            mvs.version = s.version
            mvs.state = get_model_status_pb2.ModelVersionStatus.State.Value(s.state)
            mvs.status.error_code = _code_number(s.error_code)
            mvs.status.error_message = s.error_message
        return response

    async def HandleReloadConfigRequest(self, request, context):
        response = model_management_pb2.ReloadConfigResponse()
        try:
            # Loading models takes seconds: not on the event loop.
            await asyncio.get_running_loop().run_in_executor(None, self.reload_config, request.config)
        except Exception as e:  # reported in the response status and as the RPC status
            err = as_serving_error(e)
            response.status.error_code = _code_number(err.code)
            response.status.error_message = err.message
            await context.abort(grpc.StatusCode[err.code], err.message)
        return response


PREDICTION_METHODS = {
    "Classify": classification_pb2.ClassificationRequest, "Regress": regression_pb2.RegressionRequest,
    "Predict": predict_pb2.PredictRequest, "MultiInference": inference_pb2.MultiInferenceRequest,
    "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest,
}
MODEL_METHODS = {
    "GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
    "HandleReloadConfigRequest": model_management_pb2.ReloadConfigRequest,
}


def _add_service(server: grpc.aio.Server, service: str, servicer, methods: dict, on_call=None) -> None:
    """Register `servicer`'s methods taking raw request bytes, so a message that does not parse is answered
    INVALID_ARGUMENT naming the message type (grpc's own deserializer failure would leave as UNKNOWN)."""

    def handler(name: str, request_type):
        method = getattr(servicer, name)

        async def parse_and_call(raw: bytes, context):
            if on_call is not None:
                on_call()
            try:
                request = request_type.FromString(raw)
            except Exception as e:  # DecodeError, or a recursion limit hit by a hostile message
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Could not parse the request as {request_type.DESCRIPTOR.full_name}: {e}")
            return await method(request, context)

        return grpc.unary_unary_rpc_method_handler(parse_and_call, request_deserializer=None,
                                                   response_serializer=lambda message: message.SerializeToString())

    handlers = {name: handler(name, request_type) for name, request_type in methods.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


DEFAULT_MAX_CONNECTION_IDLE_MS = 300_000  # idle clients are sent GOAWAY after 5 min (none by default in gRPC)


def parse_channel_arguments(text: str) -> dict[str, int | str]:
    """--grpc_channel_arguments as tensorflow_model_server reads it: comma-separated key=value, ints where they
    parse, strings otherwise."""
    args: dict[str, int | str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--grpc_channel_arguments: expected key=value, got {item!r}")
        try:
            args[key.strip()] = int(value)
        except ValueError:
            args[key.strip()] = value.strip()
    return args


def build_grpc_server(core: InferenceCore, reload_config, port: int, ssl_config=None, health: bool = True,
                      tensor_content: bool = False, channel_arguments: str = "", on_call=None,
                      socket_path: str = "", profiler: bool = False) -> grpc.aio.Server:
    """A grpc.aio server bound to `port` on all interfaces (0: none) and to the Unix socket `socket_path` if given,
    with the same services and credentials on both, as server.cc (call inside the event loop; start it with
    await); `profiler` adds TensorFlow's ProfilerService; `on_call()` runs as each call reaches its handler."""
    options = {
        "grpc.max_receive_message_length": DEFAULT_MAX_RECEIVE_BYTES,
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.so_reuseport": 0,
        "grpc.max_connection_idle_ms": DEFAULT_MAX_CONNECTION_IDLE_MS,
        **parse_channel_arguments(channel_arguments),
    }
    server = grpc.aio.server(options=list(options.items()))
    predictions = PredictionServicer(core, tensor_content)
    _add_service(server, "tensorflow.serving.PredictionService", predictions, PREDICTION_METHODS, on_call)
    _add_service(server, "tensorflow.serving.ModelService", ModelServicer(core, reload_config), MODEL_METHODS,
                 on_call)
    if profiler:
        from serving.protocol import profiler_api

        _add_service(server, profiler_api.SERVICE, profiler_api.ProfilerServicer(), profiler_api.METHODS)
    if health:
        try:
            from grpc_health.v1 import health_pb2_grpc
            from grpc_health.v1._async import HealthServicer

            health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
        except ImportError:
            logger.info("grpcio-health-checking not installed: no gRPC health service")
    creds = None
    if ssl_config is not None:
        creds = grpc.ssl_server_credentials(
            [(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
            root_certificates=ssl_config.custom_ca.encode() or None,
            require_client_auth=ssl_config.client_verify,
        )
    if socket_path and os.path.lexists(socket_path) and not stat.S_ISSOCK(os.lstat(socket_path).st_mode):
        raise OSError(f"cannot serve gRPC on unix:{socket_path}: a file that is not a socket is in the way")
    for address in ([f"0.0.0.0:{port}"] if port else []) + ([f"unix:{socket_path}"] if socket_path else []):
        try:  # grpc replaces a stale socket file itself
            bound = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
        except RuntimeError as e:  # grpc's "Failed to bind to address …"
            raise OSError(f"cannot bind gRPC to {address}: {e}") from e
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {address}")
    return server
