"""Server-side latency split from TF Serving's Prometheus metrics (deltas between two scrapes)."""

from __future__ import annotations

import re

import requests

_LINE = re.compile(r"^(?P<name>[^\s{]+)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
REQUEST = ":tensorflow:serving:request_latency"
RUNTIME = ":tensorflow:serving:runtime_latency"
QUEUE = ":tensorflow:serving:batching_session:queuing_latency"


def parse(text: str, model: str) -> dict[str, float]:
    """Sum of `<histogram>_sum` / `_count` values per metric for one model (all other labels summed)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m:
            continue
        name, labels = m.group("name"), m.group("labels") or ""
        if not name.endswith(("_sum", "_count")):
            continue
        if "model_name=" in labels and f'model_name="{model}"' not in labels:
            continue
        try:
            totals[name] = totals.get(name, 0.0) + float(m.group("value"))
        except ValueError:
            continue
    return totals


class ServerSplit:
    """Scrape before and after a step; mean queue / compute / other per request in µs (None when unavailable)."""

    def __init__(self, url: str | None, model: str):
        self.url, self.model = url, model
        self._before: dict[str, float] | None = None

    def _scrape(self) -> dict[str, float] | None:
        if not self.url:
            return None
        try:
            r = requests.get(self.url, timeout=5)
        except requests.RequestException:
            return None
        return parse(r.text, self.model) if r.status_code == 200 else None

    def start(self) -> None:
        self._before = self._scrape()

    def finish(self) -> dict[str, float | None]:
        after = self._scrape()
        empty = {"queue_us": None, "compute_us": None, "other_us": None}
        if not self._before or not after:
            return empty

        def mean(metric: str) -> float | None:
            n = after.get(metric + "_count", 0) - self._before.get(metric + "_count", 0)
            s = after.get(metric + "_sum", 0) - self._before.get(metric + "_sum", 0)
            return s / n if n > 0 else None

        total, compute, queue = mean(REQUEST), mean(RUNTIME), mean(QUEUE)
        if total is None:
            return empty
        other = total - (compute or 0.0) - (queue or 0.0)
        return {"queue_us": queue or 0.0, "compute_us": compute, "other_us": max(other, 0.0)}
