from export.cifar10_model import PARAMETER_COUNT, build_model


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
