"""SqueezeExcitation, SpatialSqueezeExcitation and scSE against the papers' equations."""

import keras
import numpy as np
import tensorflow as tf
import pytest

from se_keras import layers as se_layers

SHAPES = {3: (2, 7, 32), 4: (2, 5, 6, 32), 5: (2, 3, 4, 5, 32)}


def _to_channels_first(x):
    return np.moveaxis(x, -1, 1)


def numpy_se(x, w1, b1, w2, b2, gate="sigmoid", squeeze="avg", act="relu"):
    """The paper's block in NumPy, channels_last: x * gate(W2 act(W1 z + b1) + b2)."""
    spatial = tuple(range(1, x.ndim - 1))
    x64 = x.astype(np.float64)
    z = x64.mean(axis=spatial) if squeeze == "avg" else x64.max(axis=spatial)
    h = z @ w1 + b1
    h = np.maximum(h, 0.0) if act == "relu" else np.tanh(h)
    u = h @ w2 + b2
    s = {
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "hard_sigmoid": lambda v: np.clip(v + 3.0, 0.0, 6.0) / 6.0,
        "tanh": np.tanh,
        "relu": lambda v: np.maximum(v, 0.0),
    }[gate](u)
    return x64 * s.reshape((s.shape[0],) + (1,) * len(spatial) + (s.shape[1],))


def numpy_sse(x, w, b):
    q = 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ w + b)))
    return x * q


def _random_weights(rng, c, cr):
    return (
        rng.normal(0, 0.3, (c, cr)),
        rng.normal(0, 0.1, (cr,)),
        rng.normal(0, 0.3, (cr, c)),
        rng.normal(0, 0.1, (c,)),
    )


def _set_se_weights(layer, w1, b1, w2, b2):
    layer.set_weights([w.astype("float32") for w in (w1, b1, w2, b2)])


@pytest.mark.parametrize("rank", [3, 4, 5])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(
    "gate,squeeze", [("sigmoid", "avg"), ("hard_sigmoid", "avg"), ("tanh", "max"), ("relu", "avg")]
)
def test_se_matches_numpy(rank, data_format, gate, squeeze):
    rng = np.random.default_rng(rank)
    x = rng.normal(0, 2, SHAPES[rank]).astype("float32")
    w1, b1, w2, b2 = _random_weights(rng, 32, 2)
    layer = se_layers.SqueezeExcitation(
        ratio=16, gate=gate, squeeze=squeeze, data_format=data_format
    )
    x_in = x if data_format == "channels_last" else _to_channels_first(x)
    layer.build(x_in.shape)
    _set_se_weights(layer, w1, b1, w2, b2)
    y = np.asarray(layer(x_in))
    if data_format == "channels_first":
        y = np.moveaxis(y, 1, -1)
    expected = numpy_se(x, w1, b1, w2, b2, gate, squeeze)
    assert np.max(np.abs(y - expected)) <= 1e-6 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("rank", [3, 4, 5])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_se_matches_numpy(rank, data_format):
    rng = np.random.default_rng(10 + rank)
    x = rng.normal(0, 1, SHAPES[rank]).astype("float32")
    w, b = rng.normal(0, 0.3, (32, 1)), rng.normal(0, 0.1, (1,))
    layer = se_layers.SpatialSqueezeExcitation(data_format=data_format)
    x_in = x if data_format == "channels_last" else _to_channels_first(x)
    layer.build(x_in.shape)
    layer.set_weights([w.astype("float32"), b.astype("float32")])
    y = np.asarray(layer(x_in))
    if data_format == "channels_first":
        y = np.moveaxis(y, 1, -1)
    assert np.max(np.abs(y - numpy_sse(x, w, b))) <= 1e-6 * max(1.0, np.abs(x).max())


@pytest.mark.parametrize("combine", ["add", "max", "multiply"])
def test_scse_combines_both_branches(combine):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (2, 5, 6, 32)).astype("float32")
    w1, b1, w2, b2 = _random_weights(rng, 32, 8)
    w, b = rng.normal(0, 0.3, (32, 1)), rng.normal(0, 0.1, (1,))
    layer = se_layers.ChannelSpatialSqueezeExcitation(ratio=4, combine=combine)
    layer.build(x.shape)
    _set_se_weights(layer.channel_se, w1, b1, w2, b2)
    layer.spatial_se.set_weights([w.astype("float32"), b.astype("float32")])
    cse, sse = numpy_se(x, w1, b1, w2, b2), numpy_sse(x, w, b)
    expected = {"add": cse + sse, "max": np.maximum(cse, sse), "multiply": cse * sse}[combine]
    assert np.max(np.abs(np.asarray(layer(x)) - expected)) <= 1e-6 * np.abs(expected).max()


