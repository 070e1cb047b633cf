"""The CIFAR exporter's optimizer: plain Adam by default, AdamW on kernels only when a weight decay is given."""

import numpy as np
import pytest

from export import settings
from export.__main__ import build_parser


def _config(*extra: str) -> settings.CifarExportConfig:
    return settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "d", "--recipe", "improved", *extra]))


def test_no_weight_decay_gives_plain_adam():
    import keras

    from export.cifar10_export import optimizer

    chosen = optimizer(_config(), steps_per_epoch=10)
    assert type(chosen) is keras.optimizers.Adam


def test_weight_decay_shrinks_kernels_and_leaves_biases_and_batch_norm_alone():
    import keras

    from export.cifar10_export import optimizer
    from export.cifar10_model import build_model

    chosen = optimizer(_config("--weight-decay", "0.5", "--learning-rate", "0.1", "--epochs", "1"),
                       steps_per_epoch=10)
    assert isinstance(chosen, keras.optimizers.AdamW) and chosen.weight_decay == pytest.approx(0.5)
    model = build_model(10)
    variables = model.trainable_variables
    before = [np.array(v.numpy()) for v in variables]
    # Zero gradients: Adam's own step is 0, so any change is the decoupled decay alone.
    chosen.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])
    rate = 0.1  # a 1-epoch improved run has no warmup: step 0 runs at the peak rate
    for variable, old in zip(variables, before, strict=True):
        new = variable.numpy()
        if variable.name == "kernel":
            np.testing.assert_allclose(new, old * (1 - rate * 0.5), rtol=1e-5, atol=1e-7)
        else:
            assert variable.name in ("bias", "gamma", "beta"), variable.name
            np.testing.assert_array_equal(new, old)
