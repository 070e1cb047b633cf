import numpy as np
import pytest


def test_test_time_flip_averages_the_image_and_its_mirror_and_survives_save_and_load(tmp_path):
    import keras

    from export.models.inference_views import with_test_time_flip

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


def test_without_test_time_views_returns_the_wrapped_classifier_and_leaves_others_alone():
    import keras

    from export.models.inference_views import with_test_time_flip, without_test_time_views

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    assert without_test_time_views(with_test_time_flip(model)) is model
    assert without_test_time_views(model) is model


@pytest.mark.parametrize(("dy", "dx"), [(0, 2), (0, -2), (3, 0), (-1, 1)])
def test_reflect_shift_moves_the_content_and_reflects_the_border_like_numpy(dy, dx):
    from export.models.inference_views import ReflectShift

    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    p = 3
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    expected = padded[:, p + dy:p + dy + 8, p + dx:p + dx + 8]
    np.testing.assert_array_equal(np.asarray(ReflectShift(dy, dx)(x)), expected)
    assert np.asarray(ReflectShift(0, 2)(x))[0, 0, 0, 0] == x[0, 0, 2, 0]  # content moved 2 px left


def test_shifted_views_average_every_view_and_its_mirror_and_survive_save_and_load(tmp_path):
    import keras

    from export.models.inference_views import view_count, with_test_time_views, without_test_time_views

    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    x = np.random.default_rng(2).uniform(0, 255, (2, 6, 6, 3)).astype("float32")
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="reflect")
    views = [x, padded[:, :, 2:8], padded[:, :, 0:6]]  # the image, 1 px left, 1 px right
    expected = np.mean([model.predict(v[:, :, ::m], verbose=0) for v in views for m in (1, -1)], axis=0)
    wrapped = with_test_time_views(model, flip=True, shift=1)
    assert view_count(True, 1) == 6 and view_count(False, 1) == 3 and view_count(True, 1, vertical=True) == 10
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert wrapped.count_params() == model.count_params()
    wrapped.save(tmp_path / "views.keras")
    reloaded = keras.models.load_model(tmp_path / "views.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # the mirror image gets the same answer: its views are the original's views mirrored
    np.testing.assert_allclose(wrapped.predict(x[:, :, ::-1], verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert without_test_time_views(with_test_time_views(model, flip=False, shift=2)) is model
    assert with_test_time_views(model, flip=False, shift=0) is model  # one view: nothing to wrap


def test_a_negative_shift_is_refused_naming_the_value():
    from export.models.inference_views import view_offsets

    with pytest.raises(ValueError, match="test-time shift -1"):
        view_offsets(-1)


def test_views_at_any_offsets_average_each_shifted_copy_and_its_mirror():
    import keras

    from export.models.inference_views import with_views_at, without_test_time_views

    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    x = np.random.default_rng(3).uniform(0, 255, (2, 6, 6, 3)).astype("float32")
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    views = [x, padded[:, 4:10, 4:10], padded[:, 0:6, 0:6]]  # the image, (2, 2) and (-2, -2) diagonally
    expected = np.mean([model.predict(v[:, :, ::m], verbose=0) for v in views for m in (1, -1)], axis=0)
    wrapped = with_views_at(model, [(0, 0), (2, 2), (-2, -2)], flip=True)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert without_test_time_views(wrapped) is model