def test_gate_is_constant_over_space_and_in_range():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (3, 6, 7, 16)).astype("float32") + 0.5
    for gate, low, high in [("sigmoid", 0, 1), ("hard_sigmoid", 0, 1), ("tanh", -1, 1)]:
        layer = se_layers.SqueezeExcitation(ratio=4, gate=gate, bias_initializer="ones")
        y = np.asarray(layer(x))
        ratio = y / x
        # The same gate multiplies every spatial position of a channel.
        assert np.allclose(ratio, ratio[:, :1, :1, :], atol=1e-5)
        assert np.all(ratio >= low - 1e-6) and np.all(ratio <= high + 1e-6)
        gate_values = np.asarray(layer.excitation(x))
        assert gate_values.shape == (3, 16)
        assert np.allclose(ratio[:, 0, 0, :], gate_values, atol=1e-5)


def test_spatial_permutation_equivariance():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (2, 5, 6, 16)).astype("float32")
    perm = rng.permutation(30)
    x_perm = x.reshape(2, 30, 16)[:, perm].reshape(2, 5, 6, 16)
    for layer in (
        se_layers.SqueezeExcitation(ratio=4),
        se_layers.SpatialSqueezeExcitation(),
        se_layers.ChannelSpatialSqueezeExcitation(ratio=4),
    ):
        y = np.asarray(layer(x)).reshape(2, 30, 16)[:, perm].reshape(2, 5, 6, 16)
        assert np.allclose(np.asarray(layer(x_perm)), y, atol=1e-6)


@pytest.mark.parametrize(
    "channels,kwargs,width",
    [
        (64, {}, 4),
        (64, {"width_divisor": 8}, 8),
        (256, {"width_divisor": 8}, 16),
        (20, {"ratio": 16}, 1),
        (96, {"ratio": 4}, 24),
        (64, {"reduced_channels": 10}, 10),
    ],
)
def test_width_rules_and_parameter_count(channels, kwargs, width):
    layer = se_layers.SqueezeExcitation(**kwargs)
    layer.build((None, 4, 4, channels))
    assert layer.width == width
    c, cr = channels, width
    assert layer.count_params() == c * cr + cr + cr * c + c
    no_bias = se_layers.SqueezeExcitation(use_bias=False, **kwargs)
    no_bias.build((None, 4, 4, channels))
    assert no_bias.count_params() == 2 * c * cr


def test_timm_make_divisible_rule():
    # Values from timm.layers.make_divisible(v, 8, round_limit=0.0).
    assert [se_layers.make_divisible(c / 16, 8) for c in (64, 128, 256, 512, 1024, 2048)] == [
        8, 8, 16, 32, 64, 128
    ]
    assert se_layers.make_divisible(20, 8) == 24
    assert se_layers.make_divisible(11.9, 8, round_limit=0.9) == 16


def test_unknown_batch_and_spatial_size():
    inputs = keras.Input((None, None, 24))
    model = keras.Model(inputs, se_layers.SqueezeExcitation(ratio=4)(inputs))
    for shape in [(1, 3, 9, 24), (5, 8, 2, 24)]:
        assert model(np.ones(shape, "float32")).shape == shape


@pytest.mark.parametrize(
    "layer_cls,kwargs",
    [
        (se_layers.SqueezeExcitation, dict(ratio=4, gate="hard_sigmoid", squeeze="max",
                                           width_divisor=4, kernel_regularizer="l2")),
        (se_layers.SpatialSqueezeExcitation, dict(use_bias=False)),
        (se_layers.ChannelSpatialSqueezeExcitation, dict(ratio=2, combine="max")),
    ],
)
def test_save_load_safe_mode(tmp_path, layer_cls, kwargs):
    inputs = keras.Input((6, 6, 16))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    outputs = layer_cls(**kwargs, name="se")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 16)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    config = model.get_layer("se").get_config()
    # get_config returns exactly constructor arguments: it rebuilds the layer.
    rebuilt = layer_cls.from_config(config)
    assert rebuilt.get_config() == config
    for key, value in kwargs.items():
        if key != "kernel_regularizer":
            assert config[key] == value


