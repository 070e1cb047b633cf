"""Automated canary analysis: compare a canary's error ratio and latency with the stable version's over a window of
Prometheus data, then promote the canary or roll it back by editing the two model config files.

    python -m clients.canary --prometheus http://prometheus:9090 --model cifar10 \\
        --stable-config k8s/overlays/canary-pods/stable/models.config \\
        --canary-config k8s/overlays/canary-pods/canary/models.config [--dry-run]

TF Serving's request metrics carry the model name but no version, so the canary runs in its own pods (or servers),
told apart by a label Prometheus attaches to their series (`track="canary"` / `track="stable"` by default: the
ServiceMonitor's pod target label, or a static label in a plain scrape config). Both tracks get the same traffic.

Decision, over `--window`: **rollback** when the canary's share of failed requests (any status but OK) exceeds the
stable's by more than `--max-error-ratio-increase`, or its p99 latency (successful requests) exceeds the stable's by
more than `--max-latency-increase` (relative) and by more than `--latency-tolerance-ms` (absolute: a few slow
requests of a sub-millisecond model are noise, not a regression); **inconclusive** (nothing changes) when either
track served fewer than `--min-requests`; **promote** otherwise. Promote: the stable config's version policy for the
model becomes the canary's (the stable servers load the canary version by polling their config); rollback: the
canary config's becomes the stable's. Each file is rewritten atomically. The figures and the decision are logged and
printed as one JSON line. Exit status: 0 promoted, 1 rolled back, 2 inconclusive, 3 error (Prometheus unreachable,
bad config).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import sys
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

EXIT = {"promote": 0, "rollback": 1, "inconclusive": 2}
ERROR_EXIT = 3


@dataclass(frozen=True)
class CanaryConfig:
    prometheus: str
    model: str
    stable_config: Path
    canary_config: Path
    stable_selector: str
    canary_selector: str
    window: str
    max_error_ratio_increase: float
    max_latency_increase: float
    latency_tolerance_ms: float
    min_requests: int
    dry_run: bool


@dataclass(frozen=True)
class TrackFigures:
    requests: float
    error_ratio: float
    p99_ms: float  # NaN when the track answered no request successfully


def track_queries(model: str, selector: str, window: str) -> dict[str, str]:
    """The PromQL for one track's figures (TF Serving's metric names; latencies recorded in microseconds)."""
    sel = f'model_name="{model}", {selector}'
    return {
        "requests": f"sum(increase(:tensorflow:serving:request_count{{{sel}}}[{window}]))",
        "errors": f'sum(increase(:tensorflow:serving:request_count{{{sel}, status!="OK"}}[{window}]))',
        "p99_us": f"histogram_quantile(0.99, sum by (le) (rate(:tensorflow:serving:request_latency_bucket{{{sel}}}"
                  f"[{window}])))",
    }


def query_scalar(prometheus: str, expr: str) -> float:
    """One instant query's single value (0 when it returns nothing: no series means no such requests)."""
    url = f"{prometheus.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {expr!r}: {body.get('error')}")
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def measure(cfg: CanaryConfig, selector: str) -> TrackFigures:
    q = track_queries(cfg.model, selector, cfg.window)
    requests = query_scalar(cfg.prometheus, q["requests"])
    errors = query_scalar(cfg.prometheus, q["errors"])
    p99 = query_scalar(cfg.prometheus, q["p99_us"]) / 1000 if requests > errors else math.nan
    # increase() extrapolates each series on its own: the ratio can come out a hair over 1
    return TrackFigures(requests, min(errors / requests, 1.0) if requests else 0.0, p99)


def decide(stable: TrackFigures, canary: TrackFigures, cfg: CanaryConfig) -> tuple[str, list[str]]:
    """promote, rollback or inconclusive, with the reasons."""
    if min(stable.requests, canary.requests) < cfg.min_requests:
        return "inconclusive", [f"too few requests in {cfg.window}: stable {stable.requests:.0f}, canary "
                                f"{canary.requests:.0f} (--min-requests {cfg.min_requests})"]
    reasons = []
    if canary.error_ratio > stable.error_ratio + cfg.max_error_ratio_increase:
        reasons.append(f"error ratio {canary.error_ratio:.2%} against the stable's {stable.error_ratio:.2%} "
                       f"(allowed increase {cfg.max_error_ratio_increase:.2%})")
    if math.isnan(canary.p99_ms) and not math.isnan(stable.p99_ms):
        reasons.append("no successful canary request to measure latency on")
    elif (canary.p99_ms > stable.p99_ms * (1 + cfg.max_latency_increase)
          and canary.p99_ms - stable.p99_ms > cfg.latency_tolerance_ms):
        reasons.append(f"p99 latency {canary.p99_ms:.1f} ms against the stable's {stable.p99_ms:.1f} ms (allowed "
                       f"increase {cfg.max_latency_increase:.0%} and {cfg.latency_tolerance_ms:g} ms)")
    return ("rollback", reasons) if reasons else ("promote", ["within both limits"])


