"""Canary analysis: the decision rule, the config rewrite, and end to end against two local servers scraped by a real
Prometheus: a healthy canary is promoted, a failing one rolled back."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from clients.canary import CanaryConfig, TrackFigures, apply, decide
from serving.lifecycle.config_files import load_model_server_config

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **overrides) -> CanaryConfig:
    values = dict(prometheus="http://127.0.0.1:1", model="half_plus_two", stable_config=tmp_path / "stable.config",
                  canary_config=tmp_path / "canary.config", stable_selector='track="stable"',
                  canary_selector='track="canary"', window="1m", max_error_ratio_increase=0.01,
                  max_latency_increase=0.2, latency_tolerance_ms=1.0, min_requests=50, dry_run=False)
    return CanaryConfig(**{**values, **overrides})


def model_config(path: Path, base: Path, version: int, other: bool = True) -> Path:
    """A ModelServerConfig serving `version` of half_plus_two (and, with `other`, a second model entry)."""
    second = f'  config {{ name: "other" base_path: "{base}" model_platform: "tensorflow" }}\n' if other else ""
    path.write_text(f"""model_config_list {{
  config {{ name: "half_plus_two" base_path: "{base}" model_platform: "tensorflow"
           model_version_policy {{ specific {{ versions: {version} }} }} }}
{second}}}
""")
    return path


def served_version(path: Path) -> list[int]:
    (entry,) = [c for c in load_model_server_config(path).model_config_list.config if c.name == "half_plus_two"]
    return list(entry.model_version_policy.specific.versions)


@pytest.mark.parametrize("stable, canary, decision, reason", [
    (TrackFigures(1000, 0.0, 10.0), TrackFigures(1000, 0.005, 11.0), "promote", "within both limits"),
    (TrackFigures(1000, 0.0, 10.0), TrackFigures(1000, 0.05, 10.0), "rollback", "error ratio 5.00%"),
    (TrackFigures(1000, 0.0, 10.0), TrackFigures(1000, 0.0, 13.0), "rollback", "p99 latency 13.0 ms"),
    (TrackFigures(1000, 0.0, 0.5), TrackFigures(1000, 0.0, 1.4), "promote", "within both limits"),  # under 1 ms more
    (TrackFigures(1000, 0.0, 0.5), TrackFigures(1000, 0.0, 1.6), "rollback", "p99 latency 1.6 ms"),
    (TrackFigures(1000, 0.0, 10.0), TrackFigures(1000, 1.0, math.nan), "rollback", "no successful canary request"),
    (TrackFigures(1000, 0.0, 10.0), TrackFigures(20, 0.0, 10.0), "inconclusive", "too few requests"),
])
def test_the_decision_names_the_figures_it_rests_on(tmp_path, stable, canary, decision, reason):
    got, reasons = decide(stable, canary, config(tmp_path))
    assert got == decision and any(reason in r for r in reasons), reasons


def test_promotion_moves_the_stable_config_to_the_canary_version_and_rollback_the_reverse(tmp_path):
    cfg = config(tmp_path)
    model_config(cfg.stable_config, tmp_path, 1)
    model_config(cfg.canary_config, tmp_path, 2)
    assert apply("promote", cfg) == cfg.stable_config
    assert served_version(cfg.stable_config) == [2] and served_version(cfg.canary_config) == [2]
    model_config(cfg.stable_config, tmp_path, 1)
    assert apply("rollback", cfg) == cfg.canary_config
    assert served_version(cfg.canary_config) == [1] and served_version(cfg.stable_config) == [1]
    assert apply("inconclusive", cfg) is None
    other = [c for c in load_model_server_config(cfg.canary_config).model_config_list.config if c.name == "other"]
    assert other and not list(tmp_path.glob(".*.tmp"))  # the other models untouched, no partial file left


def test_an_unknown_model_is_an_error_naming_the_file(tmp_path):
    cfg = config(tmp_path, model="missing")
    model_config(cfg.stable_config, tmp_path, 1)
    model_config(cfg.canary_config, tmp_path, 2)
    with pytest.raises(ValueError, match="no model named 'missing'"):
        apply("promote", cfg)


# --- end to end: two local servers, a real Prometheus --------------------------------------------------------

def broken_copy(source: Path, target: Path) -> Path:
    """The model with its serving_default input renamed: the same client requests fail on it (INVALID_ARGUMENT),
    as after an export that changed the serving contract."""
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(source, target)
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((target / "saved_model.pb").read_bytes())
    for mg in sm.meta_graphs:
        sig = mg.signature_def["serving_default"]
        sig.inputs["renamed"].CopyFrom(sig.inputs["x"])
        del sig.inputs["x"]
    (target / "saved_model.pb").write_bytes(sm.SerializeToString())
    (target / "assets.extra" / "tf_serving_warmup_requests").unlink()
    return target


def canary_run(tmp_path: Path, source: Path, canary_breaks: bool) -> tuple[int, dict, list[int], list[int]]:
    """Stable on version 1, canary on version 2 (broken or not), the same traffic to both, then the analysis;
    returns its exit status, report, and the versions the stable and canary servers serve afterwards."""
    from tests.monitoring.prometheus_server import running_prometheus, tool
    from tests.serving.conftest import install_version, start_server

    tool("prometheus")
    base = tmp_path / "models" / "half_plus_two"
    install_version(source, base, 1)
    if canary_breaks:
        broken_copy(source, base / "2")
    else:
        install_version(source, base, 2)
    configs = {"stable": model_config(tmp_path / "stable.config", base, 1, other=False),
               "canary": model_config(tmp_path / "canary.config", base, 2, other=False)}
    monitoring = ROOT / "k8s/base/config/monitoring.config"
    servers = {track: start_server("local", [f"--model_config_file={path}", "--model_config_file_poll_wait_seconds=1",
                                             f"--monitoring_config_file={monitoring}"], tmp_path)
               for track, path in configs.items()}
    try:
        for track, server in servers.items():
            server.wait_available("half_plus_two", version=1 if track == "stable" else 2)
        scrape = [{"job_name": "tfserving", "metrics_path": "/monitoring/prometheus/metrics",
                   "static_configs": [{"targets": [f"127.0.0.1:{s.rest_port}"], "labels": {"track": t}}
                                      for t, s in servers.items()]}]
        with running_prometheus(tmp_path, scrape) as url:
            body = json.dumps({"instances": [{"x": 1.0}, {"x": 2.0}]}).encode()  # named: the broken canary refuses it
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the same requests to both tracks, as a traffic split sends them
                for server in servers.values():
                    req = urllib.request.Request(f"{server.rest}/v1/models/half_plus_two:predict", data=body)
                    try:
                        urllib.request.urlopen(req, timeout=10).read()
                    except urllib.error.HTTPError as e:
                        assert canary_breaks and e.code == 400
                time.sleep(0.02)
            time.sleep(3)
            out = subprocess.run([sys.executable, "-m", "clients.canary", "--prometheus", url,
                                  "--model", "half_plus_two", "--stable-config", str(configs["stable"]),
                                  "--canary-config", str(configs["canary"]), "--window", "1m",
                                  "--min-requests", "50", "--latency-tolerance-ms", "100"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
        report = json.loads(out.stdout.strip().splitlines()[-1])
        # the servers follow their config files: the losing track ends on the winner's version
        winner = 2 if out.returncode == 0 else 1
        for server in servers.values():
            server.wait_available("half_plus_two", version=winner, timeout=60)
        return out.returncode, report, served_version(configs["stable"]), served_version(configs["canary"])
    finally:
        for server in servers.values():
            server.stop()


@pytest.mark.e2e
@pytest.mark.slow
def test_a_healthy_canary_is_promoted(tmp_path, half_plus_two_source):
    code, report, stable, canary = canary_run(tmp_path, half_plus_two_source, canary_breaks=False)
    assert code == 0 and report["decision"] == "promote", report
    assert report["canary"]["error_ratio"] == 0 and report["canary"]["requests"] >= 50
    assert stable == [2] and canary == [2]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_failing_canary_is_rolled_back(tmp_path, half_plus_two_source):
    code, report, stable, canary = canary_run(tmp_path, half_plus_two_source, canary_breaks=True)
    assert code == 1 and report["decision"] == "rollback", report
    assert report["canary"]["error_ratio"] == 1 and report["stable"]["error_ratio"] == 0
    assert stable == [1] and canary == [1]
