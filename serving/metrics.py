"""TF Serving's Prometheus metrics (names and labels as tensorflow_model_server exports them), on prometheus_client.

Counters are exposed under their exact TF Serving names (no `_total` suffix), so a custom collector writes them;
histograms (microseconds) use prometheus_client's Histogram.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import Metric

from serving.errors import ServingError

# Exponential buckets in µs, 10 µs … ~2 min (TF Serving uses exponential latency buckets too).
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(29))
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
QUEUING_LATENCY = ":tensorflow:serving:batching_session:queuing_latency"
WARMUP_LATENCY = ":tensorflow:serving:model_warmup_latency"
LOAD_ATTEMPT_COUNT = ":tensorflow:cc:saved_model:load_attempt_count"
LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"
BATCH_SIZE = ":tensorflow:serving:batching_session:batch_size"


class _Counters:
    """Labelled counters exposed with their exact names and TYPE counter."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple, float]] = defaultdict(dict)
        self._labels: dict[str, tuple[str, ...]] = {}
        self._help: dict[str, str] = {}

    def define(self, name: str, doc: str, labels: tuple[str, ...]) -> None:
        self._labels[name], self._help[name] = labels, doc

    def inc(self, name: str, *label_values: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[name][label_values] = self._values[name].get(label_values, 0.0) + amount

    def collect(self):
        with self._lock:
            snapshot = {k: dict(v) for k, v in self._values.items()}
        for name, labels in self._labels.items():
            m = Metric(name, self._help[name], "counter")
            for values, count in snapshot.get(name, {}).items():
                m.add_sample(name, dict(zip(labels, values, strict=True)), count)
            yield m


UNKNOWN_MODEL = "(unknown model)"


class ServerMetrics:
    """Every metric the server records; `exposition()` renders the Prometheus text format."""

    def __init__(self, known_models=None):
        # Label values come only from configured models: a request for any other name is counted under
        # UNKNOWN_MODEL, so clients cannot grow the server's memory and every scrape with made-up names.
        self._known_models = known_models or (lambda: ())
        self.registry = CollectorRegistry(auto_describe=False)
        self.counters = _Counters()
        self.counters.define(REQUEST_COUNT, "The number of requests.", ("model_name", "status"))
        self.counters.define(LOAD_ATTEMPT_COUNT, "The number of times a SavedModel was attempted to load.",
                             ("model_path", "status"))
        self.registry.register(self.counters)

        def hist(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, doc, labels, registry=self.registry, buckets=LATENCY_BUCKETS_US)

        self.request_latency = hist(REQUEST_LATENCY, "Distribution of wall time (in microseconds) for requests.",
                                    ("model_name", "API", "entrypoint"))
        self.runtime_latency = hist(RUNTIME_LATENCY, "Distribution of wall time (in microseconds) for the runtime.",
                                    ("model_name", "API", "runtime"))
        self.queuing_latency = hist(QUEUING_LATENCY, "Distribution of wall time (in microseconds) spent queued.",
                                    ("thread_pool_name",))
        self.warmup_latency = hist(WARMUP_LATENCY, "Distribution of wall time (in microseconds) for warmup.",
                                   ("model_path", "status"))
        self.load_latency = hist(LOAD_LATENCY, "Latency in microseconds for SavedModels that were loaded.",
                                 ("model_path", "stage"))
        self.batch_size = Histogram(BATCH_SIZE, "Tracks the batch size distribution on the inputs.",
                                    ("padded",), registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))

    @contextlib.contextmanager
    def request(self, model_name: str, api: str, entrypoint: str):
        """Count a request (status: the error code of whatever escapes) and, when it succeeded, time it — as
        prediction_service_impl.cc and http_server.cc record them."""
        if model_name not in self._known_models():
            model_name = UNKNOWN_MODEL
        started = time.perf_counter()
        status = "OK"
        try:
            yield
        except ServingError as e:
            status = e.code
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            self.counters.inc(REQUEST_COUNT, model_name, status)
            if status == "OK":
                self.request_latency.labels(model_name, api, entrypoint).observe(
                    (time.perf_counter() - started) * 1e6)

    def runtime(self, model_name: str, api: str, seconds: float) -> None:
        """Time spent running the model."""
        self.runtime_latency.labels(model_name, api, "TF").observe(seconds * 1e6)

    def queued(self, seconds: float) -> None:
        """Time a request waited in the batch queue."""
        self.queuing_latency.labels("batch_threads").observe(seconds * 1e6)

    def batch(self, size: int, padded: int) -> None:
        """A batch that ran (real rows and padded size)."""
        self.batch_size.labels("false").observe(size)
        self.batch_size.labels("true").observe(padded)

    def load(self, model_path: str, ok: bool, seconds: float) -> None:
        """A version load attempt (with warmup)."""
        self.counters.inc(LOAD_ATTEMPT_COUNT, model_path, "success" if ok else "error")
        self.load_latency.labels(model_path, "load").observe(seconds * 1e6)

    def warmup(self, model_path: str, ok: bool, seconds: float) -> None:
        """A warmup replay."""
        self.warmup_latency.labels(model_path, "OK" if ok else "ERROR").observe(seconds * 1e6)

    def exposition(self) -> bytes:
        """The Prometheus text format, counters under their bare TF Serving names (prometheus_client would
        announce them as `<name>_total` in the HELP/TYPE lines while the samples keep the bare name)."""
        text = generate_latest(self.registry)
        for name in (REQUEST_COUNT, LOAD_ATTEMPT_COUNT):
            for kind in (b"HELP", b"TYPE"):
                text = text.replace(b"# %s %s_total " % (kind, name.encode()), b"# %s %s " % (kind, name.encode()))
        return text
