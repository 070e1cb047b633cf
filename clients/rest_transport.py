"""The REST client (requests); its command line is `python -m clients.rest_client`."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import requests

from clients.base import BaseClient, ClientError, ModelInfo, ServerError, TensorInfo, Unavailable


class RestClient(BaseClient):
    """TF Serving REST API client with deadlines and retries on 503."""

    def __init__(self, server: str = "http://localhost:8501", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base = server if "://" in server else f"http://{server}"
        self.base = self.base.rstrip("/")
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def _path(self) -> str:
        path = f"{self.base}/v1/models/{self.model}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{self.label}"
        return path

    def _request(self, method: str, url: str, body: bytes | None = None) -> dict:
        try:
            r = self.session.request(method, url, data=body, timeout=self.timeout,
                                     headers={"Content-Type": "application/json"} if body else None)
        except requests.ConnectionError as e:
            raise Unavailable(f"cannot connect to {self.base}: {e.__class__.__name__}") from e
        except requests.Timeout as e:
            raise Unavailable(f"{url}: no answer within {self.timeout:g}s") from e
        try:
            payload = r.json()
        except ValueError:
            payload = {"error": r.text[:200]}
        if r.status_code == 503:
            raise Unavailable(f"{url}: 503 {payload.get('error', '')}")
        if r.status_code != 200:
            raise ServerError(str(r.status_code), payload.get("error", r.reason))
        return payload

    def _status(self) -> list[dict]:
        obj = self._request("GET", self._path())
        return [{"version": int(s["version"]), "state": s["state"],
                 "error_message": s.get("status", {}).get("error_message", "")} for s in obj["model_version_status"]]

    def _metadata(self) -> ModelInfo:
        obj = self._request("GET", self._path() + "/metadata")

        def info(t):
            shape = t.get("tensor_shape", {})
            dims = None if shape.get("unknown_rank") else tuple(int(d.get("size", -1)) for d in shape.get("dim", []))
            return TensorInfo(t.get("dtype", ""), dims)

        defs = obj["metadata"]["signature_def"]["signature_def"]
        sigs = {k: {"inputs": {a: info(t) for a, t in s.get("inputs", {}).items()},
                    "outputs": {a: info(t) for a, t in s.get("outputs", {}).items()}} for k, s in defs.items()}
        return ModelInfo(obj["model_spec"]["name"], int(obj["model_spec"]["version"]), sigs)

    def _predict(self, signature, alias, values):
        b64 = isinstance(values, list)
        data = [{"b64": base64.b64encode(v).decode()} for v in values] if b64 else values
        body = orjson.dumps({"signature_name": signature, "inputs": {alias: data}},
                            option=orjson.OPT_SERIALIZE_NUMPY)
        obj = self._request("POST", self._path() + ":predict", body)
        outputs = obj["outputs"]
        if not isinstance(outputs, dict):
            outputs = {"output": outputs}
        arrays = {k: np.asarray(v, dtype=object if _is_text(v) else None) for k, v in outputs.items()}
        return arrays, self.version if self.version is not None else (self._info.version if self._info else None)

    def _classify(self, signature, encoded):
        body = orjson.dumps({"signature_name": signature,
                             "examples": [{"image/encoded": {"b64": base64.b64encode(e).decode()}} for e in encoded]})
        obj = self._request("POST", self._path() + ":classify", body)
        return [[(label, score) for label, score in row] for row in obj["results"]], self.version


def _is_text(v) -> bool:
    while isinstance(v, list) and v:
        v = v[0]
    return isinstance(v, str)


__all__ = ["RestClient", "ClientError"]
