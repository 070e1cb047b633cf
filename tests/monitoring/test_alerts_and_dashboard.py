"""The alert rules (promtool's own checks and unit tests), the PrometheusRule and the Grafana dashboard, and a real
Prometheus scraping a local server under load: every dashboard query returns data, every alert expression
evaluates and names only metrics and labels that exist."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.monitoring.prometheus_server import query, running_prometheus, tool

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "overlays" / "prometheus-operator"
RULES = OVERLAY / "tfserving.rules.yaml"
DASHBOARD = OVERLAY / "dashboards" / "tfserving.json"


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"].replace("$model", ".*") for p in panels for t in p["targets"]]


def test_promtool_checks_the_rules_and_their_unit_tests_pass():
    promtool = tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in check.stdout
    tests = subprocess.run([promtool, "test", "rules", "tfserving.rules.test.yaml"], cwd=Path(__file__).parent,
                           capture_output=True, text=True)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    tests = yaml.safe_load((Path(__file__).parent / "tfserving.rules.test.yaml").read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    quiet = {t["alertname"] for case in tests for t in case["alert_rule_test"] if not t["exp_alerts"]}
    names = {r["alert"] for r in alert_rules()}
    assert fired == names and quiet == names


def test_the_prometheus_rule_carries_the_plain_rule_file():
    (rule,) = [d for d in yaml.safe_load_all((OVERLAY / "prometheusrule.yaml").read_text())]
    assert rule["kind"] == "PrometheusRule" and rule["spec"] == yaml.safe_load(RULES.read_text())


def test_the_dashboard_is_provisioned_for_grafanas_sidecar():
    from tests.k8s.test_manifests import render

    docs = render("overlays/prometheus-operator")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tfserving-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["tfserving.json"]) == json.loads(DASHBOARD.read_text())
    assert {d["kind"] for d in docs} >= {"PrometheusRule", "ServiceMonitor"}


# --- a real Prometheus ---------------------------------------------------------------------------------------

class StandIn(BaseHTTPRequestHandler):
    """Stands in for kube-state-metrics and cAdvisor (a cluster provides them; the local test has neither): the
    series the rules and dashboard read from them, with the labels those exporters give."""

    started = time.monotonic()

    def do_GET(self):  # noqa: N802 (http.server's name)
        seconds = time.monotonic() - self.started
        body = "\n".join([
            'kube_deployment_status_replicas_available{namespace="tfserving",deployment="tfserving"} 2',
            'kube_deployment_spec_replicas{namespace="tfserving",deployment="tfserving"} 2',
            'kube_pod_container_status_restarts_total{namespace="tfserving",pod="tfserving-a",container="tfserving"} 0',
            f'container_cpu_usage_seconds_total{{namespace="tfserving",pod="tfserving-a",container="tfserving"}} '
            f'{seconds * 0.5:.3f}',
            'container_memory_working_set_bytes{namespace="tfserving",pod="tfserving-a",container="tfserving"} 1.5e9',
        ]) + "\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def jpeg() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names in its matchers) of every selector `name{...}` in an expression."""
    out = []
    for name, matchers in re.findall(r"(:?[a-zA-Z_][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        out.append((name, set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)", matchers))))
    return out


@pytest.mark.e2e
@pytest.mark.slow
def test_a_real_prometheus_returns_data_for_every_dashboard_query_and_alert(tmp_path, exported_cifar10):
    from tests.serving.conftest import start_server

    tool("prometheus")
    base = tmp_path / "models" / "cifar10"
    shutil.copytree(exported_cifar10, base / "1")
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    args = ["--model_name=cifar10", f"--model_base_path={base}", "--enable_batching",
            f"--batching_parameters_file={ROOT / 'k8s/base/config/batching.config'}",
            f"--monitoring_config_file={ROOT / 'k8s/base/config/monitoring.config'}",
            "--file_system_poll_wait_seconds=1"]
    with start_server("local", args, tmp_path) as server, contextlib.ExitStack() as stack:
        stack.callback(stand_in.shutdown)
        server.wait_available("cifar10")
        scrape = [{"job_name": "tfserving", "metrics_path": "/monitoring/prometheus/metrics",
                   "static_configs": [{"targets": [f"127.0.0.1:{server.rest_port}"]}]},
                  {"job_name": "kube-state-metrics",
                   "static_configs": [{"targets": [f"127.0.0.1:{stand_in.server_address[1]}"]}]}]
        url = stack.enter_context(running_prometheus(tmp_path, scrape, [RULES]))
        # load: good and bad requests over REST, and a version that fails to load beside the served one
        body = json.dumps({"instances": [{"b64": jpeg()}]}).encode()
        (base / "2").mkdir()
        (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            for payload in (body, b'{"instances": "not a list"}'):
                req = urllib.request.Request(f"{server.rest}/v1/models/cifar10:predict", data=payload)
                with contextlib.suppress(urllib.error.HTTPError):  # the bad one: 400, counted by status
                    urllib.request.urlopen(req, timeout=10).read()
            time.sleep(0.05)
        time.sleep(3)  # the last scrapes
        empty = [e for e in dashboard_queries() if not query(url, e)["data"]["result"]]
        assert empty == [], f"dashboard queries without data: {empty}"
        for rule in alert_rules():
            assert query(url, rule["expr"])["status"] == "success", rule["alert"]
            for name, labels in selectors(rule["expr"]):
                grouped = query(url, f"group by ({', '.join(sorted(labels))}) ({name})")["data"]["result"]
                assert grouped, f"{rule['alert']}: no series of {name}"
                assert any(labels <= {k for k, v in s["metric"].items() if v} for s in grouped), (rule, name)
        failed = query(url, ':tensorflow:cc:saved_model:load_attempt_count{status!="success"}')["data"]["result"]
        assert failed and failed[0]["metric"]["model_path"].endswith("/2")
