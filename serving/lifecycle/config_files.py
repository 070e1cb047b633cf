"""Reading TF Serving's text-proto configuration files: models, batching, monitoring, SSL."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TypeVar

from google.protobuf import message, text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import InvalidArgument, NotFound, PermissionDenied, Unimplemented
from serving.protos import serving_config_pb2

M = TypeVar("M", bound=message.Message)
logger = logging.getLogger(__name__)


def parse_text_proto(path: str | Path, proto: M) -> M:
    """ParseProtoTextFile: a text-format proto file into `proto`, failing with TF Serving's messages (the parser's
    own complaint, with line and column, goes to the log)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError as e:
        raise NotFound(f"{path}; No such file or directory") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"Invalid protobuf file: '{path}'") from e
    try:
        return text_format.Parse(text, proto)
    except text_format.ParseError as e:
        # protobuf's TextFormat parser logs this line (on stderr) before ParseProtoTextFile fails.
        where = f"{e.GetLine()}:{e.GetColumn()}: " if e.GetLine() is not None else ""
        reason = re.sub(r"^\d+:\d+ : ", "", str(e))
        logger.error("Error parsing text-format %s: %s%s (in %s)", proto.DESCRIPTOR.full_name, where, reason, path)
        raise InvalidArgument(f"Invalid protobuf file: '{path}'") from e


def load_model_server_config(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    """A ModelServerConfig file with a model_config_list, validated as ServerCore does."""
    config = parse_text_proto(path, model_server_config_pb2.ModelServerConfig())
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise Unimplemented("ModelServer does not yet support custom model config.")
    validate_model_config_list(config)
    return config


def _is_relative_path(uri: str) -> bool:
    """UriIsRelativePath: no scheme, no host, and not an absolute path."""
    return "://" not in uri and not uri.startswith("/")


def validate_model_config_list(config: model_server_config_pb2.ModelServerConfig) -> None:
    """ServerCore's checks, in its order and with its messages: unique names (ValidateModelConfigList), absolute base
    paths, then each model's platform (GetPlatform), which must be tensorflow."""
    seen = set()
    models = config.model_config_list.config
    for m in models:
        if m.name in seen:
            raise InvalidArgument(f"Illegal to list model {m.name} multiple times in config list")
        seen.add(m.name)
    for m in models:
        if _is_relative_path(m.base_path):
            raise InvalidArgument(f"Expected model {m.name} to have an absolute path or URI; got "
                                  f"base_path()={m.base_path}")
    for m in models:
        if m.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
            if m.model_platform:
                raise InvalidArgument("Illegal setting both ModelServerConfig::model_type (deprecated) and "
                                      f"ModelServerConfig::model_platform, model name is {m.name}")
            if m.model_type != model_server_config_pb2.TENSORFLOW:
                raise InvalidArgument(f"ModelServerConfig::model_type choice {m.model_type} not supported.")
            continue
        if not m.model_platform:
            raise InvalidArgument("Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                                  f"ModelServerConfig::model_platform, model name is {m.name}")
        if m.model_platform != "tensorflow":
            raise InvalidArgument(f"Model {m.name} requests unsupported platform {m.model_platform}")


def check_base_path_root(config: model_server_config_pb2.ModelServerConfig, root: str) -> None:
    """With --model_base_path_root, every model's base path must lie inside that directory (after resolving `..`
    and symbolic links), so a reload request cannot point the server at arbitrary files."""
    if not root:
        return
    top = Path(root).resolve()
    for m in config.model_config_list.config:
        path = Path(m.base_path).resolve()
        if path != top and top not in path.parents:
            raise PermissionDenied(f"Model {m.name} base_path {m.base_path} is outside --model_base_path_root={root}")


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
