"""The training benchmark: variant parsing, and each variant measured in its own process."""

import json
from pathlib import Path

import pytest

from export.lab import bench_training
from tests.conftest import assert_accuracy_over


def test_variants_keep_thread_pairs_together():
    assert bench_training.parse_variants("default,xla,threads:2,1,numpy") == ("default", "xla", "threads:2,1", "numpy")


@pytest.mark.parametrize("text", ["threads:2", "threads:0,1", "gpu", "threads:a,b"])
def test_unknown_or_malformed_variants_are_refused(text):
    with pytest.raises(ValueError, match="variant"):
        bench_training.parse_variants(text)


def test_thread_and_onednn_variants_start_with_their_environment():
    assert bench_training.variant_environment("threads:2,1") == {"TF_NUM_INTRAOP_THREADS": "2",
                                                                "TF_NUM_INTEROP_THREADS": "1"}
    assert bench_training.variant_environment("onednn-off") == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert bench_training.variant_environment("onednn-bf16") == {"ONEDNN_DEFAULT_FPMATH_MODE": "BF16"}
    assert bench_training.variant_environment("default") == {}


@pytest.mark.slow
def test_bench_measures_each_variant_against_the_first(tmp_path, capsys):
    rc = bench_training.main(["--images", "128", "--epochs", "2", "--batch-size", "32", "--log-every-steps", "0",
                              "--cache-dir", str(tmp_path), "--variants", "default,threads:1,1"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    variants = {v["variant"]: v for v in result["variants"]}
    assert set(variants) == {"default", "threads:1,1"}
    assert variants["default"]["ratio_to_first"] == 1.0
    # whether the bf16 variant can be fast here is part of the result: the CPU's own flags, read independently
    flags = {flag for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[1].split()}
    assert sorted(result["cpu_bf16_units"]) == sorted(f for f in flags if f in ("amx_bf16", "avx512_bf16"))
    for v in variants.values():
        assert v["images"] == 128 and v["images_per_s"] > 0
        assert_accuracy_over(v["final_train_accuracy"], 128)
