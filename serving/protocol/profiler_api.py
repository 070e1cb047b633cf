"""TensorFlow's ProfilerService on the gRPC port, as tensorflow_model_server registers it (`--enable_profiler`,
default on): Profile and Terminate translate protos ↔ `serving.core.profiling`; the other methods are
UNIMPLEMENTED, as they are in TensorFlow's own service."""

from __future__ import annotations

import asyncio

import grpc

from serving.core.profiling import CaptureRequest, Profiler
from serving.errors import as_serving_error
from serving.protos import profiler_service_pb2 as pb

SERVICE = "tensorflow.ProfilerService"


class ProfilerServicer:
    """Profile (capture a trace of the serving process into the client's repository) and Terminate."""

    def __init__(self, profiler: Profiler | None = None):
        self.profiler = profiler or Profiler()

    async def Profile(self, request: pb.ProfileRequest, context) -> pb.ProfileResponse:
        capture = CaptureRequest(request.duration_ms, request.repository_root, request.session_id,
                                 request.host_name, request.opts)
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self.profiler.capture, capture)
        except Exception as e:
            err = as_serving_error(e)
            code, message = grpc.StatusCode[err.code], err.message
            del err
        else:
            return pb.ProfileResponse(empty_trace=result.empty, xspace=result.xspace if request.emit_xspace else b"")
        await context.abort(code, message)

    async def Terminate(self, request: pb.TerminateRequest, context) -> pb.TerminateResponse:
        self.profiler.terminate()
        return pb.TerminateResponse()


METHODS = {"Profile": pb.ProfileRequest, "Terminate": pb.TerminateRequest}
