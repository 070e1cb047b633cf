"""The server's one error hierarchy and its mapping to HTTP and gRPC status codes (the only place it lives).

Codes are TensorFlow/gRPC canonical code names; the gRPC layer turns a name into `grpc.StatusCode[name]` (status and
number), the REST layer answers `{"error": message}` with `http_status`. The HTTP mapping is TF Serving's
(`ToHTTPStatusCode`).
"""

from __future__ import annotations

HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

class ServingError(Exception):
    """Base of every error a request can end with; `code` is a canonical code name."""

    code = "UNKNOWN"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers with for this code."""
        return HTTP_STATUS[self.code]


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    code = "NOT_FOUND"


class FailedPrecondition(ServingError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(ServingError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ServingError):
    code = "UNAVAILABLE"


class DeadlineExceeded(ServingError):
    code = "DEADLINE_EXCEEDED"


class Unimplemented(ServingError):
    code = "UNIMPLEMENTED"


class AlreadyExists(ServingError):
    code = "ALREADY_EXISTS"


class Internal(ServingError):
    code = "INTERNAL"


class PermissionDenied(ServingError):
    code = "PERMISSION_DENIED"


class DataLoss(ServingError):
    code = "DATA_LOSS"


class PayloadTooLarge(InvalidArgument):
    """A request body over the server's size limit: INVALID_ARGUMENT for gRPC, HTTP 413 for REST."""

    @property
    def http_status(self) -> int:
        return 413


def error_for_code(code: str, message: str) -> ServingError:
    """The ServingError for a canonical code name (the code kept even where no subclass exists, e.g. OUT_OF_RANGE;
    UNKNOWN for a name outside the canonical set). Numbers are the transports' business: gRPC's `StatusCode` and
    TensorFlow's `error_codes_pb2.Code` both carry them."""
    classes = {cls.code: cls for cls in ServingError.__subclasses__()}
    if code in classes:
        return classes[code](message)
    err = ServingError(message)
    err.code = code if code in HTTP_STATUS else "UNKNOWN"
    return err


def as_serving_error(exc: BaseException) -> ServingError:
    """Wrap an unexpected exception as INTERNAL, keeping ServingErrors as they are."""
    if isinstance(exc, ServingError):
        return exc
    err = Internal(f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
