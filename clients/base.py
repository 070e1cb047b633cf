"""What the gRPC and REST clients share: the API, model metadata, retries, batching, errors with exit codes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from clients.decode import Prediction, from_classifications, from_outputs
from clients.preprocess import PreparedImage

logger = logging.getLogger(__name__)
T = TypeVar("T")

MODES = ("bytes", "pixels", "classify")
DEFAULT_SIGNATURES = {"bytes": "serving_default", "pixels": "predict_pixels", "classify": "classify"}


class ClientError(Exception):
    """A failure a script can act on; `exit_code` is what the command line exits with."""

    exit_code = 1


class ServerError(ClientError):
    """The server answered with an error (its message is kept)."""

    exit_code = 3

    def __init__(self, code: str, message: str):
        super().__init__(f"server error {code}: {message}")
        self.code, self.server_message = code, message


class Unavailable(ClientError):
    """Cannot connect, or the server stayed UNAVAILABLE/503 through every retry, or a deadline passed."""

    exit_code = 4


@dataclass(frozen=True)
class TensorInfo:
    """dtype (e.g. DT_FLOAT) and shape (-1 unknown) of a signature input or output."""

    dtype: str
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class ModelInfo:
    """What GetModelMetadata / REST metadata says about the served model."""

    name: str
    version: int
    signatures: dict[str, dict[str, dict[str, TensorInfo]]]

    def input_size(self, signature: str = "predict_pixels") -> tuple[int, int] | None:
        """(height, width) of the model's pixel input, read from the signature's [-1, H, W, 3] shape."""
        candidates = [signature] + [s for s in self.signatures if s != signature]
        for name in candidates:
            for info in self.signatures.get(name, {}).get("inputs", {}).values():
                if info.dtype == "DT_FLOAT" and info.shape and len(info.shape) == 4 and info.shape[1] > 0:
                    return info.shape[1], info.shape[2]
        return None

    def only_input(self, signature: str) -> str:
        """The alias of a signature's single input."""
        sig = self.signatures.get(signature)
        if sig is None:
            raise ServerError("FAILED_PRECONDITION", f"model {self.name} has no signature {signature!r} "
                                                     f"(it has {sorted(self.signatures)})")
        if len(sig["inputs"]) != 1:
            raise ClientError(f"signature {signature!r} has inputs {sorted(sig['inputs'])}; expected one")
        return next(iter(sig["inputs"]))


class BaseClient:
    """Common behaviour; subclasses implement the `_…` transport calls."""

    def __init__(self, model: str, version: int | None = None, label: str | None = None, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.2):
        if version is not None and label is not None:
            raise ClientError("give a version or a label, not both")
        self.model, self.version, self.label = model, version, label
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._info: ModelInfo | None = None

    # transport -------------------------------------------------------------------------------------------------
    def _status(self) -> list[dict]:
        raise NotImplementedError

    def _metadata(self) -> ModelInfo:
        raise NotImplementedError

    def _predict(self, signature: str, alias: str, values: list[bytes] | np.ndarray) -> tuple[dict, int]:
        raise NotImplementedError

    def _classify(self, signature: str, encoded: list[bytes]) -> tuple[list, int]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""

    # API ---------------------------------------------------------------------------------------------------------
    def with_retries(self, fn: Callable[[], T]) -> T:
        """Call `fn`, retrying with exponential backoff only while the server is UNAVAILABLE."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Unavailable:
                if attempt == self.retries:
                    raise
                logger.info("server unavailable, retrying in %.1fs", delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def status(self) -> list[dict]:
        """Version states: [{"version": int, "state": str, "error_message": str}]."""
        return self.with_retries(self._status)

    def model_info(self) -> ModelInfo:
        """Cached model metadata (signatures, input size)."""
        if self._info is None:
            self._info = self.with_retries(self._metadata)
        return self._info

    def wait_until_available(self, seconds: float) -> None:
        """Poll the model status until a version is AVAILABLE."""
        deadline = time.monotonic() + seconds
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if any(s["state"] == "AVAILABLE" for s in self._status()):
                    return
            except ClientError as e:
                last = e
            time.sleep(0.25)
        raise Unavailable(f"model {self.model} not AVAILABLE after {seconds:g}s" + (f" ({last})" if last else ""))

    def predict(self, images: Sequence[PreparedImage], mode: str = "bytes", signature: str | None = None,
                top_k: int = 5, labels: Sequence[str] | None = None) -> list[Prediction]:
        """One request for all `images` (keep batches modest); predictions in input order."""
        if mode not in MODES:
            raise ClientError(f"unknown mode {mode!r}; use one of {MODES}")
        sig = signature or DEFAULT_SIGNATURES[mode]
        if mode == "classify":
            rows, version = self.with_retries(lambda: self._classify(sig, [i.encoded for i in images]))
            tops = from_classifications(rows, top_k)
        else:
            alias = self.model_info().only_input(sig)
            if mode == "bytes":
                values = [i.encoded for i in images]
            else:
                if any(i.pixels is None for i in images):
                    raise ClientError("pixels mode needs images prepared at the model's input size")
                values = np.stack([i.pixels for i in images]).astype(np.float32, copy=False)
            outputs, version = self.with_retries(lambda: self._predict(sig, alias, values))
            tops = from_outputs(outputs, top_k, labels)
        return [Prediction(img.name, tuple(top), self.model, version)
                for img, top in zip(images, tops, strict=True)]

    def raw_outputs(self, values: list[bytes] | np.ndarray, signature: str) -> tuple[dict[str, np.ndarray], int]:
        """All outputs of a predict signature for encoded images (list) or float pixels (array), and the version."""
        alias = self.model_info().only_input(signature)
        return self.with_retries(lambda: self._predict(signature, alias, values))

    def predict_all(self, images: Sequence[PreparedImage], batch_size: int = 8, **kw) -> list[Prediction]:
        """`predict` in batches of `batch_size`, in order."""
        out: list[Prediction] = []
        for i in range(0, len(images), max(1, batch_size)):
            out.extend(self.predict(images[i:i + batch_size], **kw))
        return out

