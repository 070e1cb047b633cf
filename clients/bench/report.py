"""The tables `clients.bench` prints and the perf_analyzer-style CSV it writes."""

from __future__ import annotations

PERF_ANALYZER_COLUMNS = [
    "Concurrency", "Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue",
    "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv", "p50 latency",
    "p90 latency", "p95 latency", "p99 latency", "Avg latency", "request/response", "response wait",
]


def csv_row(step: dict) -> dict:
    """One perf_analyzer CSV row (µs)."""
    s = step
    server_total = (s["queue_us"] or 0) + (s["compute_us"] or 0) + (s["other_us"] or 0) if s["compute_us"] else 0
    return {
        "Concurrency": s["concurrency"], "Inferences/Second": round(s["throughput"], 2),
        "Client Send": round(s["client_send_us"]),
        "Network+Server Send/Recv": round(max(s["wait_us"] - server_total, 0)),
        "Server Queue": round(s["queue_us"] or 0), "Server Compute Input": 0,
        "Server Compute Infer": round(s["compute_us"] or 0), "Server Compute Output": 0,
        "Client Recv": round(s["client_recv_us"]), "p50 latency": round(s["p50_us"]), "p90 latency": round(s["p90_us"]),
        "p95 latency": round(s["p95_us"]), "p99 latency": round(s["p99_us"]), "Avg latency": round(s["avg_us"]),
        "request/response": round(s["client_send_us"] + s["client_recv_us"]), "response wait": round(s["wait_us"]),
    }


def format_step(s: dict) -> str:
    """One table row."""
    def us(v):
        return "n/a" if v is None else f"{v / 1000:.2f}"

    cpu = s.get("server_cpu_us_per_request")
    load = f"c={s['concurrency']}" if s["request_rate"] is None else f"{s['request_rate']:g}/s"
    return (f"{load:>8} {s['throughput']:>9.1f} {s['avg_us'] / 1000:>7.2f} {s['p50_us'] / 1000:>7.2f} "
            f"{s['p90_us'] / 1000:>7.2f} {s['p95_us'] / 1000:>7.2f} {s['p99_us'] / 1000:>7.2f} "
            f"{us(s['client_send_us']):>6} {us(s['client_recv_us']):>6} {us(s['queue_us']):>6} "
            f"{us(s['compute_us']):>7} {us(s['other_us']):>6} {s['p50_ratio']:>6.2f}x {s['throughput_ratio']:>6.2f}x "
            f"{s['throughput_ratio_batch32']:>6.2f}x {s['baseline']['drift'] * 100:>5.0f}% {s['errors']:>4} "
            f"{us(cpu):>7}")


HEADER = (f"{'load':>8} {'infer/s':>9} {'avg ms':>7} {'p50':>7} {'p90':>7} {'p95':>7} {'p99':>7} {'send':>6} "
          f"{'recv':>6} {'queue':>6} {'compute':>7} {'other':>6} {'p50/ip':>7} {'tput/ip':>7} {'b32/ip':>7} "
          f"{'drift':>6} {'err':>4} {'srv cpu':>7}")
