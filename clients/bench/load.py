"""Load generation and statistics for `clients.bench`: one request function, many workers, measurement windows."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# A request function does one inference call and returns its (send_s, wait_s, recv_s) phases.
RequestFn = Callable[[], tuple[float, float, float]]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc (Linux only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    latency_s: float
    send_s: float
    wait_s: float
    recv_s: float


@dataclass
class Window:
    """Everything measured in one window."""

    seconds: float
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    server_cpu_s: float | None = None  # the server process's CPU over the window, when its pid is known

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0

    def percentile_us(self, q: float) -> float:
        lat = [s.latency_s for s in self.samples]
        return float(np.percentile(lat, q) * 1e6) if lat else float("nan")


def summarize(windows: list[Window], batch: int) -> dict:
    """Merge windows into perf_analyzer-style figures (latencies in µs, throughput in inferences/s)."""
    samples = [s for w in windows for s in w.samples]
    seconds = sum(w.seconds for w in windows)
    lat = np.asarray([s.latency_s for s in samples]) * 1e6 if samples else np.asarray([np.nan])

    def mean_us(attr: str) -> float:
        return float(np.mean([getattr(s, attr) for s in samples]) * 1e6) if samples else float("nan")

    cpu = [w.server_cpu_s for w in windows]
    return {
        "server_cpu_us_per_request": (sum(cpu) / len(samples) * 1e6
                                      if samples and all(c is not None for c in cpu) else None),
        "requests": len(samples),
        "errors": sum(w.errors for w in windows),
        "seconds": round(seconds, 3),
        "throughput": len(samples) * batch / seconds if seconds else 0.0,
        "avg_us": float(lat.mean()),
        "p50_us": float(np.percentile(lat, 50)),
        "p90_us": float(np.percentile(lat, 90)),
        "p95_us": float(np.percentile(lat, 95)),
        "p99_us": float(np.percentile(lat, 99)),
        "client_send_us": mean_us("send_s"),
        "client_recv_us": mean_us("recv_s"),
        "wait_us": mean_us("wait_s"),
    }


def stable(windows: list[Window], tolerance: float = 0.10, count: int = 3) -> bool:
    """The last `count` windows agree within ±tolerance on throughput and p50 latency."""
    if len(windows) < count:
        return False
    last = windows[-count:]
    for values in ([w.throughput for w in last], [w.percentile_us(50) for w in last]):
        mean = float(np.mean(values))
        if mean <= 0 or any(abs(v - mean) > tolerance * mean for v in values):
            return False
    return True


class LoadRunner:
    """Runs `make_request()` functions (one per worker) at a concurrency or a request rate."""

    def __init__(self, make_request: Callable[[], RequestFn], server_cpu: Callable[[], float] | None = None):
        self.make_request = make_request
        self.server_cpu = server_cpu  # reads the server's CPU seconds so far (None: not measured)

    def _cpu(self) -> float | None:
        return None if self.server_cpu is None else self.server_cpu()

    def _timed(self, fn: RequestFn) -> Sample:
        start = time.perf_counter()
        send, wait, recv = fn()
        return Sample(time.perf_counter() - start, send, wait, recv)

    def concurrency_window(self, workers: list[RequestFn], seconds: float, deadline: float) -> Window:
        """Each worker sends back-to-back requests for `seconds`."""
        window = Window(seconds)
        stop_at = min(time.perf_counter() + seconds, deadline)
        lock = threading.Lock()

        def loop(fn: RequestFn) -> None:
            while time.perf_counter() < stop_at:
                try:
                    sample = self._timed(fn)
                except Exception:  # counted; a failing server must not stop the measurement
                    with lock:
                        window.errors += 1
                    continue
                with lock:
                    window.samples.append(sample)

        cpu0, started = self._cpu(), time.perf_counter()
        threads = [threading.Thread(target=loop, args=(fn,), daemon=True) for fn in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        window.seconds = time.perf_counter() - started
        if cpu0 is not None:
            window.server_cpu_s = self._cpu() - cpu0
        return window

    def rate_window(self, pool: futures.ThreadPoolExecutor, workers: list[RequestFn], rate: float, poisson: bool,
                    seconds: float, deadline: float, rng: random.Random) -> Window:
        """Requests issued at `rate`/s (constant or Poisson arrivals); latency counts from the scheduled time."""
        window = Window(seconds)
        stop_at = min(time.perf_counter() + seconds, deadline)
        pending = []
        next_at = time.perf_counter()
        i = 0
        cpu0, started = self._cpu(), time.perf_counter()
        while next_at < stop_at:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            scheduled = next_at
            fn = workers[i % len(workers)]
            i += 1

            def job(fn=fn, scheduled=scheduled):
                sample = self._timed(fn)
                sample.latency_s = time.perf_counter() - scheduled
                return sample

            pending.append(pool.submit(job))
            next_at += rng.expovariate(rate) if poisson else 1.0 / rate
        for f in pending:
            try:
                window.samples.append(f.result())
            except Exception:  # counted as errors
                window.errors += 1
        window.seconds = time.perf_counter() - started
        if cpu0 is not None:
            window.server_cpu_s = self._cpu() - cpu0
        return window
