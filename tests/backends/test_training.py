"""Training on this backend: a few steps of `model.fit`, a `.keras` file loaded in
safe mode that predicts exactly the same, and a mixed_bfloat16 forward pass."""

import keras
import numpy as np

import se_keras
from se_keras.applications import SEResNet20
from se_keras.layers import SqueezeExcitation


def _digits_like(n=12):
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (n, 32, 32, 3)).astype("float32")
    y = np.arange(n) % 10
    return x, y


def test_fit_then_keras_file_predicts_the_same(tmp_path):
    model = SEResNet20(weights=None)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _digits_like()
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # it trained
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    assert se_keras.get_preprocessing(loaded) == se_keras.get_preprocessing(model)
    assert isinstance(loaded.get_layer("stage1_block1_se"), SqueezeExcitation)


def test_mixed_bfloat16_forward_is_finite():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = SEResNet20(weights=None, include_preprocessing=True)
    se = model.get_layer("stage1_block1_se")
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(pixels, training=False))
    keras.config.set_dtype_policy("float32")
    assert probabilities.dtype == np.float32  # the classifier runs in float32
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert se.compute_dtype == "bfloat16" and se.reduce_kernel.dtype == "float32"
