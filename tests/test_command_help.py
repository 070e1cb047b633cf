"""Every command answers --help at once: arguments are parsed before TensorFlow is imported."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ("export",), ("export", "cifar10"), ("export", "cifar100"), ("export", "caltechown"), ("export", "imagenet"),
    ("export.lab.bench_training",), ("export.lab.jpeg_robustness",), ("export.lab.jpeg_dataset",),
    ("export.lab.views_report",), ("export.lab.encoder_shift",), ("serving",), ("serving.check",), ("clients",),
    ("clients", "predict"),
    ("clients.grpc_client",), ("clients.rest_client",), ("clients.bench",), ("clients.bench.loader",),
    ("clients.parity",), ("clients.bench.soak_swaps",), ("clients.bench.fuzz_apis",),
    ("clients.bench.transport_floor",), ("clients.demo",), ("clients.canary",),
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


def console_scripts() -> dict[str, str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


SCRIPT_PROBE = """
import importlib, sys
module, function = sys.argv[1].split(":")
sys.argv = [sys.argv[2], "--help"]
try:
    getattr(importlib.import_module(module), function)()
except SystemExit as e:
    code = e.code
print("EXIT", code, "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_each_console_script_runs_its_commands_main_and_answers_help(script):
    target = console_scripts()[script]
    module = target.split(":")[0].removesuffix(".__main__")
    assert (module,) in COMMANDS  # the same command as `python -m <module>`
    out = subprocess.run([sys.executable, "-c", SCRIPT_PROBE, target, script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert "usage:" in out.stdout and out.stdout.strip().splitlines()[-1] == "EXIT 0 False", out.stdout[-500:]


# A measured figure in a help text: "measured ... <number>", "1.9x faster", "+0.2 points", "gives ~60%".
MEASUREMENT = re.compile(r"measured[^.;)]*\d|\d+(\.\d+)?\s*[x×]\s*(faster|slower)|[+−]\d+(\.\d+)?\s*points|gives ~\d")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_says_what_an_option_does_and_quotes_no_measurement(command):
    out = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    text = " ".join(out.stdout.split())
    found = MEASUREMENT.search(text)
    where = text[max(0, found.start() - 80):found.end() + 40] if found else ""
    assert found is None, f"--help quotes a measurement (put it on a results page): …{where}…"


def test_the_measurement_check_catches_what_help_texts_used_to_quote():
    for quoted in ("(measured 1.3-1.9x faster for CIFAR-10)", "(measured +0.20 and +0.48 points on two models)",
                   "training epochs (1 full epoch gives ~60% accuracy)"):
        assert MEASUREMENT.search(quoted), quoted
    assert MEASUREMENT.search("windows until throughput is stable within ±10 % (default 3)") is None
