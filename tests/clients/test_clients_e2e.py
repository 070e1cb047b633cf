"""Both clients, every mode, the command line's exit codes and the parity tool, against the local server."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from clients.grpc_transport import GrpcClient
from clients.preprocess import prepare
from clients.rest_transport import RestClient
from tests.serving.conftest import ROOT, free_port, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(exported_cifar10, tmp_path_factory):
    with serving("local", "cifar10", exported_cifar10.parent, tmp_path_factory.mktemp("client-server")) as s:
        yield s


@pytest.fixture(params=["grpc", "rest"])
def client(request, server):
    c = GrpcClient(server.grpc_target, "cifar10") if request.param == "grpc" else RestClient(server.rest, "cifar10")
    yield c
    c.close()


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "clients", *args], capture_output=True, text=True, input=stdin,
                          cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)


def test_metadata_gives_input_size(client):
    info = client.model_info()
    assert info.version == 1 and info.input_size() == (32, 32)
    assert {"serving_default", "predict_pixels", "classify"} <= set(info.signatures)


@pytest.mark.parametrize("mode", ["bytes", "pixels", "classify"])
def test_every_mode_matches_in_process_top1(client, mode, real_jpegs, exported_cifar10):
    files = real_jpegs[:6]
    prepared = [prepare(f.read_bytes(), f.name, (32, 32)) for f in files]
    preds = client.predict_all(prepared, batch_size=4, mode=mode, top_k=3)
    assert [p.image for p in preds] == [f.name for f in files]  # in order, across batches
    ref = tf.saved_model.load(str(exported_cifar10)).signatures["serving_default"](
        image_bytes=tf.constant([f.read_bytes() for f in files]))
    expected = [[n.decode() for n in row[:3]] for row in ref["class_names"].numpy()]
    assert [[t.label for t in p.top] for p in preds] == expected
    np.testing.assert_allclose([[t.score for t in p.top] for p in preds], ref["scores"].numpy()[:, :3], atol=1e-5)


def test_cli_table_json_directory_and_stdin(server, real_jpegs, cifar_test_dir):
    out = cli("predict", "--server", server.grpc_target, "--model", "cifar10", "--top-k", "2",
              str(real_jpegs[0]))
    assert out.returncode == 0, out.stderr
    assert real_jpegs[0].name in out.stdout and " %" in out.stdout
    out = cli("predict", "--protocol", "rest", "--server", server.rest, "--model", "cifar10", "--json",
              "--mode", "pixels", str(cifar_test_dir / "test" / "cat"))
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0 and len(lines) == len(list((cifar_test_dir / "test" / "cat").glob("*.jpg")))
    assert all(len(line["top"]) == 5 for line in lines)
    out = subprocess.run([sys.executable, "-m", "clients.rest_client", "--server", server.rest, "--model", "cifar10",
                          "--json", "-"], input=real_jpegs[1].read_bytes(), capture_output=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)["image"] == "<stdin>"


def test_cli_exit_codes(server, real_jpegs, tmp_path):
    img = str(real_jpegs[0])
    unknown = cli("predict", "--server", server.grpc_target, "--model", "nope", img)
    assert unknown.returncode == 3 and "Servable not found" in unknown.stderr
    version = cli("predict", "--protocol", "rest", "--server", server.rest, "--model", "cifar10", "--version", "9",
                  img)
    assert version.returncode == 3 and "9" in version.stderr
    down = cli("predict", "--server", f"127.0.0.1:{free_port()}", "--model", "cifar10", "--timeout", "2", img)
    assert down.returncode == 4 and "UNAVAILABLE" in down.stderr
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    unreadable = cli("predict", "--server", server.grpc_target, "--model", "cifar10", str(bad))
    assert unreadable.returncode == 2 and "bad.jpg" in unreadable.stderr
    missing = cli("predict", "--server", server.grpc_target, "--model", "cifar10", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_wait_until_available_and_unavailable_server():
    c = RestClient(f"http://127.0.0.1:{free_port()}", "cifar10", timeout=1, retries=1, backoff=0.01)
    from clients.base import Unavailable

    with pytest.raises(Unavailable):
        c.status()
    with pytest.raises(Unavailable, match="not AVAILABLE after 0.5s"):
        c.wait_until_available(0.5)


def test_parity_tool_on_real_images(server, exported_cifar10, real_jpegs):
    out = subprocess.run([sys.executable, "-m", "clients.parity", "--server", server.grpc_target, "--model", "cifar10",
                          "--saved-model", str(exported_cifar10), *map(str, real_jpegs[:8])],
                         capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for path in ("bytes_path", "pixels_path"):
        assert result[path]["images"] == 8
        assert result[path]["top1_agreement"] == 1.0
    assert result["bytes_path"]["max_abs_diff"] <= 1e-6
    assert "top-1 agreement" in out.stdout


def test_bench_short_bounded_run_reports_every_column(server, exported_cifar10, real_jpegs, tmp_path):
    csv_path = tmp_path / "bench.csv"
    out = subprocess.run(
        [sys.executable, "-m", "clients.bench", "--grpc", server.grpc_target, "--rest", server.rest,
         "--saved-model", str(exported_cifar10), "--image", str(real_jpegs[0]), "--protocol", "rest",
         "--mode", "bytes", "--concurrency", "1,2", "--warmup", "0.3", "--window", "0.5", "--max-windows", "3",
         "--max-seconds", "60", "--csv", str(csv_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert [s["concurrency"] for s in report["steps"]] == [1, 2]
    for step in report["steps"]:
        for key in ("throughput", "avg_us", "p50_us", "p90_us", "p95_us", "p99_us", "client_send_us",
                    "client_recv_us", "p50_ratio", "throughput_ratio"):
            assert step[key] > 0, key
        assert step["errors"] == 0
        assert step["baseline"]["drift"] >= 0 and step["throughput_ratio_batch32"] > 0
    assert len(report["baseline_measurements"]) == 3  # before step 1, between the steps, after step 2
    assert report["baseline"]["batch32_throughput"] > 0
    assert report["request_bytes"]["224x224"]["pixels_json"] > report["request_bytes"]["224x224"]["b64_jpeg_json"]
    import csv

    rows = list(csv.DictReader(csv_path.open()))
    from clients.bench.report import PERF_ANALYZER_COLUMNS

    assert list(rows[0]) == PERF_ANALYZER_COLUMNS and len(rows) == 2
    assert "in-process baseline" in out.stdout


def test_wait_holds_the_call_until_a_server_comes_up_with_the_model(exported_cifar10, real_jpegs, tmp_path):
    """`--wait` (the README's first call): started before the server exists, the client waits for the model."""
    from tests.serving.conftest import start_server

    grpc_port, rest_port = free_port(), free_port()
    client = subprocess.Popen([sys.executable, "-m", "clients.grpc_client", "--server", f"127.0.0.1:{grpc_port}",
                               "--model", "cifar10", "--wait", "120", "--top-k", "3", "--json", str(real_jpegs[0])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        server = start_server("local", ["--model_name=cifar10", f"--model_base_path={exported_cifar10.parent}"],
                              tmp_path, ports=(grpc_port, rest_port))
        with server:
            out, err = client.communicate(timeout=180)
    finally:
        client.kill()
    assert client.returncode == 0, err
    row = json.loads(out.strip().splitlines()[-1])
    assert row["image"] == str(real_jpegs[0]) and len(row["top"]) == 3


def test_demo_reuses_the_published_version_serves_it_and_stops_the_server_cleanly(exported_cifar10, cifar_test_dir,
                                                                                   tmp_path):
    out = subprocess.run([sys.executable, "-m", "clients.demo", "--data", str(cifar_test_dir),
                          "--model-base-path", str(exported_cifar10.parent.parent), "--cache-dir", str(tmp_path),
                          "--images-per-class", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"reusing {exported_cifar10}" in out.stdout and "server exited with 0" in out.stdout
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert (summary["model"], summary["version"], summary["images"]) == ("cifar10", 1, 10)
    for title in ("gRPC, encoded JPEG bytes (serving_default)", "REST, pixels resized locally (predict_pixels)",
                  "REST, Classify API (classify)"):
        assert f"=== {title}" in out.stdout
