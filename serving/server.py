"""Assemble and run the model server: manager + core, polling thread, gRPC and REST transports, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from concurrent import futures
from pathlib import Path

from serving.core.inference import InferenceCore, replay_warmup_record
from serving.errors import FailedPrecondition, InvalidArgument, PermissionDenied, ServingError, as_serving_error
from serving.flags import ServerOptions
from serving.lifecycle import config_files
from serving.lifecycle.model_manager import ManagerOptions, ModelManager

logger = logging.getLogger(__name__)
# gRPC/REST worker threads when the flags leave them at 0: at least 2 x the largest useful batch (TF Serving's
# advice for batching), so concurrent requests can actually meet in the batch queue.
DEFAULT_IO_THREADS = 64
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GRPC_QUIET_SECONDS = 0.1
GRPC_PICKUP_SECONDS = 1.0


def session_options(options: ServerOptions):
    """Each servable's Session settings, with TF Serving's precedence (server.cc): intra/inter-op flags when either
    is set, else --tensorflow_session_parallelism for both; all three set is refused. 0 lets TensorFlow choose."""
    from serving.lifecycle.saved_model_bundle import SessionOptions

    intra, inter = options.tensorflow_intra_op_parallelism, options.tensorflow_inter_op_parallelism
    session = options.tensorflow_session_parallelism
    if intra > 0 and inter > 0 and session > 0:
        raise InvalidArgument(
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, server_options.tensorflow_inter_op_parallelism) "
            "separately. You cannot configure all.")
    if intra > 0 or inter > 0:
        return SessionOptions(intra_op_parallelism=intra, inter_op_parallelism=inter)
    return SessionOptions(intra_op_parallelism=session, inter_op_parallelism=session)


class StartupError(ServingError):
    """tensorflow_model_server would refuse to start (its ServerCore::Create failed)."""

    code = "UNKNOWN"


class ModelServer:
    """The whole server; `run()` blocks until SIGTERM/SIGINT, then drains and returns."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self._stop = threading.Event()
        self.serving = threading.Event()  # set once both ports accept
        self._request_stop = None
        self._grpc_calls = 0
        self._config_text: str | None = None
        # Server::BuildAndStart's checks, in its order.
        if not options.port and not options.grpc_socket_path:
            raise InvalidArgument("At least one of server_options.grpc_port or server_options.grpc_socket_path "
                                  "must be set.")
        if not options.model_config_file and not options.model_base_path:
            raise InvalidArgument("Both server_options.model_base_path and server_options.model_config_file are empty!")
        self._session_options = session_options(options)  # refuses conflicting thread flags before anything loads
        self.manager = ModelManager(
            loader=self._load_servable,
            options=ManagerOptions(
                max_num_load_retries=options.max_num_load_retries,
                load_retry_interval_s=options.load_retry_interval_micros / 1e6,
                allow_version_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models,
                force_allow_any_version_labels_for_unavailable_models=(
                    options.force_allow_any_version_labels_for_unavailable_models),
            ),
        )
        from serving.core.metrics import ServerMetrics

        self.metrics = ServerMetrics(known_models=self.manager.model_names)
        # The core exists before any model can load: a version's warmup requests replay through it (and its runner)
        # from the version's load worker, exactly as live requests run.
        self.batcher = self._build_batcher()
        # One pool for blocking work of both transports (unbatched signature runs, big decodes).
        threads = max(options.grpc_max_threads, options.rest_api_num_threads) or DEFAULT_IO_THREADS
        self.pool = futures.ThreadPoolExecutor(threads, thread_name_prefix="infer")
        self.core = InferenceCore(self.manager, runner=self.batcher, pool=self.pool, metrics=self.metrics,
                                  on_runtime=self.metrics.runtime,
                                  method_name_check=options.enable_signature_method_name_check)
        self.grpc_server = None
        self._ssl = None
        self.rest = None
        self.metrics_path: str | None = None

    def _build_batcher(self):
        """The batch scheduler when --enable_batching (its parameters file or TF Serving's defaults), else None."""
        if not self.options.enable_batching:
            if self.options.batching_parameters_file:
                raise InvalidArgument("server_options.batching_parameters_file is set without setting "
                                      "server_options.enable_batching to true.")
            return None
        from serving.core.batching import BatchingOptions, BatchScheduler

        params = (config_files.load_batching_parameters(self.options.batching_parameters_file)
                  if self.options.batching_parameters_file else None)
        opts = BatchingOptions.from_proto(params) if params is not None else BatchingOptions()
        logger.info("batching enabled: %s", opts)
        return BatchScheduler(opts, on_queued=self.metrics.queued, on_batch=self.metrics.batch,
                              on_runtime=self.metrics.runtime, on_scheduled=self.metrics.scheduled)

    def _load_servable(self, name: str, version: int, path: Path):
        from serving.lifecycle.servable import Servable

        started = time.perf_counter()
        try:
            servable = Servable(name, version, path, self.options.saved_model_tag_set(), self._session_options,
                                prefer_tflite=self.options.prefer_tflite_model)
        except Exception:
            self.metrics.load(str(path), False, time.perf_counter() - started)
            raise
        self.metrics.load(str(path), True, time.perf_counter() - started)
        if self.options.enable_model_warmup:
            warm_started = time.perf_counter()
            try:
                servable.warmup(lambda s, log: replay_warmup_record(self.core, s, log))
            except Exception as e:
                err = as_serving_error(e)
                self.metrics.warmup(str(path), f"{err.code}: {err.message}", time.perf_counter() - warm_started)
                raise
            self.metrics.warmup(str(path), "OK", time.perf_counter() - warm_started)
        return servable

    def current_config(self):
        """The ModelServerConfig from --model_config_file or --model_name/--model_base_path, validated, its base
        paths inside --model_base_path_root when that is set (at startup and on every config-file poll)."""
        if self.options.model_config_file:
            config = config_files.load_model_server_config(self.options.model_config_file)
        else:
            config = config_files.single_model_config(self.options.model_name, self.options.model_base_path)
            config_files.validate_model_config_list(config)  # a relative --model_base_path is refused, as there
        config_files.check_base_path_root(config, self.options.model_base_path_root)
        return config

    def reload_config(self, config) -> None:
        """HandleReloadConfigRequest (ServerCore::ReloadConfig): the new config replaces the old one. An empty
        config is no action; only a model_config_list may follow one. Operators can switch the RPC off
        (--disable_reload_config_rpc) or confine base paths to a root (--model_base_path_root)."""
        if self.options.disable_reload_config_rpc:
            raise PermissionDenied("HandleReloadConfigRequest is disabled on this server (--disable_reload_config_rpc)")
        kind = config.WhichOneof("config")
        if kind is None:
            logger.info("Taking no action for empty config.")
            return
        if kind != "model_config_list":
            raise FailedPrecondition("Cannot transition to requested config. It is only legal to transition from one "
                                     "ModelConfigList to another.")
        config_files.validate_model_config_list(config)
        config_files.check_base_path_root(config, self.options.model_base_path_root)
        self.manager.apply_config(config)

    def _poll_loop(self) -> None:
        fs_every = self.options.file_system_poll_wait_seconds
        cfg_every = self.options.model_config_file_poll_wait_seconds if self.options.model_config_file else 0
        next_fs = time.monotonic() + fs_every
        next_cfg = time.monotonic() + cfg_every
        while not self._stop.wait(0.1):
            now = time.monotonic()
            try:
                if cfg_every > 0 and now >= next_cfg:
                    next_cfg = now + cfg_every
                    text = Path(self.options.model_config_file).read_text()
                    if text != self._config_text:
                        logger.info("model config file changed; applying it")
                        self._config_text = text
                        self.manager.apply_config(self.current_config())
                if fs_every > 0 and now >= next_fs:
                    self.manager.reconcile()
                    next_fs = time.monotonic() + fs_every
            except Exception:  # a bad config or disk hiccup must not stop serving
                logger.exception("poll failed; keeping the models already served")

    def start(self) -> None:
        """Read the monitoring and SSL configs, load the initial models, start polling."""
        if self.options.model_config_file:
            self._config_text = Path(self.options.model_config_file).read_text()
        if self.options.monitoring_config_file:
            monitoring = config_files.load_monitoring_config(self.options.monitoring_config_file)
            if monitoring.prometheus_config.enable:
                self.metrics_path = monitoring.prometheus_config.path or "/monitoring/prometheus/metrics"
        self._ssl = (config_files.load_ssl_config(self.options.ssl_config_file)
                     if self.options.ssl_config_file else None)
        # As ServerCore::Create: a bad config or label fails the start, then every model must become available.
        self.manager.apply_config(self.current_config())
        problems = self.manager.unavailable_models()
        if problems:
            raise StartupError(f"{len(problems)} model(s) did not become available: "
                               + "{" + "".join("{" + p + "}, " for p in problems) + "}")
        threading.Thread(target=self._poll_loop, name="poll", daemon=True).start()

    async def _serve(self) -> None:
        """Open the gRPC and REST ports on this event loop; on a signal, stop accepting and drain both."""
        from aiohttp import web

        from serving.protocol.grpc_api import build_grpc_server
        from serving.protocol.rest_api import RestApi

        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        self._request_stop = lambda: loop.call_soon_threadsafe(stopped.set)
        if threading.current_thread() is threading.main_thread():  # in-process (tests): request_stop() instead
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stopped.set)
        socket_path = self.options.grpc_socket_path
        self.grpc_server = build_grpc_server(self.core, self.reload_config, self.options.port, self._ssl,
                                             tensor_content=self.options.enable_serialization_as_tensor_content,
                                             channel_arguments=self.options.grpc_channel_arguments,
                                             on_call=self._count_grpc_call, socket_path=socket_path,
                                             profiler=self.options.enable_profiler)
        await self.grpc_server.start()
        if self.options.port:
            logger.info("Running gRPC ModelServer at 0.0.0.0:%d ...", self.options.port)
        if socket_path:
            Path(socket_path).chmod(0o660)  # the server's user and group only (grpc leaves it to the umask)
            logger.info("Running gRPC ModelServer at UNIX socket %s ...", socket_path)
        runner = None
        if self.options.rest_api_port:
            route = (self.metrics_path, self._metrics_handler) if self.metrics_path else None
            self.rest = RestApi(self.core, self.options.rest_api_timeout_in_ms,
                                self.options.rest_api_enable_cors_support, metrics_route=route,
                                max_body_bytes=self.options.rest_api_max_body_bytes)
            # keepalive_timeout also closes connections that send nothing, or stop halfway through their headers;
            # shutdown_timeout bounds aiohttp's own graceful shutdown (in-flight handlers, then cancelled).
            runner = web.AppRunner(self.rest.app(), access_log=None, handle_signals=False, auto_decompress=False,
                                   keepalive_timeout=self.options.rest_api_idle_timeout_seconds,
                                   shutdown_timeout=self.options.shutdown_grace_seconds)
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", self.options.rest_api_port, reuse_address=True).start()
            logger.info("Exporting HTTP/REST API at:localhost:%d ...", self.options.rest_api_port)
        self.serving.set()
        await stopped.wait()
        logger.info("shutting down: no new connections, finishing in-flight requests (at most %d s)",
                    self.options.shutdown_grace_seconds)
        # Both transports stop accepting at once and drain in parallel, each bounded by the grace period.
        grace = self.options.shutdown_grace_seconds
        draining = [self._drain_grpc(grace)]
        if runner is not None:
            draining.append(self._drain_rest(runner, grace))
        await asyncio.gather(*draining)
        if self.options.grpc_socket_path:  # gone with the server, so a stale file cannot mislead a client
            Path(self.options.grpc_socket_path).unlink(missing_ok=True)

    def _count_grpc_call(self) -> None:
        self._grpc_calls += 1

    async def _drain_grpc(self, grace: float) -> None:
        # grpc.aio hands arrived calls to handlers one at a time; stop() CANCELs those it has not handed over yet
        # (measured: 96 of 128 calls sent just before SIGTERM). Keep accepting until no call has reached a handler
        # for GRPC_QUIET_SECONDS (at most GRPC_PICKUP_SECONDS), then stop and let the started calls finish.
        loop = asyncio.get_running_loop()
        until = loop.time() + GRPC_PICKUP_SECONDS
        seen = -1
        while seen != self._grpc_calls and loop.time() < until:
            seen = self._grpc_calls
            await asyncio.sleep(GRPC_QUIET_SECONDS)
        await self.grpc_server.stop(grace)

    async def _drain_rest(self, runner, grace: float) -> None:
        for site in runner.sites:
            await site.stop()  # no new connections; open ones keep reading their requests
        if not await self.rest.wait_idle(grace):
            logger.warning("shutdown: %d REST request(s) still running after --shutdown_grace_seconds=%d are cut",
                           self.rest.in_flight, grace)
        await runner.cleanup()

    def request_stop(self) -> None:
        """Shut a serving server down as SIGTERM does, from any thread."""
        if self._request_stop is not None:
            self._request_stop()

    async def _metrics_handler(self, request):
        from aiohttp import web

        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    def run(self) -> None:
        """Start, serve until a signal, drain in-flight requests, stop."""
        self.start()
        asyncio.run(self._serve())
        self._stop.set()
        self.manager.close()
        self.core.close()
        self.pool.shutdown(wait=True)
        logger.info("server stopped")
