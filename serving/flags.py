"""`tensorflow_model_server`'s command line: the same flag names, defaults and `--flag=value` syntax.

Flags this server does not implement are accepted with a warning, so the same container arguments work.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


def parse_bool(value: str | bool) -> bool:
    """gflags booleans: `--flag`, `--flag=true|false|1|0|yes|no`."""
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes", "y"):
        return True
    if v in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


@dataclass(frozen=True)
class ServerOptions:
    """The parsed command line of `python -m serving` (defaults are tensorflow_model_server's)."""

    port: int = 8500
    grpc_socket_path: str = ""
    enable_profiler: bool = True
    rest_api_port: int = 0
    rest_api_num_threads: int = 0
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    rest_api_max_body_bytes: int = 64 << 20
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    enable_batching: bool = False
    batching_parameters_file: str = ""
    monitoring_config_file: str = ""
    enable_model_warmup: bool = True
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    tensorflow_session_parallelism: int = 0
    ssl_config_file: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    force_allow_any_version_labels_for_unavailable_models: bool = False
    saved_model_tags: str = "serve"
    prefer_tflite_model: bool = False
    grpc_max_threads: int = 0
    grpc_channel_arguments: str = ""
    rest_api_idle_timeout_seconds: int = 30
    shutdown_grace_seconds: int = 25
    enable_signature_method_name_check: bool = False
    enable_serialization_as_tensor_content: bool = False
    disable_reload_config_rpc: bool = False
    model_base_path_root: str = ""
    version: bool = False

    def saved_model_tag_set(self) -> tuple[str, ...]:
        """--saved_model_tags split on commas, as server.cc does."""
        return tuple(self.saved_model_tags.split(","))


_HELP = {
    "port": "TCP port for gRPC (PredictionService, ModelService); 0: none (then --grpc_socket_path is required)",
    "grpc_socket_path": "also serve gRPC, with the same services, on this Unix domain socket (e.g. /tmp/tfs.sock)",
    "enable_profiler": "serve TensorFlow's ProfilerService on the gRPC port(s), for TensorBoard's profiler",
    "rest_api_port": "TCP port for the HTTP/REST API; 0 (default) disables it",
    "rest_api_num_threads": "worker threads for blocking inference work; one pool serves both transports "
                            "and takes the larger of this and --grpc_max_threads (both 0: 64)",
    "rest_api_timeout_in_ms": "deadline of a REST request",
    "rest_api_enable_cors_support": "answer CORS preflight and add CORS headers",
    "rest_api_max_body_bytes": "largest REST request body, also after gzip/deflate inflation: larger ones get HTTP "
                               "413 (local server only; the real server has no such flag)",
    "model_name": "name of the single model (ignored with --model_config_file)",
    "model_base_path": "directory holding the single model's integer versions",
    "model_config_file": "text ModelServerConfig proto (takes precedence over --model_name/--model_base_path)",
    "model_config_file_poll_wait_seconds": "re-read --model_config_file this often; 0 disables",
    "file_system_poll_wait_seconds": "look for new versions this often; 0: only at startup",
    "enable_batching": "merge concurrent requests into batches",
    "batching_parameters_file": "text BatchingParameters proto",
    "monitoring_config_file": "text MonitoringConfig proto (Prometheus endpoint on the REST port)",
    "enable_model_warmup": "replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE",
    "max_num_load_retries": "retries of a failed version load",
    "load_retry_interval_micros": "wait between load retries",
    "tensorflow_intra_op_parallelism": "threads per TF op (0: TF picks)",
    "tensorflow_inter_op_parallelism": "concurrent TF ops (0: TF picks)",
    "tensorflow_session_parallelism": "both of the above when they are 0",
    "ssl_config_file": "text SSLConfig proto: serve gRPC over TLS",
    "allow_version_labels_for_unavailable_models": "allow a new label (or one keeping its version) to point at a "
                                                   "version that is not AVAILABLE yet; needed for labels in the "
                                                   "startup config",
    "force_allow_any_version_labels_for_unavailable_models": "allow any label to point at a version that is not "
                                                             "AVAILABLE, moving existing labels too",
    "saved_model_tags": "MetaGraph tags to load",
    "prefer_tflite_model": "serve a version's model.tflite through TF Lite's interpreter when it has one",
    "grpc_channel_arguments": "gRPC server arguments, key=value[,key=value…] (ints where they parse), e.g. "
                              "grpc.max_connection_idle_ms=60000 (default here 300000: idle connections are closed)",
    "rest_api_idle_timeout_seconds": "close REST connections idle (or sending headers) this long (local server "
                                     "only; a slow request body is bounded by --rest_api_timeout_in_ms)",
    "shutdown_grace_seconds": "on SIGTERM, how long in-flight requests may finish before they are cut (local "
                              "server only; keep it below the pod's terminationGracePeriodSeconds minus preStop)",
    "grpc_max_threads": "worker threads for blocking inference work (see --rest_api_num_threads; both 0: 64)",
    "enable_signature_method_name_check": "require Classify/Regress signatures to have those method names",
    "enable_serialization_as_tensor_content": "Predict responses carry numeric outputs as tensor_content bytes "
                                              "instead of the typed fields (float_val, …)",
    "disable_reload_config_rpc": "answer ModelService/HandleReloadConfigRequest with PERMISSION_DENIED (local "
                                 "server only: tensorflow_model_server always accepts it)",
    "model_base_path_root": "every model base path, from the config file or a reload request, must lie inside "
                            "this directory (local server only)",
    "version": "print the version and exit",
}

# Flags of tensorflow_model_server that are accepted and ignored (with a warning) here.
IGNORED_FLAGS = (
    "platform_config_file", "per_process_gpu_memory_fraction",
    "flush_filesystem_caches", "xla_cpu_compilation_enabled", "num_load_threads",
    "num_unload_threads", "model_platform", "num_tflite_pools",
    "num_tflite_interpreters_per_pool", "remove_unused_fields_from_bundle_metagraph", "use_tflite_model",
    "enable_grpc_healthcheck_service", "tensorflow_use_xla", "thread_pool_factory_config_file",
    "mixed_precision", "skip_initialize_tpu", "use_alts_credentials", "response_tensor_proto_content",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so --help and tests can use it)."""
    p = argparse.ArgumentParser(
        prog="python -m serving",
        description="Local model server with TensorFlow Serving's REST and gRPC APIs and command-line flags.",
        epilog="Flags of tensorflow_model_server not listed here are accepted and ignored with a warning.",
        allow_abbrev=False,
    )
    for name, default in ServerOptions.__dataclass_fields__.items():
        value = default.default
        if isinstance(value, bool):
            p.add_argument(f"--{name}", type=parse_bool, nargs="?", const=True, default=value,
                           metavar="BOOL", help=f"{_HELP[name]} (default {str(value).lower()})")
        else:
            p.add_argument(f"--{name}", type=type(value), default=value, help=f"{_HELP[name]} (default {value!r})")
    return p


def parse_flags(argv: list[str] | None) -> ServerOptions:
    """Parse a command line; unknown `--flags` produce a warning, anything else is an error."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        if not item.startswith("--"):
            # A value following an ignored flag (`--enable_profiler false`).
            continue
        name = item[2:].split("=", 1)[0]
        how = "accepted, not implemented here" if name in IGNORED_FLAGS else "unknown flag"
        logger.warning("ignoring --%s (%s)", name, how)
    return ServerOptions(**vars(args))
