"""`python -m export` end to end: JSON line, exit codes, gate refusal, atomicity."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from export.publish import repository

pytestmark = pytest.mark.slow


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)


def test_help_lists_options():
    out = run_cli("cifar10", "--help")
    assert out.returncode == 0
    for flag in ("--data", "--limit", "--epochs", "--model-base-path", "--version", "--min-accuracy",
                 "--max-regression", "--force", "--keep", "--logdir", "--resume", "--val-split"):
        assert flag in out.stdout


def test_missing_data_is_exit_2_with_clear_message(tmp_path):
    out = run_cli("cifar10", "--data", str(tmp_path / "nope"), "--model-base-path", str(tmp_path))
    assert out.returncode == 2
    assert "no such file or directory" in out.stderr


def test_existing_version_refused_before_training(exported_cifar10, tmp_path):
    base = exported_cifar10.parent.parent
    logdir = tmp_path / "runs"
    out = run_cli("cifar10", "--data", "synthetic", "--model-base-path", str(base), "--version", "1",
                  "--logdir", str(logdir), "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 2 and "version 1 already exists" in out.stderr
    # Refused before the data was loaded or a single step trained: no "data:" line, no TensorBoard run written.
    assert "data: " not in out.stderr and not logdir.exists()


def test_gate_refusal_publishes_nothing_then_publish_and_prune(tmp_path):
    common = ("cifar10", "--data", "synthetic", "--epochs", "1", "--model-base-path", str(tmp_path),
              "--cache-dir", str(tmp_path / "cache"))
    refused = run_cli(*common, "--min-accuracy", "1.01")
    assert refused.returncode == 1
    assert "below --min-accuracy 1.01" in refused.stderr
    summary = json.loads(refused.stdout.strip().splitlines()[-1])
    assert summary["published"] is False and summary["gate"]["passed"] is False
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == []

    for expected in (1, 2):
        ok = run_cli(*common, "--keep", "1", "--force")
        assert ok.returncode == 0, ok.stderr
        summary = json.loads(ok.stdout.strip().splitlines()[-1])
        assert summary["version"] == expected and summary["published"] is True
    assert repository.list_versions(tmp_path / "cifar10") == [2]


def test_killed_export_leaves_no_version(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "export", "cifar10", "--data", "synthetic", "--epochs", "1",
         "--model-base-path", str(tmp_path), "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    model_dir = tmp_path / "cifar10"
    deadline = time.monotonic() + 240
    staging = []
    # Kill as soon as the staging directory exists (mid-write).
    while not staging and time.monotonic() < deadline and proc.poll() is None:
        staging = [p for p in model_dir.iterdir() if p.name.startswith(".tmp-export-")] if model_dir.is_dir() else []
        time.sleep(0.05)  # polling for the directory to appear
    if not staging:
        proc.kill()
        ended = "ended" if proc.poll() is not None else "timed out"
        pytest.fail(f"no staging directory appeared before the export {ended}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert staging[0].name.startswith(".tmp-export-") and repository.list_versions(model_dir) == []
    # The next export cleans the leftover and publishes version 1.
    out = run_cli("cifar10", "--data", "synthetic", "--epochs", "1", "--model-base-path", str(tmp_path),
                  "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in model_dir.iterdir()) == [".publish.lock", "1"]  # the killed staging dir is gone
