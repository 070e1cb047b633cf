"""Training under mixed_bfloat16: the policy is scoped, the trained weights reach a float32 model, and what is
published is a float32 SavedModel."""

import functools
import json

import keras
import numpy as np
import pytest

from export.models.cifar10_model import build_model
from export.training.precision import as_float32, cpu_bf16_units, training_precision


def test_cpu_bf16_units_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_units(info) == ("amx_bf16", "avx512_bf16")
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_bf16_units(info) == ()
    assert cpu_bf16_units(tmp_path / "absent") is None


def test_training_precision_is_scoped_and_restored_after_an_error():
    assert keras.mixed_precision.global_policy().name == "float32"
    with training_precision("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError), training_precision("mixed_bfloat16"):
        raise RuntimeError("training failed")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="'float16'"), training_precision("float16"):
        pass



def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_units(monkeypatch):
    from export.training.precision import resolve_precision

    monkeypatch.setattr("export.training.precision.cpu_bf16_units", lambda: ("amx_bf16",))
    assert resolve_precision("auto") == "mixed_bfloat16"
    assert resolve_precision("float32") == "float32"  # an explicit choice is kept
    for missing in ((), None):  # no units, or /proc/cpuinfo unreadable
        monkeypatch.setattr("export.training.precision.cpu_bf16_units", lambda missing=missing: missing)
        assert resolve_precision("auto") == "float32"
        assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"

def test_no_bf16_units_warns_that_training_will_be_slow(monkeypatch, caplog):
    monkeypatch.setattr("export.training.precision.cpu_bf16_units", lambda: ())
    with caplog.at_level("WARNING", logger="export.training.precision"), training_precision("mixed_bfloat16"):
        pass
    assert "without bf16 units" in caplog.text


def test_mixed_model_computes_in_bf16_with_a_float32_softmax_and_its_float32_copy_has_its_weights():
    build = functools.partial(build_model, 10)
    with training_precision("mixed_bfloat16"):
        mixed = build()
    assert mixed.get_layer("conv1").compute_dtype == "bfloat16"
    assert mixed.get_layer("probabilities").compute_dtype == "float32"
    assert all(w.dtype == "float32" for w in mixed.get_weights())
    copy = as_float32(mixed, build)
    assert copy is not mixed and copy.get_layer("conv1").compute_dtype == "float32"
    assert copy.count_params() == mixed.count_params() == 2_264_458
    for a, b in zip(mixed.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(mixed.predict(pixels, verbose=0), copy.predict(pixels, verbose=0), atol=0.02)


def test_a_float32_model_is_returned_as_is():
    model = build_model(10)
    assert as_float32(model, lambda: pytest.fail("nothing to rebuild")) is model


@pytest.mark.slow
def test_mixed_bfloat16_export_publishes_a_float32_savedmodel(tmp_path):
    from export.exporters.cifar import CifarExportConfig, run
    from tests.export.publish.graph_mode import bfloat16_nodes

    summary = run(CifarExportConfig(data="synthetic", epochs=1, precision="mixed_bfloat16",
                                    model_base_path=tmp_path / "models", cache_dir=tmp_path / "cache"))
    assert summary["published"], summary
    assert keras.mixed_precision.global_policy().name == "float32"
    path = tmp_path / "models" / "cifar10" / "1"
    assert json.loads((path / "assets.extra" / "export_metadata.json").read_text())["training"]["precision"] == (
        "mixed_bfloat16")
    nodes, typed = bfloat16_nodes(path)
    assert nodes and typed == []


def test_cli_refuses_an_unknown_precision_before_training(capsys):
    from export.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["cifar10", "--data", "synthetic", "--precision", "float16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err
