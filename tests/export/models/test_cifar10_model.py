import numpy as np
import pytest

from export.models.cifar10_model import PARAMETER_COUNT, build_model


def test_reference_cnn_has_2264458_parameters():
    model = build_model()
    assert PARAMETER_COUNT == 2_264_458
    assert model.count_params() == 2_264_458


def test_reference_cnn_layer_order():
    kinds = [type(layer).__name__ for layer in build_model().layers]
    assert kinds == [
        "InputLayer", "Rescaling",
        "Conv2D", "Dropout", "BatchNormalization",
        "Conv2D", "MaxPooling2D", "Dropout", "BatchNormalization",
        "Conv2D", "MaxPooling2D", "Dropout", "BatchNormalization",
        "Conv2D", "Dropout", "BatchNormalization",
        "Flatten", "Dropout",
        "Dense", "Dropout", "BatchNormalization",
        "Dense", "Dropout", "BatchNormalization",
        "Dense",
    ]
    model = build_model()
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    assert [d.units for d in dense] == [256, 128, 10]
    assert all(type(d.kernel_constraint).__name__ == "MaxNorm" for d in dense[:2])
    assert dense[-1].activation.__name__ == "softmax"
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [
        (32, (3, 3), "same"), (64, (3, 3), "same"), (64, (3, 3), "same"), (128, (3, 3), "same")
    ]


def test_augmentation_is_optional_and_adds_no_parameters():
    model = build_model(augment=True)
    assert model.count_params() == 2_264_458
    assert any(layer.name == "augment_flip" for layer in model.layers)


def test_dropout_rates_are_arguments_that_keep_the_layers_and_the_parameter_count():
    model = build_model(conv_dropout=0.0, dense_dropout=0.3)
    assert model.count_params() == 2_264_458
    rates = {layer.name: layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"}
    assert rates == {"dropout_conv1": 0.0, "dropout_conv2": 0.0, "dropout_conv3": 0.0, "dropout_conv4": 0.0,
                     "dropout_flat": 0.3, "dropout_dense1": 0.3, "dropout_dense2": 0.3}
    assert {layer.rate for layer in build_model().layers if type(layer).__name__ == "Dropout"} == {0.2}


def test_random_erasing_noises_a_rectangle_in_some_training_images_only_and_adds_no_parameters():
    model = build_model(augment=True, random_erasing=1.0, seed=3)
    assert model.count_params() == 2_264_458
    erase = model.get_layer("augment_erase")
    images = np.full((8, 32, 32, 3), 0.5, dtype="float32")
    erased = erase(images, training=True).numpy()
    changed = (erased != images).any(axis=-1)
    assert changed.any(axis=(1, 2)).all()  # a fraction of 1.0 erases every image
    assert (changed.mean(axis=(1, 2)) < 0.5).all()  # a rectangle, not the whole image
    assert ((erased >= 0.0) & (erased <= 1.0)).all()  # noise stays in the scaled pixel range
    assert np.array_equal(erase(images, training=False).numpy(), images)
    assert not any(layer.name == "augment_erase" for layer in build_model(augment=True).layers)


def test_random_erasing_outside_zero_to_one_is_refused_with_the_value():
    with pytest.raises(ValueError, match="1.5"):
        build_model(augment=True, random_erasing=1.5)


@pytest.mark.parametrize("interpolation, whole_pixels", [("nearest", True), ("bilinear", False)])
def test_training_shift_moves_whole_pixels_only_with_nearest_interpolation(interpolation, whole_pixels):
    model = build_model(augment=True, seed=5, shift_interpolation=interpolation)
    assert model.count_params() == 2_264_458
    shift = model.get_layer("augment_shift")
    images = np.random.default_rng(0).uniform(0.0, 1.0, (16, 32, 32, 3)).astype("float32")
    shifted = shift(images, training=True).numpy()
    # nearest: every output pixel is one of the image's own (no resampling blur); bilinear mixes neighbours
    own = np.isin(shifted, images).mean()
    assert (own == 1.0) if whole_pixels else (own < 0.9), own
    assert np.array_equal(shift(images, training=False).numpy(), images)


@pytest.mark.parametrize("fraction, largest", [(0.1, 3), (0.125, 4)])
def test_shift_fraction_bounds_the_whole_pixel_training_shift(fraction, largest):
    model = build_model(augment=True, seed=3, shift_interpolation="nearest", shift_fraction=fraction)
    assert model.count_params() == 2_264_458
    # each pixel holds its own column (channel 0) and row (channel 1): the centre pixel then says how far it moved
    rows, cols = np.mgrid[0:32, 0:32].astype("float32")
    ramp = np.stack([cols, rows, np.zeros_like(rows)], axis=-1)
    shifted = model.get_layer("augment_shift")(np.repeat(ramp[None], 256, axis=0), training=True).numpy()
    moves = np.abs(np.stack([16 - shifted[:, 16, 16, 0], 16 - shifted[:, 16, 16, 1]]))
    assert np.array_equal(moves, np.round(moves))  # whole pixels
    assert moves.max() == largest, np.unique(moves)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_shift_fraction_outside_zero_to_one_is_refused_with_the_value(fraction):
    with pytest.raises(ValueError, match=str(fraction)):
        build_model(augment=True, shift_fraction=fraction)


def test_an_unknown_shift_interpolation_is_refused_with_the_value():
    with pytest.raises(ValueError, match="'bicubic'"):
        build_model(augment=True, shift_interpolation="bicubic")
