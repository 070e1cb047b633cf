"""Server fixtures: TF Serving's classic half_plus_two model built here, and server processes on free ports.

Every end-to-end test runs against the local server and, when `tensorflow_model_server` is on PATH, against the
real one too (otherwise that parameter is skipped with the reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "k8s" / "base" / "config"  # the deployment configs (image and Kubernetes)
# The real binary: $TF_SERVING_BINARY, else tensorflow_model_server on PATH. With TF_SERVING_REQUIRE_REAL=1 (CI that
# has the binary) a real-binary test that cannot run fails instead of skipping.
REAL_BINARY_ENV, REQUIRE_REAL_ENV = "TF_SERVING_BINARY", "TF_SERVING_REQUIRE_REAL"
REAL_BINARY = os.environ.get(REAL_BINARY_ENV) or shutil.which("tensorflow_model_server")
REQUIRE_REAL = os.environ.get(REQUIRE_REAL_ENV) == "1"
SERVER_KINDS = ["local", "tensorflow_model_server"]
# Protocol tests run the local server in-process (a thread of the test process); process-level behaviour (flags,
# startup refusals, signals, lifecycle) keeps a `python -m serving` subprocess.
PROTOCOL_KINDS = ["in-process", "tensorflow_model_server"]


def build_half_plus_two(path: Path, offset: float = 2.0, with_warmup: bool = False) -> Path:
    """y = 0.5·x + offset with `serving_default`, `classify_x_to_y`, `regress_x_to_y`, plus two test signatures:
    `two_inputs` (a, b → sum, product) and `echo_bytes` (data_bytes → out_bytes, length)."""
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(offset)

        def _y(self, x):
            return self.a * x + self.b

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self._y(x)}

        def _x_from_examples(self, inputs):
            feats = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})
            return feats["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            return {"scores": self._y(self._x_from_examples(inputs))}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": self._y(self._x_from_examples(inputs))}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None], tf.float32, name="b")])
        def two(self, a, b):
            return {"sum": a + b, "product": a * b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data_bytes")])
        def echo(self, data_bytes):
            return {"out_bytes": data_bytes, "length": tf.strings.length(data_bytes)}

    m = HalfPlusTwo()
    tf.saved_model.save(m, str(path), signatures={
        "serving_default": m.predict.get_concrete_function(),
        "classify_x_to_y": m.classify.get_concrete_function(),
        "regress_x_to_y": m.regress.get_concrete_function(),
        "two_inputs": m.two.get_concrete_function(),
        "echo_bytes": m.echo.get_concrete_function(),
    })
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    for mg in sm.meta_graphs:
        mg.signature_def["classify_x_to_y"].method_name = "tensorflow/serving/classify"
        mg.signature_def["regress_x_to_y"].method_name = "tensorflow/serving/regress"
    (path / "saved_model.pb").write_bytes(sm.SerializeToString())
    if with_warmup:
        write_predict_warmup(path, "half_plus_two", {"x": [1.0, 2.0]})
    return path


def write_predict_warmup(path: Path, model: str, inputs: dict, signature: str = "serving_default") -> None:
    """A warmup file with one Predict request."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = model, signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v, dtype=tf.float32))
    (path / "assets.extra").mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path / "assets.extra" / "tf_serving_warmup_requests")) as w:
        w.write(prediction_log_pb2.PredictionLog(predict_log={"request": req}).SerializeToString())


@pytest.fixture(scope="session")
def half_plus_two_source(tmp_path_factory) -> Path:
    """One built copy of half_plus_two (versions are copied from it, which is much faster than rebuilding)."""
    return build_half_plus_two(tmp_path_factory.mktemp("h2t") / "1", with_warmup=True)


def install_version(source: Path, base: Path, version: int) -> Path:
    """Copy a SavedModel into `base/<version>` atomically (hidden copy, then rename)."""
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".incoming-{version}"
    shutil.copytree(source, tmp)
    target = base / str(version)
    os.rename(tmp, target)
    return target


_ISSUED_PORTS: set[int] = set()
_PORT_LOCK = threading.Lock()


def free_port() -> int:
    """A port free on every interface (servers bind 0.0.0.0) and never handed out before in this test session,
    so two servers started by one test cannot be given the same port."""
    with _PORT_LOCK:
        while True:
            with socket.socket() as s:
                s.bind(("0.0.0.0", 0))
                port = s.getsockname()[1]
            if port not in _ISSUED_PORTS:
                _ISSUED_PORTS.add(port)
                return port


METRICS_PATH = "/monitoring/prometheus/metrics"  # the path k8s/base/config/monitoring.config sets


