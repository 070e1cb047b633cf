"""What the gRPC transport alone costs on this machine: a canned-reply Predict server loaded by the bench's client.

    python -m clients.bench.transport_floor --image test.jpg --concurrency 1,32 --seconds 5

A child process runs a `grpc.aio` server (the server stack `serving` uses) whose Predict answers one fixed
PredictResponse without parsing the request or running anything. It is loaded with exactly the client code of
`clients.bench` (one pre-encoded request, worker threads on one channel). Per concurrency it prints requests/s,
p50/p99 round trip and the CPU each side spent per request (read from /proc, so Linux only). These are floors: a
real server adds its own work on top, and on a machine where the load generator shares the server's cores, both
columns of CPU come out of the cores the model would otherwise use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FloorConfig:
    image: Path
    concurrency: tuple[int, ...]
    seconds: float
    warmup_s: float
    as_json: bool


def canned_response(rows: int = 1, classes: int = 10) -> bytes:
    """A serialized PredictResponse shaped like the CIFAR-10 model's (`probabilities`, float32 [rows, classes])."""
    from tensorflow_serving.apis import predict_pb2

    from clients.grpc_transport import _tensor

    resp = predict_pb2.PredictResponse()
    resp.model_spec.name, resp.model_spec.signature_name = "floor", "serving_default"
    resp.model_spec.version.value = 1
    resp.outputs["probabilities"].CopyFrom(_tensor(np.full((rows, classes), 1 / classes, np.float32)))
    return resp.SerializeToString()


async def serve_canned(port_file) -> None:
    """Serve Predict with a canned reply on a free loopback port; write the port to `port_file`, run forever."""
    import grpc

    reply = canned_response()

    async def predict(request: bytes, context) -> bytes:
        return reply

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(predict)},  # raw bytes in and out
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write(f"{port}\n")
    port_file.flush()
    await server.wait_for_termination()


def measure(cfg: FloorConfig, target: str, server_pid: int) -> list[dict]:
    """Each concurrency: warm up, then one window with both processes' CPU read around it."""
    from clients.bench.load import LoadRunner, process_cpu_s, summarize
    from clients.bench.request_sets import grpc_request_factory, predict_payload

    payload = predict_payload("floor", "serving_default", "image_bytes", [cfg.image.read_bytes()])
    factory = grpc_request_factory(target, payload)
    runner = LoadRunner(factory)
    results = []
    for c in cfg.concurrency:
        workers = [factory() for _ in range(c)]
        runner.concurrency_window(workers, cfg.warmup_s, float("inf"))
        server0, client0 = process_cpu_s(server_pid), time.process_time()
        window = runner.concurrency_window(workers, cfg.seconds, float("inf"))
        server_s, client_s = process_cpu_s(server_pid) - server0, time.process_time() - client0
        summary = summarize([window], batch=1)
        n = max(summary["requests"], 1)
        results.append({"concurrency": c, "throughput": summary["throughput"], "p50_us": summary["p50_us"],
                        "p99_us": summary["p99_us"], "errors": summary["errors"],
                        "server_cpu_us_per_request": server_s / n * 1e6,
                        "client_cpu_us_per_request": client_s / n * 1e6,
                        "cores_used": (server_s + client_s) / window.seconds})
    return results


def run(cfg: FloorConfig) -> list[dict]:
    """Start the canned server in a child process, measure, stop it."""
    child = subprocess.Popen([sys.executable, "-m", "clients.bench.transport_floor", "--serve"],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"canned server did not start (exit code {child.poll()})")
        return measure(cfg, f"127.0.0.1:{int(line)}", child.pid)
    finally:
        child.terminate()
        child.wait(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clients.bench.transport_floor", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--image", type=Path, help="the image each request carries (as clients.bench sends it)")
    p.add_argument("--concurrency", default="1,32", help="comma-separated concurrencies (default 1,32)")
    p.add_argument("--seconds", type=float, default=5.0, help="measurement window per concurrency (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per concurrency (default 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(serve_canned(sys.stdout))
        return 0
    if args.image is None or not args.image.is_file():
        p.error(f"--image must name an image file, got {args.image}")
    try:
        concurrency = tuple(int(c) for c in args.concurrency.split(","))
    except ValueError:
        p.error(f"--concurrency must be comma-separated integers, got {args.concurrency!r}")
    if not concurrency or min(concurrency) < 1:
        p.error(f"--concurrency values must be ≥ 1, got {args.concurrency!r}")
    cfg = FloorConfig(args.image, concurrency, args.seconds, args.warmup, args.json)
    results = run(cfg)
    if cfg.as_json:
        print(json.dumps(results))
        return 0
    print("bare gRPC Predict: canned reply, nothing parsed or run; grpc.aio server in a child process")
    print(f"{'load':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'server µs/req':>14} {'client µs/req':>14} "
          f"{'cores':>6}")
    for r in results:
        print(f"{'c=' + str(r['concurrency']):>6} {r['throughput']:8.0f} {r['p50_us'] / 1e3:7.2f} "
              f"{r['p99_us'] / 1e3:7.2f} {r['server_cpu_us_per_request']:14.0f} "
              f"{r['client_cpu_us_per_request']:14.0f} {r['cores_used']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
