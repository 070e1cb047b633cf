"""The CIFAR recipes' numerics: Adam by default, AdamW or Nesterov SGD with decay on kernels only, smoothed loss."""

import numpy as np
import pytest

from export import settings
from export.__main__ import build_parser


def _config(*extra: str) -> settings.CifarExportConfig:
    return settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "d", "--recipe", "improved", *extra]))


def test_no_weight_decay_gives_plain_adam():
    import keras

    from export.models.cifar10_recipe import optimizer

    chosen = optimizer(_config(), steps_per_epoch=10)
    assert type(chosen) is keras.optimizers.Adam


def test_weight_decay_shrinks_kernels_and_leaves_biases_and_batch_norm_alone():
    import keras

    from export.models.cifar10_model import build_model
    from export.models.cifar10_recipe import optimizer

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


def test_sgd_is_nesterov_momentum_with_decay_on_kernels_only_and_named_in_the_metadata():
    import keras

    from export.models.cifar10_model import build_model
    from export.models.cifar10_recipe import optimizer, optimizer_name

    cfg = _config("--optimizer", "sgd", "--learning-rate", "0.1", "--weight-decay", "0.5", "--epochs", "1")
    chosen = optimizer(cfg, steps_per_epoch=10)
    assert type(chosen) is keras.optimizers.SGD and chosen.nesterov and chosen.momentum == pytest.approx(0.9)
    assert optimizer_name(cfg) == "SGD (Nesterov momentum 0.9)" and optimizer_name(_config()) == "Adam"
    model = build_model(10)
    variables = model.trainable_variables
    before = [np.array(v.numpy()) for v in variables]
    chosen.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])
    for variable, old in zip(variables, before, strict=True):
        if variable.name == "kernel":
            np.testing.assert_allclose(variable.numpy(), old * (1 - 0.1 * 0.5), rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(variable.numpy(), old)


def test_sgd_without_weight_decay_leaves_weights_alone_on_zero_gradients():
    from export.models.cifar10_model import build_model
    from export.models.cifar10_recipe import optimizer

    chosen = optimizer(_config("--optimizer", "sgd", "--learning-rate", "0.1", "--epochs", "1"), steps_per_epoch=10)
    model = build_model(10)
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    chosen.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    for variable, old in zip(model.trainable_variables, before, strict=True):
        # MaxNorm(3) renormalises dense kernels after every step: equal up to float rounding, no decay.
        np.testing.assert_allclose(variable.numpy(), old, rtol=1e-6, atol=0)


def test_no_label_smoothing_keeps_keras_sparse_cross_entropy():
    from export.models.cifar10_recipe import loss

    assert loss(_config(), num_classes=10) == "sparse_categorical_crossentropy"


def test_label_smoothing_matches_keras_smoothed_cross_entropy_on_one_hot_labels():
    import keras

    from export.models.cifar10_recipe import loss

    chosen = loss(_config("--label-smoothing", "0.1"), num_classes=4)
    labels = np.array([0, 3, 2], "int64")
    probabilities = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.4], [0.05, 0.05, 0.85, 0.05]], "float32")
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(4, dtype="float32")[labels],
                                                                         probabilities)
    assert float(chosen(labels, probabilities)) == pytest.approx(float(expected), rel=1e-6)
    # Smoothing raises the loss of a confident right answer: targets are 0.925 / 0.025, not 1 / 0.
    assert float(chosen(labels, probabilities)) > float(keras.losses.SparseCategoricalCrossentropy()(labels,
                                                                                                     probabilities))
    restored = keras.losses.deserialize(keras.losses.serialize(chosen))
    assert (restored.num_classes, restored.label_smoothing) == (4, 0.1)


def test_label_smoothing_outside_zero_to_one_is_refused_with_the_value():
    from export.models.cifar10_recipe import loss

    with pytest.raises(ValueError, match="1.5"):
        loss(_config("--label-smoothing", "1.5"), num_classes=10)
