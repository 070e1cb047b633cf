"""Every command answers --help at once: arguments are parsed before TensorFlow is imported."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ("export",), ("export", "cifar10"), ("export", "cifar100"), ("export", "caltechown"), ("export", "imagenet"),
    ("export.bench_training",), ("export.jpeg_robustness",), ("export.jpeg_dataset",),
    ("export.test_time_views",), ("serving",), ("serving.check",), ("clients",),
    ("clients", "predict"),
    ("clients.grpc_client",), ("clients.rest_client",), ("clients.bench",), ("clients.bench_loader",),
    ("clients.parity",), ("clients.soak_swaps",), ("clients.transport_floor",), ("clients.demo",),
]
PROBE = """
import runpy, sys
module, rest = sys.argv[1], sys.argv[2:]
sys.argv = [module, *rest, "--help"]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
print("EXIT", code, "tensorflow" in sys.modules, "keras" in sys.modules)
"""


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_answers_without_importing_tensorflow(command):
    out = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "EXIT 0 False False", out.stdout[-500:]
    assert out.stderr == ""
