"""The gRPC client (tensorflow-serving-api + grpcio); its command line is `python -m clients.grpc_client`."""

from __future__ import annotations

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from clients.base import BaseClient, ClientError, ModelInfo, ServerError, TensorInfo, Unavailable
from serving.codecs import tensor_codec

MAX_MESSAGE_BYTES = 2**31 - 1


def _tensor(values: list[bytes] | np.ndarray) -> tensor_pb2.TensorProto:
    """Encoded images (string tensor) or float32 pixels as a TensorProto."""
    if isinstance(values, np.ndarray):
        return tensor_codec.from_numpy(np.asarray(values, np.float32), as_content=True)
    strings = np.empty(len(values), dtype=object)
    strings[:] = values
    return tensor_codec.from_numpy(strings)


_array = tensor_codec.to_numpy


class GrpcClient(BaseClient):
    """PredictionService/ModelService client with a raised message limit, deadlines and retries."""

    def __init__(self, server: str = "localhost:8500", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server = server
        self.channel = grpc.insecure_channel(server, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _spec(self, target, signature: str = "") -> None:
        target.name = self.model
        if signature:
            target.signature_name = signature
        if self.version is not None:
            target.version.value = self.version
        elif self.label is not None:
            target.version_label = self.label

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            code = e.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"{self.server}: {code.name}: {e.details()}") from e
            raise ServerError(code.name, e.details() or "") from e

    def _status(self) -> list[dict]:
        req = get_model_status_pb2.GetModelStatusRequest()
        self._spec(req.model_spec)
        resp = self._call(self.models.GetModelStatus, req)
        state = get_model_status_pb2.ModelVersionStatus.State.Name
        return [{"version": s.version, "state": state(s.state), "error_message": s.status.error_message}
                for s in resp.model_version_status]

    def _metadata(self) -> ModelInfo:
        req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(req.model_spec)
        resp = self._call(self.predictions.GetModelMetadata, req)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sig_map)

        def info(t):
            shape = None if t.tensor_shape.unknown_rank else tuple(d.size for d in t.tensor_shape.dim)
            return TensorInfo(types_pb2.DataType.Name(t.dtype), shape)

        sigs = {k: {"inputs": {a: info(t) for a, t in s.inputs.items()},
                    "outputs": {a: info(t) for a, t in s.outputs.items()}} for k, s in sig_map.signature_def.items()}
        return ModelInfo(resp.model_spec.name, resp.model_spec.version.value, sigs)

    def _predict(self, signature, alias, values):
        req = predict_pb2.PredictRequest()
        self._spec(req.model_spec, signature)
        req.inputs[alias].CopyFrom(_tensor(values))
        resp = self._call(self.predictions.Predict, req)
        return {k: _array(v) for k, v in resp.outputs.items()}, resp.model_spec.version.value

    def _classify(self, signature, encoded):
        req = classification_pb2.ClassificationRequest()
        self._spec(req.model_spec, signature)
        for e in encoded:
            req.input.example_list.examples.add().features.feature["image/encoded"].bytes_list.value.append(e)
        resp = self._call(self.predictions.Classify, req)
        rows = [[(c.label, c.score) for c in cl.classes] for cl in resp.result.classifications]
        return rows, resp.model_spec.version.value


__all__ = ["GrpcClient", "ClientError"]
