"""Profiling the serving process for TensorFlow's ProfilerService (TensorBoard's "Capture profile").

TensorFlow's own profiler (`tf.profiler.experimental`) records the process — every Session run of every model,
the host threads, Python if asked — for the requested time; the trace is then written where TensorFlow's
ProfilerService writes it, `<repository_root>/<session_id>/<host_name>.xplane.pb`, which is where TensorBoard's
profiler client (`tf.profiler.experimental.client.trace`, TensorBoard's Profile tab) looks for it. One capture runs
at a time, as TensorFlow's profiler allows.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from serving.errors import InvalidArgument, Unavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureRequest:
    """What a ProfileRequest asks for (`options`: a serialized tensorflow.ProfileOptions, possibly empty)."""

    duration_ms: int
    repository_root: str
    session_id: str
    host_name: str = ""
    options: bytes = b""


@dataclass(frozen=True)
class Capture:
    """A finished capture: where the trace was written, its bytes, and whether it holds any event."""

    path: Path
    xspace: bytes
    empty: bool


class Profiler:
    """Runs one capture at a time; `terminate()` ends the running one early (its trace is still written)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def terminate(self) -> None:
        """Stop the capture in progress (TerminateRequest)."""
        self._stop.set()

    def capture(self, request: CaptureRequest) -> Capture:
        """Profile the process for `request.duration_ms` (blocking) and write the trace to the repository."""
        if not request.repository_root:
            raise InvalidArgument("ProfileRequest.repository_root is empty: nowhere to write the trace")
        if not request.session_id or "/" in request.session_id or request.session_id in (".", ".."):
            raise InvalidArgument(f"ProfileRequest.session_id {request.session_id!r} is not a directory name")
        if not self._lock.acquire(blocking=False):
            raise Unavailable("Another profiling session is active.")
        try:
            self._stop.clear()
            with tempfile.TemporaryDirectory(prefix="profile-") as scratch:
                written = self._record(request, Path(scratch))
                host = (request.host_name or socket.gethostname()).replace("/", "_")
                target = Path(request.repository_root) / request.session_id / f"{host}.xplane.pb"
                target.parent.mkdir(parents=True, exist_ok=True)
                data = written.read_bytes() if written else b""
                if written:
                    shutil.move(str(written), target)
                else:
                    target.write_bytes(b"")
            return Capture(target, data, _is_empty(data))
        finally:
            self._lock.release()

    def _record(self, request: CaptureRequest, scratch: Path) -> Path | None:
        import tensorflow as tf

        options = _profiler_options(request.options)
        try:
            tf.profiler.experimental.start(str(scratch), options=options)
        except (tf.errors.AlreadyExistsError, tf.errors.UnavailableError) as e:  # a session started elsewhere
            raise Unavailable(f"Another profiling session is active: {e.message}") from e
        try:
            self._stop.wait(request.duration_ms / 1000)
        finally:
            tf.profiler.experimental.stop()
        traces = sorted(scratch.glob("plugins/profile/*/*.xplane.pb"))
        logger.info("profiled the server for %d ms into %s", request.duration_ms, request.repository_root)
        return traces[-1] if traces else None


def _profiler_options(raw: bytes):
    """tf.profiler's options from a serialized ProfileOptions (TensorFlow's defaults for unset levels)."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import profiler_options_pb2

    opts = profiler_options_pb2.ProfileOptions.FromString(raw) if raw else profiler_options_pb2.ProfileOptions()
    return tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=opts.host_tracer_level or 2,
        python_tracer_level=opts.python_tracer_level,
        device_tracer_level=opts.device_tracer_level if raw else 1,
    )


def _is_empty(xspace: bytes) -> bool:
    """True when no plane of the XSpace has an event (TensorFlow's service then answers `empty_trace`)."""
    if not xspace:
        return True
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace.FromString(xspace)
    return not any(line.events for plane in space.planes for line in plane.lines)
