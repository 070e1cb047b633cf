"""TF Serving's Prometheus metrics (names, labels and buckets as tensorflow_model_server exports them), on
prometheus_client.

Every metric here is one the real server exports under the same name and labels (the TensorFlow monitoring name
with `/` turned into `:`), so dashboards and alerts built on the local server work on the real one:
request_count, request_latency, runtime_latency (servables/tensorflow/util.cc); the batching session's
queuing_latency and wrapped_run_count (batching/batching_session.cc) and input_batch_size, processed_batch_size,
padding_size (batching/batching_util.h); model_warmup_latency (saved_model_warmup_util.cc); TensorFlow's
load_attempt_count and load_latency (tensorflow/cc/saved_model/loader.cc). The local server exports no metric of
its own. Counters are exposed under their exact names (no `_total` suffix), so a custom collector writes them;
samplers are Histograms in microseconds (or rows) with TF Serving's bucket limits.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import Metric

from serving.errors import ServingError


def exponential_buckets(scale: float, growth: float, count: int) -> tuple[float, ...]:
    """tensorflow::monitoring::Buckets::Exponential(scale, growth, count): the upper limits below +Inf."""
    return tuple(scale * growth**i for i in range(count))


LATENCY_BUCKETS_US = exponential_buckets(10, 1.8, 33)  # request/runtime/warmup latency: 10 µs … ~20 min
QUEUING_BUCKETS_US = exponential_buckets(100, 1.2, 52)  # batching_session queuing_latency: 100 µs … ~1 s
BATCH_SIZE_BUCKETS = exponential_buckets(1, 2, 14)  # input/processed batch size and padding: 1 … 8192
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
QUEUING_LATENCY = ":tensorflow:serving:batching_session:queuing_latency"
WRAPPED_RUN_COUNT = ":tensorflow:serving:batching_session:wrapped_run_count"
INPUT_BATCH_SIZE = ":tensorflow:serving:batching_session:input_batch_size"
PROCESSED_BATCH_SIZE = ":tensorflow:serving:batching_session:processed_batch_size"
PADDING_SIZE = ":tensorflow:serving:batching_session:padding_size"
WARMUP_LATENCY = ":tensorflow:serving:model_warmup_latency"
LOAD_ATTEMPT_COUNT = ":tensorflow:cc:saved_model:load_attempt_count"
LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"
COUNTERS = (REQUEST_COUNT, LOAD_ATTEMPT_COUNT, LOAD_LATENCY, WRAPPED_RUN_COUNT)


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
RUNTIME_APIS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}


class ServerMetrics:
    """Every metric the server records; `exposition()` renders the Prometheus text format."""

    def __init__(self, known_models=None):
        # Label values come only from configured models: a request for any other name is counted under
        # UNKNOWN_MODEL, so clients cannot grow the server's memory and every scrape with made-up names.
        self._known_models = known_models or (lambda: ())
        # prometheus_client adds a `<name>_created` gauge per histogram series; tensorflow_model_server has none.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.counters = _Counters()
        self.counters.define(REQUEST_COUNT, "The number of requests.", ("model_name", "status"))
        self.counters.define(LOAD_ATTEMPT_COUNT, "The number of times a SavedModel was successfully loaded.",
                             ("model_path", "status"))
        self.counters.define(LOAD_LATENCY, "Latency in microseconds for SavedModels that were successfully loaded.",
                             ("model_path",))
        self.counters.define(WRAPPED_RUN_COUNT, "Total count of run calls on the wrapped session", ())
        self.registry.register(self.counters)

        def hist(name: str, doc: str, labels: tuple[str, ...], buckets=LATENCY_BUCKETS_US) -> Histogram:
            return Histogram(name, doc, labels, registry=self.registry, buckets=buckets)

        self.request_latency = hist(REQUEST_LATENCY, "Distribution of wall time (in microseconds) for requests.",
                                    ("model_name", "API", "entrypoint"))
        self.runtime_latency = hist(RUNTIME_LATENCY, "Distribution of wall time (in microseconds) for the runtime.",
                                    ("model_name", "API", "runtime"))
        self.queuing_latency = hist(QUEUING_LATENCY, "Distribution of wall time spent (in microseconds) in queuing",
                                    ("thread_pool_name",), QUEUING_BUCKETS_US)
        self.warmup_latency = hist(WARMUP_LATENCY,
                                   "Distribution of wall time (in microseconds) for warming up the model.",
                                   ("model_path", "status"))
        self.input_batch_size = hist(INPUT_BATCH_SIZE, "Tracks the batch size distribution on the inputs.", (),
                                     BATCH_SIZE_BUCKETS)
        self.processed_batch_size = hist(PROCESSED_BATCH_SIZE, "Tracks the batch size distribution on processing.",
                                         (), BATCH_SIZE_BUCKETS)
        self.padding_size = hist(PADDING_SIZE, "Tracks the padding size distribution on batches.",
                                 ("execution_batch_size",), BATCH_SIZE_BUCKETS)

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
        """Time spent running the model, labelled as TF Serving's predictor, classifier and regressor record it
        (API "Predict", "Classify", "Regress"; runtime "TF"). MultiInference records none there, nor here."""
        label = RUNTIME_APIS.get(api)
        if label is not None:
            self.runtime_latency.labels(model_name, label, "TF").observe(seconds * 1e6)

    def queued(self, seconds: float) -> None:
        """Time a request waited in the batch queue."""
        self.queuing_latency.labels("").observe(seconds * 1e6)  # TF Serving creates its sessions with ""

    def scheduled(self, rows: int) -> None:
        """One input tensor of a request handed to the batching session (recorded before it is queued)."""
        self.input_batch_size.observe(rows)

    def batch(self, size: int, padded: int) -> None:
        """A batch about to run on the session: its padded size, the padding, one wrapped run."""
        self.processed_batch_size.observe(padded)
        self.padding_size.labels(str(padded)).observe(padded - size)
        self.counters.inc(WRAPPED_RUN_COUNT)

    def load(self, model_path: str, ok: bool, seconds: float) -> None:
        """A SavedModel load attempt (LoadSavedModel; warmup is recorded separately)."""
        self.counters.inc(LOAD_ATTEMPT_COUNT, model_path, "success" if ok else "fail")
        if ok:
            self.counters.inc(LOAD_LATENCY, model_path, amount=round(seconds * 1e6))

    def warmup(self, model_path: str, status: str, seconds: float) -> None:
        """A warmup replay; `status` as TF Serving labels it (absl::Status::ToString: "OK" or "CODE: message")."""
        self.warmup_latency.labels(model_path, status).observe(seconds * 1e6)

    def exposition(self) -> bytes:
        """The Prometheus text format, counters under their bare TF Serving names (prometheus_client would
        announce them as `<name>_total` in the HELP/TYPE lines while the samples keep the bare name)."""
        text = generate_latest(self.registry)
        for name in COUNTERS:
            for kind in (b"HELP", b"TYPE"):
                text = text.replace(b"# %s %s_total " % (kind, name.encode()), b"# %s %s " % (kind, name.encode()))
        return text
