"""Load/benchmark tool: what perf_analyzer reports, for TF Serving's gRPC and REST APIs, plus an in-process baseline.

    python -m clients.bench --grpc localhost:8500 --rest http://localhost:8501 --model cifar10 \\
        --saved-model models/cifar10/1 --image test.jpg --protocol grpc --mode bytes --concurrency 1,2,4,8

Per step: throughput, avg/p50/p90/p95/p99 latency, client send/receive time (every request is the same and is
encoded once; `send` is writing it, which a gRPC call does not expose, `recv` is decoding the reply) and, when the
server exposes Prometheus metrics, the server-side split (queue / compute / other). Each step warms up, then repeats
measurement windows until throughput and p50 are stable within ±10 % over 3 windows (or --max-windows). The
in-process baseline (the SavedModel signature called directly, same input) runs in the same process just before and
just after every step, and each step is printed as a ratio to the mean of its two brackets, with their disagreement
(`drift`). Loopback targets only.
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import ipaddress
import json
import random
import socket
import sys
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import orjson

from clients.bench.load import LoadRunner, Window, process_cpu_s, stable, summarize
from clients.bench.open_loop import parse_rate_range, plot_curve, saturated
from clients.bench.prometheus import ServerSplit
from clients.bench.report import HEADER, PERF_ANALYZER_COLUMNS, csv_row, format_step
from clients.bench.request_sets import grpc_request_factory, predict_payload, rest_request_factory


@dataclass(frozen=True)
class BenchConfig:
    protocol: str
    mode: str
    grpc: str
    rest: str
    model: str
    saved_model: Path
    image: Path
    concurrency: tuple[int, ...]
    request_rate: tuple[float, ...]
    poisson: bool
    warmup_s: float
    window_s: float
    max_windows: int
    max_seconds: float
    csv_path: Path | None
    metrics_path: str
    stop_at_saturation: bool = False
    server_pid: int | None = None


def check_loopback(target: str) -> None:
    """Refuse anything but loopback addresses: this tool generates load."""
    host = urlparse(target if "://" in target else f"//{target}").hostname or ""
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as e:
        raise SystemExit(f"cannot resolve {host!r}: {e}") from e
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise SystemExit(f"refusing to load {target}: only loopback targets are allowed")


def pixels_for(image: bytes, size: tuple[int, int]) -> np.ndarray:
    from clients.preprocess import prepare

    return prepare(image, "bench", size).pixels[None]


def make_request_factory(cfg: BenchConfig, image: bytes, pixels: np.ndarray):
    """A factory of per-worker request functions for the chosen protocol and mode."""
    signature, alias = ("serving_default", "image_bytes") if cfg.mode == "bytes" else ("predict_pixels", "pixels")
    if cfg.protocol == "grpc":
        return grpc_request_factory(cfg.grpc, predict_payload(cfg.model, signature, alias,
                                                              [image] if cfg.mode == "bytes" else pixels))

    value = [{"b64": base64.b64encode(image).decode()}] if cfg.mode == "bytes" else pixels
    return rest_request_factory(cfg.rest, cfg.model, signature, value)


def in_process_baseline(cfg: BenchConfig, image: bytes, pixels: np.ndarray) -> Callable[[], dict]:
    """Load the SavedModel once; the returned function measures its signature called directly (single-input latency
    and batch-32 throughput) each time it is called."""
    import tensorflow as tf

    sigs = tf.saved_model.load(str(cfg.saved_model)).signatures
    if cfg.mode == "bytes":
        fn, one = sigs["serving_default"], {"image_bytes": tf.constant([image])}
        batch = {"image_bytes": tf.constant([image] * 32)}
    else:
        fn, one = sigs["predict_pixels"], {"pixels": tf.constant(pixels)}
        batch = {"pixels": tf.constant(np.repeat(pixels, 32, axis=0))}

    def timed(inputs, seconds):
        lat = []
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop or len(lat) < 5:
            t = time.perf_counter()
            fn(**inputs)["probabilities"].numpy()
            lat.append(time.perf_counter() - t)
        return np.asarray(lat)

    def measure() -> dict:
        timed(one, cfg.warmup_s)
        single = timed(one, cfg.window_s * 2)
        timed(batch, min(cfg.warmup_s, 1.0))
        batched = timed(batch, cfg.window_s * 2)
        return {
            "p50_us": float(np.percentile(single, 50) * 1e6),
            "avg_us": float(single.mean() * 1e6),
            "throughput": float(1 / single.mean()),
            "batch32_throughput": float(32 / batched.mean()),
        }
    return measure


def bracket(before: dict, after: dict) -> dict:
    """The baseline for a step measured just before and just after it: the mean of each figure, and `drift`, how far
    the two disagree (relative), so a machine whose speed moved during the step is visible in the ratios."""
    out = {k: (before[k] + after[k]) / 2 for k in ("p50_us", "avg_us", "throughput", "batch32_throughput")}
    out["drift"] = max(abs(before[k] - after[k]) / out[k] for k in ("p50_us", "batch32_throughput"))
    return out


def request_bytes_report(image: bytes) -> dict:
    """Request body bytes per image: b64 JPEG vs JSON pixels, at 32×32 and 224×224."""
    import io

    from PIL import Image

    from clients.preprocess import to_pixels, to_rgb

    out = {}
    src = to_rgb(Image.open(io.BytesIO(image)))
    for side in (32, 224):
        img = src.resize((side, side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        b64 = orjson.dumps({"instances": [{"b64": base64.b64encode(buf.getvalue()).decode()}]})
        pix = orjson.dumps({"instances": to_pixels(img, (side, side))[None].astype(int).tolist()})
        out[f"{side}x{side}"] = {"b64_jpeg_json": len(b64), "pixels_json": len(pix),
                                 "ratio": round(len(pix) / len(b64), 1)}
    return out


def run_step(runner: LoadRunner, factory, cfg: BenchConfig, deadline: float, concurrency: int | None = None,
             rate: float | None = None, pool=None) -> tuple[dict, int]:
    """Warm up, then measure windows until stable (or the cap); returns the summary and windows used."""
    n_workers = concurrency or min(64, max(4, int((rate or 1) * 0.05) + 4))
    workers = [factory() for _ in range(n_workers)]
    rng = random.Random(0)

    def window(seconds: float) -> Window:
        if rate is None:
            return runner.concurrency_window(workers, seconds, deadline)
        return runner.rate_window(pool, workers, rate, cfg.poisson, seconds, deadline, rng)

    window(cfg.warmup_s)
    windows: list[Window] = []
    while len(windows) < cfg.max_windows and time.perf_counter() < deadline:
        windows.append(window(cfg.window_s))
        if stable(windows):
            break
    return summarize(windows[-3:], batch=1), len(windows)


def run(cfg: BenchConfig) -> dict:
    """Baseline, then every step; returns the full report."""
    for target in (cfg.grpc, cfg.rest):
        check_loopback(target)
    image = cfg.image.read_bytes()
    from clients.cli import make_client

    client = make_client("grpc", cfg.grpc, cfg.model)
    size = client.model_info().input_size()
    client.close()
    pixels = pixels_for(image, size)
    measure_baseline = in_process_baseline(cfg, image, pixels)
    before = measure_baseline()
    measured = [before]
    factory = make_request_factory(cfg, image, pixels)
    runner = LoadRunner(factory, None if cfg.server_pid is None else functools.partial(process_cpu_s, cfg.server_pid))
    deadline = time.perf_counter() + cfg.max_seconds
    split = ServerSplit(f"{cfg.rest.rstrip('/')}{cfg.metrics_path}", cfg.model)
    steps = []
    pool = futures.ThreadPoolExecutor(max_workers=64) if cfg.request_rate else None
    plan = [("concurrency", c) for c in cfg.concurrency] if not cfg.request_rate else \
        [("rate", r) for r in cfg.request_rate]
    for kind, value in plan:
        if time.perf_counter() >= deadline:
            break
        split.start()
        summary, used = run_step(runner, factory, cfg, deadline, concurrency=value if kind == "concurrency" else None,
                                 rate=value if kind == "rate" else None, pool=pool)
        summary.update(split.finish())
        after = measure_baseline()  # bracketing each step: the machine's speed drifts by ±20 % over minutes here
        measured.append(after)
        baseline, before = bracket(before, after), after
        summary.update({"baseline": baseline, "concurrency": value if kind == "concurrency" else 0,
                        "request_rate": value if kind == "rate" else None, "windows": used,
                        "p50_ratio": summary["p50_us"] / baseline["p50_us"],
                        "throughput_ratio": summary["throughput"] / baseline["throughput"],
                        "throughput_ratio_batch32": summary["throughput"] / baseline["batch32_throughput"]})
        steps.append(summary)
        print(format_step(summary), flush=True)
        if cfg.stop_at_saturation and saturated(summary):
            print(f"saturated at {summary['request_rate']:g}/s offered ({summary['throughput']:.1f}/s achieved): "
                  "the sweep stops here", flush=True)
            break
    if pool:
        pool.shutdown()
    report = {"protocol": cfg.protocol, "mode": cfg.mode, "model": cfg.model, "input_size": list(size),
              "baseline": {k: float(np.mean([m[k] for m in measured])) for k in measured[0]},
              "baseline_measurements": measured, "steps": steps, "request_bytes": request_bytes_report(image)}
    if cfg.csv_path:
        with open(cfg.csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=PERF_ANALYZER_COLUMNS)
            w.writeheader()
            for s in steps:
                w.writerow(csv_row(s))
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print the table, the ratios and a JSON line."""
    p = argparse.ArgumentParser(prog="python -m clients.bench", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=("grpc", "rest"), default="grpc")
    p.add_argument("--mode", choices=("bytes", "pixels"), default="bytes")
    p.add_argument("--grpc", default="localhost:8500", help="gRPC host:port (metadata is read over gRPC)")
    p.add_argument("--rest", default="http://localhost:8501", help="REST base URL (and Prometheus metrics)")
    p.add_argument("--model", default="cifar10")
    p.add_argument("--saved-model", type=Path, required=True, help="the served version, for the in-process baseline")
    p.add_argument("--image", type=Path, required=True, help="the image every request sends")
    p.add_argument("--concurrency", default="1,2,4,8,16,32", help="comma-separated concurrency sweep")
    p.add_argument("--request-rate", default="", help="comma-separated request rates (/s) instead of concurrency")
    p.add_argument("--request-rate-range", default="", metavar="START:END[:STEP]",
                   help="open-loop sweep of request rates (/s), as perf_analyzer's; stops once saturated")
    p.add_argument("--poisson", action="store_true", help="Poisson arrivals in request-rate mode")
    p.add_argument("--plot", type=Path, default=None, help="draw p50/p99 against throughput to this PNG")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per step")
    p.add_argument("--window", type=float, default=2.0, help="seconds per measurement window")
    p.add_argument("--max-windows", type=int, default=6, help="windows per step before giving up on stability")
    p.add_argument("--max-seconds", type=float, default=300, help="bound on the whole run")
    p.add_argument("--csv", type=Path, default=None, help="write perf_analyzer-style CSV here")
    p.add_argument("--metrics-path", default="/monitoring/prometheus/metrics",
                   help="the server's Prometheus path, for the queue/compute split (default: %(default)s)")
    p.add_argument("--server-pid", type=int, default=None,
                   help="the server's process id: each step then reports the server's CPU per request "
                        "(`srv cpu`, ms; Linux only; default: not measured)")
    a = p.parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    try:
        swept = parse_rate_range(a.request_rate_range) if a.request_rate_range else ()
    except ValueError as e:
        p.error(str(e))
    cfg = BenchConfig(a.protocol, a.mode, a.grpc, a.rest, a.model, a.saved_model, a.image,
                      tuple(int(c) for c in a.concurrency.split(",") if c),
                      tuple(float(r) for r in a.request_rate.split(",") if r) + swept, a.poisson, a.warmup,
                      a.window, a.max_windows, a.max_seconds, a.csv, a.metrics_path, stop_at_saturation=bool(swept),
                      server_pid=a.server_pid)
    print(f"{cfg.protocol} {cfg.mode} → {cfg.model}; latencies in ms; ratios against the in-process baseline (ip)")
    print(HEADER, flush=True)
    report = run(cfg)
    b = report["baseline"]
    print(f"in-process baseline (mean of {len(report['baseline_measurements'])} measurements, before and after each "
          f"step): p50 {b['p50_us'] / 1000:.2f} ms, {b['throughput']:.1f}/s single, {b['batch32_throughput']:.1f}/s "
          f"batch 32 ({1000 / b['batch32_throughput']:.2f} ms per image); ip = the baseline bracketing each step, "
          "b32 = its batch-32 throughput, drift = how much the two brackets disagree, srv cpu = the server "
          "process's CPU per request")
    for side, r in report["request_bytes"].items():
        print(f"request bytes per image at {side}: b64 JPEG {r['b64_jpeg_json']:,}, JSON pixels {r['pixels_json']:,}"
              f" ({r['ratio']}x)")
    if a.plot and report["steps"]:
        title = f"{cfg.model}, {cfg.protocol} {cfg.mode}, {'Poisson' if cfg.poisson else 'constant'} arrivals"
        print(f"plot: {plot_curve(report['steps'], a.plot, title)}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
