"""serving/model_ready.sh (the readiness/startup probe shipped in the image) against a running server."""

import subprocess

import pytest

from tests.serving.conftest import ROOT, install_version, start_server

pytestmark = pytest.mark.e2e
PROBE = ROOT / "serving" / "model_ready.sh"


def probe(config, port):
    return subprocess.run(["bash", str(PROBE), str(config), str(port)], capture_output=True, text=True, timeout=30)


def test_ready_only_when_every_configured_model_is_available(tmp_path, half_plus_two_source):
    base = tmp_path / "half_plus_two"
    install_version(half_plus_two_source, base, 1)
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "half_plus_two" base_path: "{base}" '
                      f'model_platform: "tensorflow" }} }}')
    with start_server("local", [f"--model_config_file={config}"], tmp_path) as server:
        server.wait_available("half_plus_two")
        assert probe(config, server.rest_port).returncode == 0
        two = tmp_path / "two.config"
        two.write_text(config.read_text().replace("} }", '} config { name: "missing" base_path: "/nowhere" } }'))
        result = probe(two, server.rest_port)
        assert result.returncode == 1 and "missing is not AVAILABLE" in result.stderr
    closed = probe(config, server.rest_port)
    assert closed.returncode != 0