def test_mixed_float16_near_float16_limit():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = se_layers.SqueezeExcitation(ratio=4)
        rng = np.random.default_rng(2)
        # Every activation is representable in float16, but summing 4096 of
        # them overflows float16 (max 65504).
        x32 = rng.uniform(3.0e4, 6.0e4, (2, 64, 64, 16)).astype("float32")
        x16 = x32.astype("float16")
        y16 = np.asarray(layer(x16))
        assert y16.dtype == np.float16
        assert np.all(np.isfinite(y16))
        weights = layer.get_weights()
    finally:
        keras.config.set_dtype_policy("float32")
    ref = se_layers.SqueezeExcitation(ratio=4)
    ref.build(x32.shape)
    ref.set_weights(weights)
    y32 = np.asarray(ref(x16.astype("float32")))
    np.testing.assert_allclose(y16.astype("float32"), y32, rtol=2e-3, atol=0)


def test_weights_stay_float32_on_a_direct_call_under_mixed_float16():
    """Keras opens a float16 autocast scope around a direct call of a mixed
    layer (outside a Model); the SE weights must still be read in float32.
    Weights beyond float16's range (7e4 > 65504) would become inf there."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = se_layers.SqueezeExcitation(reduced_channels=2)
        x16 = np.full((1, 4, 4, 8), 0.0625, "float16")
        layer.build(x16.shape)
        layer.reduce_kernel.assign(np.full((8, 2), 7.0e4, "float32"))  # inf in float16
        layer.expand_kernel.assign(np.full((2, 8), 1.0e-5, "float32"))
        y16 = np.asarray(layer(x16)).astype("float32")
        in_model = keras.Model(inputs := keras.Input((4, 4, 8)), layer(inputs))
        y_model = np.asarray(in_model(x16)).astype("float32")
    finally:
        keras.config.set_dtype_policy("float32")
    # float32 reference: h = relu(8 * 0.0625 * 7e4) = 3.5e4 per unit; gate = sigmoid(0.7).
    gate = 1.0 / (1.0 + np.exp(-(2 * 3.5e4 * 1.0e-5)))
    np.testing.assert_allclose(y16, 0.0625 * gate, rtol=2e-3)
    np.testing.assert_allclose(y_model, 0.0625 * gate, rtol=2e-3)
    assert gate < 0.7  # float16 weights (inf) would saturate the gate to 1


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_the_squeeze_never_mixes_batch_elements(data_format):
    """Traced once for one spatial size and called with another, a squeeze that
    reshaped with a traced size pooled across the batch."""
    layer = se_layers.SqueezeExcitation(ratio=4, data_format=data_format)
    shape = (None, None, None, 16) if data_format == "channels_last" else (None, 16, None, None)
    fn = tf.function(layer, input_signature=[tf.TensorSpec(shape, tf.float32)])
    rng = np.random.default_rng(4)
    for spatial in [(8, 8), (4, 4), (5, 3)]:
        dims = (4, *spatial, 16) if data_format == "channels_last" else (4, 16, *spatial)
        x = rng.normal(size=dims).astype("float32")
        changed = x.copy()
        changed[0] += 3.0
        a, b = np.asarray(fn(x)), np.asarray(fn(changed))
        np.testing.assert_array_equal(a[1:], b[1:])
        assert np.abs(a[0] - b[0]).max() > 1e-3


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(ratio=0), "ratio=0"),
        (dict(ratio=-2), "ratio=-2"),
        (dict(reduced_channels=0), "reduced_channels=0"),
        (dict(gate="softmax"), "gate='softmax'"),
        (dict(squeeze="median"), "squeeze='median'"),
        (dict(data_format="channels_middle"), "data_format='channels_middle'"),
        (dict(width_divisor=2.5), "width_divisor=2.5"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received: " + message.replace("(", r"\(")):
        se_layers.SqueezeExcitation(**kwargs)


def test_bad_combine():
    with pytest.raises(ValueError, match="Received: combine='concat'"):
        se_layers.ChannelSpatialSqueezeExcitation(combine="concat")


@pytest.mark.parametrize(
    "layer_cls", [se_layers.SqueezeExcitation, se_layers.SpatialSqueezeExcitation,
                  se_layers.ChannelSpatialSqueezeExcitation]
)
def test_bad_input_shapes(layer_cls):
    with pytest.raises(ValueError, match=r"rank 3, 4 or 5.*Received: input_shape=\(None, 8\)"):
        layer_cls().build((None, 8))
    with pytest.raises(ValueError, match=r"number of channels.*Received: input_shape=\(None, 4, 4, None\)"):
        layer_cls().build((None, 4, 4, None))


def test_reduced_channels_larger_than_channels():
    with pytest.raises(ValueError, match="Received: reduced_channels=40"):
        se_layers.SqueezeExcitation(reduced_channels=40).build((None, 4, 4, 32))