def metric(text: str, name: str, **labels) -> float:
    """The sum of a metric's samples in a Prometheus exposition, over the series carrying these labels."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def real_binary_unavailable() -> None:
    """Skip a real-binary test here, or fail it where the real binary is required (TF_SERVING_REQUIRE_REAL=1)."""
    reason = (f"{REAL_BINARY_ENV} does not name an executable and tensorflow_model_server is not on PATH "
              "(the real binary cannot run on this machine)")
    if REQUIRE_REAL:
        pytest.fail(f"{REQUIRE_REAL_ENV}=1 but {reason}")
    pytest.skip(reason)


# Servers started by a test and not yet stopped: after every test each must still be running (conftest.py at the
# tests root checks it), so a server that crashed in the middle of a test fails that test.
RUNNING: dict[int, ServerProcess] = {}


def check_running_servers() -> list[str]:
    """The servers registered as running that are no longer (each unregistered and described)."""
    problems = []
    for key, server in list(RUNNING.items()):
        if server.proc.poll() is not None:
            del RUNNING[key]
            problems.append(f"{server.kind} server on port {server.grpc_port} died during the test (exit "
                            f"{server.proc.returncode}):\n{server.log()[-3000:]}")
    return problems


@dataclass
class ServerProcess:
    """A running server (local or real) with its ports and log. As a context manager it stops the server on exit
    and fails the test when the server did not stop cleanly (hung, crashed, or exited with another code than its
    kind's); a failure of the test body itself is kept, the stop problem added to it as a note."""

    kind: str
    proc: subprocess.Popen
    grpc_port: int
    rest_port: int
    log_path: Path
    args: list[str] = field(default_factory=list)
    hung: bool = False

    def __post_init__(self):
        RUNNING[id(self)] = self

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def sigterm_exit_code(self) -> int:
        """The exit code after SIGTERM: the local server drains and exits 0; tensorflow_model_server installs no
        SIGTERM handler (tensorflow/serving#1853), so the signal ends it (Popen reports -SIGTERM)."""
        return -signal.SIGTERM if self.kind == "tensorflow_model_server" else 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_available(self, model: str, timeout: float = 120, version: int | None = None) -> None:
        """Block until `model` (or one version of it) is AVAILABLE over REST."""
        deadline = time.monotonic() + timeout
        url = f"{self.rest}/v1/models/{model}" + (f"/versions/{version}" if version else "")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                RUNNING.pop(id(self), None)
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                r = requests.get(url, timeout=2)
                if r.ok and any(s["state"] == "AVAILABLE" for s in r.json()["model_version_status"]):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{model} not AVAILABLE after {timeout}s:\n{self.log()[-3000:]}")

    def wait_exit(self, timeout: float = 120) -> int | None:
        """Wait for a server that is expected to exit on its own; its exit code, or None if it kept running."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        RUNNING.pop(id(self), None)
        return code

    def wait_connections(self, count: int, timeout: float = 30) -> None:
        """Block until the server process holds `count` accepted connections on its REST port."""
        import psutil

        proc = psutil.Process(self.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            accepted = [c for c in proc.net_connections("tcp")
                        if c.laddr and c.laddr.port == self.rest_port and c.status == psutil.CONN_ESTABLISHED]
            if len(accepted) >= count:
                return
            time.sleep(0.02)
        raise TimeoutError(f"the server did not accept {count} connections within {timeout}s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait (SIGKILL after `timeout`, marking the server hung); returns the exit code."""
        RUNNING.pop(id(self), None)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.hung = True
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stop_problem(self, code: int) -> str | None:
        """Why a stop with this exit code was not clean, or None."""
        if self.hung:
            return f"{self.kind} server did not exit after SIGTERM:\n{self.log()[-3000:]}"
        if code != self.sigterm_exit_code:
            return (f"{self.kind} server exited with {code} after SIGTERM, expected {self.sigterm_exit_code}:\n"
                    f"{self.log()[-3000:]}")
        return None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        problem = self.stop_problem(self.stop())
        if problem is not None:
            if exc is None:
                pytest.fail(problem)
            exc.add_note(problem)
        return False


class _InProcessProc:
    """The part of Popen the fixtures use, for a server running on a thread of the test process."""

    def __init__(self, thread: threading.Thread):
        self.thread = thread
        self.returncode: int | None = None
        self.pid = os.getpid()

    def poll(self) -> int | None:
        return self.returncode if not self.thread.is_alive() else None


@dataclass
class InProcessServer(ServerProcess):
    """The local server's `ModelServer` on a thread of the test process (same transports, real loopback sockets):
    no interpreter and TensorFlow start per server, and its failures show in the test's own traceback."""

    server: object = None
    error: list = field(default_factory=list)

    def log(self) -> str:
        return "".join(f"{type(e).__name__}: {e}\n" for e in self.error) or "(in-process server: see captured logs)"

    def stop(self, timeout: float = 30) -> int:
        RUNNING.pop(id(self), None)
        self.server.request_stop()
        self.proc.thread.join(timeout)
        if self.proc.thread.is_alive():
            self.hung = True
            return -1
        return self.proc.returncode


def start_in_process(args: list[str], log_dir: Path) -> InProcessServer:
    """Start `ModelServer` with these flags on a background thread; returns once its ports accept."""
    from serving.flags import parse_flags
    from serving.server import ModelServer

    grpc_port, rest_port = free_port(), free_port()
    argv = [f"--port={grpc_port}", f"--rest_api_port={rest_port}", *args]
    server = ModelServer(parse_flags(argv))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
            proc.returncode = 0
        except BaseException as e:  # kept: stop() and the after-test check report it
            errors.append(e)
            proc.returncode = 255

    thread = threading.Thread(target=run, name=f"model-server-{grpc_port}", daemon=True)
    proc = _InProcessProc(thread)
    thread.start()
    while not server.serving.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError(f"in-process server failed to start: {errors}")
    return InProcessServer("local", proc, grpc_port, rest_port, log_dir / "in-process.log", argv, False, server,
                           errors)


def start_server(kind: str, args: list[str], log_dir: Path, ports: tuple[int, int] | None = None) -> ServerProcess:
    """Start the local server (`python -m serving`) or the real binary with the same flags on `ports` (gRPC, REST;
    reserved ones by default); kind "in-process" runs the local server on a thread of the test process. Use it as a
    context manager to stop it checked."""
    if kind == "in-process":
        return start_in_process(args, log_dir)
    if kind == "tensorflow_model_server" and not REAL_BINARY:
        real_binary_unavailable()
    grpc_port, rest_port = ports or (free_port(), free_port())
    cmd = [sys.executable, "-m", "serving"] if kind == "local" else [REAL_BINARY]
    cmd += [f"--port={grpc_port}", f"--rest_api_port={rest_port}", *args]
    log_path = log_dir / f"server-{grpc_port}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    return ServerProcess(kind, proc, grpc_port, rest_port, log_path, cmd)


@contextlib.contextmanager
def serving(kind: str, model: str, base_path: Path, log_dir: Path):
    """A server for one model directory, AVAILABLE on entry, stopped (and checked) on exit."""
    with start_server(kind, [f"--model_name={model}", f"--model_base_path={base_path}"], log_dir) as server:
        server.wait_available(model)
        yield server


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request) -> str:
    if request.param == "tensorflow_model_server" and not REAL_BINARY:
        real_binary_unavailable()
    return request.param


