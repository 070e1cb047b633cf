"""Where tensorflow_model_server refuses to start, the local server refuses too: same message, non-zero exit.

main.cc prints `Failed to start server. Error: <status>` and returns -1 when Server::BuildAndStart fails: a bad flag
combination, an invalid config, a version label on a version that is not AVAILABLE (labels are checked before
anything loads), or a model whose version fails to load.
"""

from __future__ import annotations

import pytest
import requests

from tests.serving.conftest import install_version, start_server

pytestmark = pytest.mark.e2e
NO_RETRY = ["--max_num_load_retries=0", "--load_retry_interval_micros=1000"]


def refused(server, timeout: float = 120) -> str:
    """Wait for the server to exit; it must fail, and its output is returned."""
    code = server.wait_exit(timeout)
    if code is None:
        server.stop()
        pytest.fail(f"server kept running:\n{server.log()[-2000:]}")
    assert code != 0, server.log()[-2000:]
    return server.log()


def config_with(tmp_path, body: str):
    path = tmp_path / "models.config"
    path.write_text(f"model_config_list {{ config {{ {body} }} }}")
    return path


def test_a_label_in_the_startup_config_needs_the_allow_flag(server_kind, tmp_path, half_plus_two_source):
    base = tmp_path / "half_plus_two"
    install_version(half_plus_two_source, base, 1)
    cfg = config_with(tmp_path, f"name: 'half_plus_two' base_path: '{base}' model_platform: 'tensorflow' "
                                "version_labels { key: 'stable' value: 1 }")
    log = refused(start_server(server_kind, [f"--model_config_file={cfg}"], tmp_path))
    assert ("Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to version 1 of model "
            "half_plus_two, which is not currently available for inference") in log
    with start_server(server_kind, [f"--model_config_file={cfg}", "--allow_version_labels_for_unavailable_models"],
                      tmp_path) as server:
        server.wait_available("half_plus_two")


def test_a_version_that_fails_to_load_fails_the_start(server_kind, tmp_path):
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "saved_model.pb").write_bytes(b"\x0a\xff\xff not a SavedModel")
    log = refused(start_server(server_kind, ["--model_name=broken", f"--model_base_path={tmp_path / 'broken'}",
                                             *NO_RETRY], tmp_path))
    assert "Failed to start server. Error: UNKNOWN: 1 model(s) did not become available: {{{name: broken version: 1}" \
        in log
    assert "as binary proto" in log


@pytest.mark.parametrize(("args", "message"), [
    (["--model_name=m", "--model_base_path=relative/m"],
     "INVALID_ARGUMENT: Expected model m to have an absolute path or URI; got base_path()=relative/m"),
    (["--model_name=m", "--model_base_path=/tmp/m", "--batching_parameters_file=/tmp/b.config"],
     "INVALID_ARGUMENT: server_options.batching_parameters_file is set without setting "
     "server_options.enable_batching to true."),
    ([], "INVALID_ARGUMENT: Both server_options.model_base_path and server_options.model_config_file are empty!"),
    (["--port=0"], "INVALID_ARGUMENT: At least one of server_options.grpc_port or server_options.grpc_socket_path "
                   "must be set."),
    (["--model_name=m", "--model_base_path=/tmp/m", "--tensorflow_intra_op_parallelism=1",
      "--tensorflow_inter_op_parallelism=1", "--tensorflow_session_parallelism=1"],
     "You cannot configure all."),
])
def test_flag_combinations_tf_serving_refuses(server_kind, tmp_path, args, message):
    log = refused(start_server(server_kind, args, tmp_path))
    assert "Failed to start server. Error: " in log and message in log


def test_an_invalid_config_file_is_refused(server_kind, tmp_path):
    cfg = tmp_path / "models.config"
    cfg.write_text("model_config_list { config { name: 'a' base_path: '/m/a' oops: 1 } }")
    log = refused(start_server(server_kind, [f"--model_config_file={cfg}"], tmp_path))
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{cfg}'" in log


def test_a_base_path_without_versions_is_reported_as_the_real_server_would_wait(tmp_path):
    (tmp_path / "empty").mkdir()
    import time

    with start_server("local", ["--model_name=empty", f"--model_base_path={tmp_path / 'empty'}"], tmp_path) as server:
        deadline = time.monotonic() + 60
        while "No versions of servable empty found under base path" not in server.log():
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.2)  # polling the log for the line, not waiting for time to pass
        assert "tensorflow_model_server would not open its ports" in server.log()
        # ... while this one opens them: the model is reported as not found until a version appears.
        while True:
            try:
                status = requests.get(f"{server.rest}/v1/models/empty", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, server.log()[-2000:]
                time.sleep(0.2)  # polling for the port to open
        assert status.status_code == 404 and "Could not find any versions of model empty" in status.json()["error"]
