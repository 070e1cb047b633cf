"""The validation gate refusing: a regression against the previous version, and a version TF Serving's loader fails."""

from __future__ import annotations

import json
import shutil

import pytest

from export.publish import repository
from export.publish.gate import run_gate
from export.settings import GatePolicy
from tests.export.test_cli import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_model(exported_cifar10):
    import keras

    return keras.models.load_model(exported_cifar10 / "assets.extra" / "keras_model.keras")


@pytest.fixture(scope="module")
def gate_jpegs(cifar_test_dir) -> list[bytes]:
    """The 64 real images the gate needs at least."""
    files = sorted((cifar_test_dir / "test").glob("*/*.jpg"))[:64]
    return [f.read_bytes() for f in files]


def test_a_version_tf_servings_loader_cannot_load_is_refused(exported_cifar10, keras_model, gate_jpegs, tmp_path):
    staged = tmp_path / "staged"
    shutil.copytree(exported_cifar10, staged)
    for f in (staged / "variables").glob("variables.data-*"):
        f.unlink()  # the graph is intact, its weights are gone: only a real load finds out
    result = run_gate(staged, "cifar10", keras_model, gate_jpegs, (32, 32), accuracy=0.5, previous=None,
                      policy=GatePolicy(force=True))
    assert result.passed is False
    infra = result.checks["infra_validation"]
    assert infra["ok"] is False and infra["error"]["stage"] == "load"
    assert result.reasons == [f"infra validation failed at load: {infra['error']['code']}: "
                              f"{infra['error']['message']}"]
    assert "variables" in infra["error"]["message"]  # --force overrides accuracy rules, never a failed load


def test_a_regression_is_refused_and_force_publishes_it_naming_both_figures(exported_cifar10, keras_model,
                                                                              gate_jpegs):
    common = dict(saved_model_dir=exported_cifar10, model_name="cifar10", model=keras_model, encoded=gate_jpegs,
                  input_size=(32, 32), accuracy=0.5, previous=(3, 0.9))
    refused = run_gate(**common, policy=GatePolicy(max_regression=0.05))
    assert refused.passed is False and refused.checks["infra_validation"]["ok"] is True
    assert refused.reasons == ["test accuracy 0.5000 regresses from version 3's 0.9000 by more than "
                               "--max-regression 0.05 (use --force to publish anyway)"]
    forced = run_gate(**common, policy=GatePolicy(max_regression=0.05, force=True))
    assert forced.passed is True and forced.reasons == []
    assert forced.checks["regression_overridden"].startswith("test accuracy 0.5000 regresses from version 3's 0.9000")
    within = run_gate(**{**common, "accuracy": 0.86}, policy=GatePolicy(max_regression=0.05))
    assert within.passed is True and within.checks["previous"] == {"version": 3, "test_accuracy": 0.9}


def test_the_command_refuses_a_version_worse_than_the_published_one(exported_cifar10, tmp_path):
    """The previous version's accuracy is read from its metadata; nothing is published on a refusal."""
    base = tmp_path / "models"
    previous = base / "cifar10" / "1"
    shutil.copytree(exported_cifar10, previous)
    meta_path = previous / "assets.extra" / "export_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["metrics"]["test_accuracy"] = 1.0  # no one-epoch model on synthetic data gets within 1 point of this
    meta_path.write_text(json.dumps(meta))
    out = run_cli("cifar10", "--data", "synthetic", "--epochs", "1", "--model-base-path", str(base),
                  "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 1, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["published"] is False
    assert "regresses from version 1's 1.0000 by more than --max-regression 0.01" in out.stderr
    assert repository.list_versions(base / "cifar10") == [1]


def test_the_gate_measures_serving_cost_alongside_the_previous_version_and_gates_latency(exported_cifar10,
                                                                                          keras_model, gate_jpegs):
    common = dict(saved_model_dir=exported_cifar10, model_name="cifar10", model=keras_model, encoded=gate_jpegs,
                  input_size=(32, 32), accuracy=0.5, previous=None, baseline=(7, exported_cifar10))
    measured = run_gate(**common, policy=GatePolicy())
    cost = measured.checks["serving_cost"]
    assert set(cost["signatures"]) == set(cost["baseline"]["signatures"]) == {"serving_default", "predict_pixels"}
    figures = cost["signatures"]["serving_default"]
    assert 0 < figures["batch1_p50_ms"] <= figures["batch1_p99_ms"] and figures["batch32_images_per_s"] > 0
    assert cost["threads"]["cpu_count"] >= 1 and measured.passed
    too_slow = run_gate(**common, policy=GatePolicy(max_latency_ms=1e-3))
    assert not too_slow.passed and any(
        r.startswith("signature 'serving_default': p50 latency at batch 1 is ") and r.endswith(
            "ms, over --max-latency-ms 0.001") for r in too_slow.reasons)


def test_latency_regression_names_both_figures_and_force_overrides_it():
    from export.publish.gate import GateResult, latency_reasons

    cost = {"signatures": {"serving_default": {"batch1_p50_ms": 6.0}, "predict_pixels": {"batch1_p50_ms": 2.1}},
            "baseline": {"signatures": {"serving_default": {"batch1_p50_ms": 4.0},
                                        "predict_pixels": {"batch1_p50_ms": 2.0}}}}
    refused = GateResult(passed=True)
    latency_reasons(cost, GatePolicy(max_latency_regression=0.2), 3, refused)
    assert refused.reasons == ["signature 'serving_default': p50 latency at batch 1 is 6.00 ms against version 3's "
                               "4.00 ms measured alongside it (+50%), over --max-latency-regression 0.2 (use --force "
                               "to publish anyway)"]
    forced = GateResult(passed=True)
    latency_reasons(cost, GatePolicy(max_latency_regression=0.2, force=True), 3, forced)
    assert forced.reasons == [] and len(forced.checks["latency_regression_overridden"]) == 1
    unlimited = GateResult(passed=True)
    latency_reasons(cost, GatePolicy(), 3, unlimited)
    assert unlimited.reasons == []