def labelled_half_plus_two(kind: str, src: Path, root: Path, versions: dict[int, str], policy: str,
                            labels: dict[str, int], extra: tuple[str, ...] = ()):
    """Serve half_plus_two from `base` with the given version directory names, policy and labels (the startup
    config carries labels, so the flag tensorflow_model_server needs for them is passed); yields when AVAILABLE."""
    if kind == "tensorflow_model_server" and not REAL_BINARY:
        real_binary_unavailable()
    base = root / "half_plus_two"
    for version, dirname in versions.items():
        install_version(src, base, version)
        if dirname != str(version):
            (base / str(version)).rename(base / dirname)
    label_lines = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels.items())
    config = root / "models.config"
    config.write_text(f"""
model_config_list {{
  config {{
    name: "half_plus_two"
    base_path: "{base}"
    model_platform: "tensorflow"
    {policy}
{label_lines}  }}
}}
""")
    with start_server(kind, [f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models",
                             *extra], root) as server:
        for version in versions:
            server.wait_available("half_plus_two", version=version)
        yield server


@pytest.fixture(scope="module", params=PROTOCOL_KINDS)
def h2t_server(request, tmp_path_factory, half_plus_two_source):
    """A server with half_plus_two versions 1 and 2 (policy: all) and label stable=1, canary=2."""
    root = tmp_path_factory.mktemp("h2t-repo")
    yield from labelled_half_plus_two(request.param, half_plus_two_source, root, {1: "1", 2: "2"},
                                       "model_version_policy { all {} }", {"stable": 1, "canary": 2},
                                       ("--rest_api_enable_cors_support=true",))


@pytest.fixture(scope="module", params=PROTOCOL_KINDS)
def conformance_server(request, tmp_path_factory, half_plus_two_source):
    """TF Serving's test-model layout: half_plus_two in `00000123/` (parsed as version 123), label `stable` → 123.
    Conformance vectors run against the local server and, when it is on PATH, tensorflow_model_server."""
    root = tmp_path_factory.mktemp("conformance")
    yield from labelled_half_plus_two(request.param, half_plus_two_source, root, {123: "00000123"}, "",
                                       {"stable": 123})
