"""Open-loop sweeps for `clients.bench`: request rates as perf_analyzer's `--request-rate-range`, the point where
the server saturates, and the latency–throughput curve as a plot.

A closed loop (N clients, each waiting for its answer) slows its own arrivals when the server slows down, so it
hides queueing; arrivals at a fixed rate (constant or Poisson) do not, and latency counted from each request's
scheduled time shows the queue building up as the offered load nears what the server can do.
"""

from __future__ import annotations

from pathlib import Path

SATURATED_BELOW = 0.9  # achieved / offered throughput under which a step counts as saturated


def parse_rate_range(text: str) -> tuple[float, ...]:
    """`START:END[:STEP]` (perf_analyzer's syntax; STEP defaults to START) into the rates to offer, per second."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError as e:
        raise ValueError(f"--request-rate-range {text!r}: expected START:END[:STEP], numbers") from e
    if len(parts) not in (2, 3) or min(parts) <= 0 or parts[1] < parts[0]:
        raise ValueError(f"--request-rate-range {text!r}: expected START:END[:STEP] with 0 < START <= END, STEP > 0")
    start, end = parts[0], parts[1]
    step = parts[2] if len(parts) == 3 else start
    rates, k = [], 0
    while start + k * step <= end + 1e-9:
        rates.append(round(start + k * step, 6))
        k += 1
    return tuple(rates)


def saturated(step: dict) -> bool:
    """The server no longer keeps up with the offered rate (or requests failed)."""
    rate = step.get("request_rate")
    return bool(rate) and (step["throughput"] < SATURATED_BELOW * rate or step["errors"] > 0)


def plot_curve(steps: list[dict], path: Path, title: str) -> Path:
    """p50 and p99 latency against achieved throughput, one point per step, offered rates annotated (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    achieved = [s["throughput"] for s in steps]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(achieved, [s["p50_us"] / 1000 for s in steps], "o-", label="p50")
    ax.plot(achieved, [s["p99_us"] / 1000 for s in steps], "s-", label="p99")
    for s in steps:
        if s.get("request_rate"):
            ax.annotate(f"{s['request_rate']:g}/s", (s["throughput"], s["p99_us"] / 1000), fontsize=7,
                        textcoords="offset points", xytext=(2, 4))
    ax.set_xlabel("achieved throughput (requests/s)")
    ax.set_ylabel("latency from scheduled send (ms)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
