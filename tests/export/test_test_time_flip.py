import numpy as np


def test_test_time_flip_averages_the_image_and_its_mirror_and_survives_save_and_load(tmp_path):
    import keras

    from export.test_time_flip import with_test_time_flip

    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    flipped = with_test_time_flip(model)
    expected = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1, :], verbose=0)) / 2
    np.testing.assert_allclose(flipped.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert flipped.count_params() == model.count_params()  # the same weights, used twice
    flipped.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_without_test_time_flip_returns_the_wrapped_classifier_and_leaves_others_alone():
    import keras

    from export.test_time_flip import with_test_time_flip, without_test_time_flip

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    assert without_test_time_flip(with_test_time_flip(model)) is model
    assert without_test_time_flip(model) is model
