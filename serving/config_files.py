"""Reading TF Serving's text-proto configuration files: models, batching, monitoring, SSL."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from google.protobuf import message, text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import InvalidArgument
from serving.protos import serving_config_pb2

M = TypeVar("M", bound=message.Message)


def parse_text_proto(path: str | Path, proto: M) -> M:
    """Parse a text-format proto file into `proto`; errors name the file and the problem."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InvalidArgument(f"cannot read config file {str(path)!r}: {e.strerror}") from e
    try:
        return text_format.Parse(text, proto)
    except text_format.ParseError as e:
        raise InvalidArgument(f"invalid {proto.DESCRIPTOR.name} in {str(path)!r}: {e}") from e


def load_model_server_config(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    """A ModelServerConfig with a model_config_list (the only kind this server supports)."""
    config = parse_text_proto(path, model_server_config_pb2.ModelServerConfig())
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidArgument(f"{str(path)!r}: only model_config_list is supported")
    try:
        validate_model_config_list(config)
    except InvalidArgument as e:
        raise InvalidArgument(f"{str(path)!r}: {e.message}") from e
    return config


def validate_model_config_list(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Unique names, a base path for each, platform tensorflow."""
    seen = set()
    for m in config.model_config_list.config:
        if not m.name:
            raise InvalidArgument("a model config has no name")
        if m.name in seen:
            raise InvalidArgument(f"model {m.name!r} is configured twice")
        seen.add(m.name)
        if not m.base_path:
            raise InvalidArgument(f"model {m.name!r} has no base_path")
        if m.model_platform and m.model_platform != "tensorflow":
            raise InvalidArgument(f"model {m.name!r}: unsupported model_platform {m.model_platform!r}")


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config `--model_name/--model_base_path` stand for."""
    config = model_server_config_pb2.ModelServerConfig()
    m = config.model_config_list.config.add()
    m.name, m.base_path, m.model_platform = name, base_path, "tensorflow"
    return config


def load_batching_parameters(path: str | Path) -> serving_config_pb2.BatchingParameters:
    """BatchingParameters, checked as TF Serving checks them."""
    params = parse_text_proto(path, serving_config_pb2.BatchingParameters())
    sizes = list(params.allowed_batch_sizes)
    if sizes:
        if sizes != sorted(set(sizes)):
            raise InvalidArgument(f"{str(path)!r}: allowed_batch_sizes must be strictly increasing, got {sizes}")
        if params.HasField("max_batch_size") and sizes[-1] != params.max_batch_size.value:
            raise InvalidArgument(
                f"{str(path)!r}: the last allowed_batch_sizes entry ({sizes[-1]}) must equal max_batch_size "
                f"({params.max_batch_size.value})"
            )
    return params


def load_monitoring_config(path: str | Path) -> serving_config_pb2.MonitoringConfig:
    """MonitoringConfig (Prometheus path defaults to TF Serving's)."""
    return parse_text_proto(path, serving_config_pb2.MonitoringConfig())


def load_ssl_config(path: str | Path) -> serving_config_pb2.SSLConfig:
    """SSLConfig: PEM key/cert (and CA for client verification) inline in the file."""
    config = parse_text_proto(path, serving_config_pb2.SSLConfig())
    if not config.server_key or not config.server_cert:
        raise InvalidArgument(f"{str(path)!r}: server_key and server_cert are required")
    return config
