"""A real Prometheus for the end-to-end tests: Debian's binary, a generated config, a free loopback port."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from tests.serving.conftest import free_port


def tool(name: str) -> str:
    """The path of a Prometheus tool, or skip the test saying how to get it."""
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (Debian's `prometheus` package provides it; .ci/run installs it)")
    return path


@contextlib.contextmanager
def running_prometheus(tmp_path: Path, scrape_configs: list[dict], rule_files: Sequence[Path] = ()) -> Iterator[str]:
    """Prometheus scraping `scrape_configs` every second (and evaluating `rule_files`); yields its base URL and
    stops it on exit. Its log is tmp_path/prometheus.log."""
    prometheus, port = tool("prometheus"), free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": scrape_configs}
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with open(tmp_path / "prometheus.log", "w") as log:
        proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def query(base: str, expr: str) -> dict:
    """An instant query through the HTTP API: its whole JSON answer."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())