def _model_entry(config, model: str, path: Path):
    for entry in config.model_config_list.config:
        if entry.name == model:
            return entry
    raise ValueError(f"{path}: no model named {model!r} in its model_config_list")


def apply(decision: str, cfg: CanaryConfig) -> Path | None:
    """Copy the winning track's version policy for the model into the other track's config file (atomically);
    returns the file changed."""
    from google.protobuf import text_format

    from serving.lifecycle.config_files import load_model_server_config

    if decision not in ("promote", "rollback"):
        return None
    source, target = ((cfg.canary_config, cfg.stable_config) if decision == "promote"
                      else (cfg.stable_config, cfg.canary_config))
    winner = _model_entry(load_model_server_config(source), cfg.model, source)
    config = load_model_server_config(target)
    entry = _model_entry(config, cfg.model, target)
    entry.model_version_policy.CopyFrom(winner.model_version_policy)
    entry.ClearField("version_labels")  # labels may name versions this track no longer serves
    header = _leading_comments(target.read_text())
    partial = target.with_name(f".{target.name}.tmp")
    partial.write_text(header + text_format.MessageToString(config))
    os.replace(partial, target)
    return target


def _leading_comments(text: str) -> str:
    """The comment lines a config file starts with (kept when it is rewritten)."""
    return "".join(itertools.takewhile(lambda line: line.startswith("#"), text.splitlines(keepends=True)))


def run(cfg: CanaryConfig) -> dict:
    stable, canary = measure(cfg, cfg.stable_selector), measure(cfg, cfg.canary_selector)
    decision, reasons = decide(stable, canary, cfg)
    changed = None if cfg.dry_run else apply(decision, cfg)
    report = {"model": cfg.model, "window": cfg.window, "decision": decision, "reasons": reasons,
              "stable": asdict(stable), "canary": asdict(canary), "dry_run": cfg.dry_run,
              "changed": str(changed) if changed else None}
    logger.info("%s %s: %s (stable: %.0f requests, %.2f%% errors, p99 %.1f ms; canary: %.0f requests, %.2f%% errors, "
                "p99 %.1f ms)%s", cfg.model, decision, "; ".join(reasons), stable.requests, 100 * stable.error_ratio,
                stable.p99_ms, canary.requests, 100 * canary.error_ratio, canary.p99_ms,
                " — dry run, nothing changed" if cfg.dry_run else f" — wrote {changed}" if changed else "")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clients.canary", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prometheus", required=True, help="Prometheus base URL")
    p.add_argument("--model", required=True, help="the model name both tracks serve")
    p.add_argument("--stable-config", type=Path, required=True, help="the stable servers' model config file")
    p.add_argument("--canary-config", type=Path, required=True, help="the canary servers' model config file")
    p.add_argument("--stable-selector", default='track="stable"',
                   help="label matchers of the stable servers' series (default: %(default)s)")
    p.add_argument("--canary-selector", default='track="canary"',
                   help="label matchers of the canary servers' series (default: %(default)s)")
    p.add_argument("--window", default="10m", help="PromQL range to compare over (default: %(default)s)")
    p.add_argument("--max-error-ratio-increase", type=float, default=0.01,
                   help="largest allowed rise of the failed-request share over the stable's, absolute "
                        "(default: %(default)s = 1 point)")
    p.add_argument("--max-latency-increase", type=float, default=0.2,
                   help="largest allowed rise of the p99 latency over the stable's, relative (default: %(default)s)")
    p.add_argument("--latency-tolerance-ms", type=float, default=5.0,
                   help="a p99 rise up to this many milliseconds never counts as a regression, whatever its ratio "
                        "(default: %(default)s)")
    p.add_argument("--min-requests", type=int, default=100,
                   help="fewer requests on either track in the window: inconclusive, nothing changes "
                        "(default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="decide and report, change no file")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = CanaryConfig(a.prometheus, a.model, a.stable_config, a.canary_config, a.stable_selector,
                       a.canary_selector, a.window, a.max_error_ratio_increase, a.max_latency_increase,
                       a.latency_tolerance_ms, a.min_requests, a.dry_run)
    from serving.errors import ServingError

    try:
        report = run(cfg)
    except (OSError, RuntimeError, ValueError, ServingError) as e:  # URLError is an OSError
        logger.error("canary analysis failed: %s", e)
        return ERROR_EXIT
    print(json.dumps(_without_nan(report)))
    return EXIT[report["decision"]]


def _without_nan(value):
    """JSON has no NaN: an unmeasured figure is null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


if __name__ == "__main__":
    sys.exit(main())
