"""The three SE layers on this backend: TensorFlow's outputs, the papers' equations,
unknown sizes under compilation, .keras files and mixed precision."""

import keras
import numpy as np
import pytest

from se_keras import layers as se_layers
from tests.backends import references
from tests.backends.references import relative_error

CASE_IDS = [case[0] for case in references.LAYER_CASES]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


_GATES = {
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda v: np.clip(v + 3.0, 0.0, 6.0) / 6.0,
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
}


def _numpy_se(layer, x):
    """Hu et al.'s block in float64, channels_last: x * gate(W2 relu(W1 pool(x) + b1) + b2)."""
    w1, b1, w2, b2 = (np.asarray(w, "float64") for w in layer.get_weights())
    spatial = tuple(range(1, x.ndim - 1))
    z = x.mean(axis=spatial) if layer.squeeze == "avg" else x.max(axis=spatial)
    s = _GATES[layer.gate](np.maximum(z @ w1 + b1, 0.0) @ w2 + b2)
    return x * s.reshape((len(s),) + (1,) * len(spatial) + (s.shape[1],))


def _numpy_sse(layer, x):
    """Roy et al.'s sSE in float64, channels_last: x * sigmoid(x w + b)."""
    w, b = (np.asarray(v, "float64") for v in layer.get_weights())
    return x * _sigmoid(x @ w + b)


def _numpy_reference(layer, x):
    channels_first = layer.data_format == "channels_first"
    x = np.asarray(np.moveaxis(x, 1, -1) if channels_first else x, "float64")
    if isinstance(layer, se_layers.ChannelSpatialSqueezeExcitation):
        cse, sse = _numpy_se(layer.channel_se, x), _numpy_sse(layer.spatial_se, x)
        y = {"add": cse + sse, "max": np.maximum(cse, sse), "multiply": cse * sse}[layer.combine]
    elif isinstance(layer, se_layers.SpatialSqueezeExcitation):
        y = _numpy_sse(layer, x)
    else:
        y = _numpy_se(layer, x)
    return np.moveaxis(y, -1, 1) if channels_first else y


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_layer_matches_tensorflow_and_the_equations(case_id, tf_references, record_difference):
    layer, x = references.layer_case(case_id)
    y = layer(x)
    expected_tf = np.load(tf_references("layers") / "layers.npz")[case_id]
    assert record_difference("layers vs TensorFlow", relative_error(y, expected_tf)) <= 2e-6
    assert record_difference("layers vs float64 equations",
                             relative_error(y, _numpy_reference(layer, x))) <= 2e-6


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_compiled_with_unknown_sizes_never_mixes_the_batch(data_format):
    """Compiled once (predict: jax.jit, tf.function; torch runs eagerly) and called
    with other batch and spatial sizes, each image's output depends on it alone."""
    shape = (None, None, 16) if data_format == "channels_last" else (16, None, None)
    inputs = keras.Input(shape)
    model = keras.Model(
        inputs, se_layers.SqueezeExcitation(ratio=4, data_format=data_format)(inputs)
    )
    rng = np.random.default_rng(4)
    for batch, spatial in [(4, (8, 8)), (3, (4, 4)), (4, (5, 3))]:
        dims = (batch, *spatial, 16) if data_format == "channels_last" else (batch, 16, *spatial)
        x = rng.normal(size=dims).astype("float32")
        changed = x.copy()
        changed[0] += 3.0
        a, b = model.predict(x, verbose=0), model.predict(changed, verbose=0)
        assert a.shape == dims
        np.testing.assert_array_equal(a[1:], b[1:])
        assert np.abs(a[0] - b[0]).max() > 1e-3
        expected = _numpy_reference(model.layers[-1], x)
        assert relative_error(a, expected) <= 2e-6


@pytest.mark.parametrize(
    "layer_cls,kwargs",
    [
        (se_layers.SqueezeExcitation, dict(ratio=4, gate="hard_sigmoid", squeeze="max",
                                           width_divisor=4, kernel_regularizer="l2")),
        (se_layers.SpatialSqueezeExcitation, dict(use_bias=False)),
        (se_layers.ChannelSpatialSqueezeExcitation, dict(ratio=2, combine="max")),
    ],
)
def test_keras_file_round_trip_in_safe_mode(tmp_path, layer_cls, kwargs):
    inputs = keras.Input((6, 6, 16))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    model = keras.Model(inputs, layer_cls(**kwargs, name="se")(x))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 16)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(loaded(x))
    )
    assert loaded.get_layer("se").get_config() == model.get_layer("se").get_config()


def test_mixed_float16_squeeze_does_not_overflow():
    """Each activation fits float16, their sum over 4096 positions does not."""
    keras.config.set_dtype_policy("mixed_float16")
    layer = se_layers.SqueezeExcitation(ratio=4)
    x16 = np.random.default_rng(2).uniform(3.0e4, 6.0e4, (2, 64, 64, 16)).astype("float16")
    y16 = keras.ops.convert_to_numpy(layer(x16))
    keras.config.set_dtype_policy("float32")
    assert y16.dtype == np.float16 and np.all(np.isfinite(y16))
    reference = se_layers.SqueezeExcitation(ratio=4)
    reference.build(x16.shape)
    reference.set_weights(layer.get_weights())
    y32 = keras.ops.convert_to_numpy(reference(x16.astype("float32")))
    np.testing.assert_allclose(y16.astype("float32"), y32, rtol=2e-3, atol=0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_weights_stay_float32_under_mixed_precision(policy):
    """A weight beyond float16's range (7e4) would be inf if read in float16."""
    keras.config.set_dtype_policy(policy)
    layer = se_layers.SqueezeExcitation(reduced_channels=2)
    dtype = policy.split("_")[1]
    x = keras.ops.cast(np.full((1, 4, 4, 8), 0.0625, "float32"), dtype)
    layer.build((1, 4, 4, 8))
    layer.reduce_kernel.assign(np.full((8, 2), 7.0e4, "float32"))
    layer.expand_kernel.assign(np.full((2, 8), 1.0e-5, "float32"))
    direct = keras.ops.convert_to_numpy(keras.ops.cast(layer(x), "float32"))
    inputs = keras.Input((4, 4, 8))
    in_model = keras.Model(inputs, layer(inputs))
    modelled = keras.ops.convert_to_numpy(keras.ops.cast(in_model(x), "float32"))
    keras.config.set_dtype_policy("float32")
    assert layer.reduce_kernel.dtype == "float32" and layer.compute_dtype == dtype
    gate = _sigmoid(2 * 3.5e4 * 1.0e-5)
    np.testing.assert_allclose(direct, 0.0625 * gate, rtol=1e-2)
    np.testing.assert_allclose(modelled, 0.0625 * gate, rtol=1e-2)
