"""`optimize_for_inference`: the same function, without BatchNorm, with projected SE squeezes.

Every family is checked on logits at its default size and at an odd size,
with random weights and random BatchNorm statistics (moving mean and
variance, gamma, beta), so that a wrong fold changes the output: max
|optimized - original| <= 1e-5 x max |original|.
"""

import keras
import numpy as np
import pytest

from se_keras.applications import SEInceptionV3
from se_keras.applications import SEMobileNet
from se_keras.applications import SEResNet20
from se_keras.applications import SEResNet50
from se_keras.applications import SEResNeXt26
from se_keras.applications import SEShuffleNet
from se_keras.applications.cifar_resnet import build_cifar_resnet
from se_keras.applications.vgg import build_vgg
from se_keras.export import rewrites as rewrites_lib
from se_keras.export.optimize import optimize_for_inference
from se_keras.layers import SqueezeExcitation
from se_keras.layers.projected_squeeze_excitation import ProjectedSqueezeExcitation
from se_keras.preprocessing import get_preprocessing

# Largest |optimized - original| / max |original| allowed.
TOLERANCE = 1e-5


def randomize_batch_norms(model, seed=0):
    """Moving statistics, gamma and beta far from their initial values, so folding matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.2, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.05, 1.5, channels).astype("float32"))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0.0, 0.2, channels).astype("float32"))
    return model


def relative_error(model, optimized, size, seed=1):
    x = np.random.default_rng(seed).normal(size=(2, size, size, 3)).astype("float32")
    expected = np.asarray(model(x, training=False))
    actual = np.asarray(optimized(x, training=False))
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def count(model, cls):
    return sum(isinstance(layer, cls) for layer in model.layers)


# One builder per family, small variants: (builder(size, **kwargs), default
# size, odd size, projected SE layers, BatchNorm layers left).
FAMILIES = {
    # SE-ResNeXt: grouped 3x3 convs; every SE follows a 1x1 conv3.
    "resnet": (lambda size, **kw: SEResNeXt26(
        weights=None, depths=(1, 1, 1, 1), input_shape=(size, size, 3), classes=10, **kw),
        224, 65, 4, 0),
    # SE-ResNet-164's pre-activation bottleneck (depth 11: one block per
    # stage): conv3 has no BatchNorm, SE still follows the 1x1 conv. The
    # pre-activation and final BatchNorms read additions and stay.
    "cifar_resnet": (lambda size, **kw: build_cifar_resnet(
        block="bottleneck", depth=11, preact=True, input_shape=(size, size, 3), **kw),
        32, 33, 3, 3),
    # BatchNorm without scale (Inception-v3's); SE on concatenations.
    "inception": (lambda size, **kw: SEInceptionV3(
        input_shape=(size, size, 3), classes=10, **kw), 299, 97, 0, 0),
    # Depthwise convolutions with depth_multiplier 2 (the kernel layout).
    "mobilenet": (lambda size, **kw: SEMobileNet(
        alpha=0.25, depth_multiplier=2, input_shape=(size, size, 3), classes=10, **kw),
        224, 65, 0, 0),
    # Grouped 1x1 conv3 before SE: a block-diagonal projection.
    "shufflenet": (lambda size, **kw: SEShuffleNet(
        scale=0.5, input_shape=(size, size, 3), classes=10, **kw), 224, 65, 16, 0),
    # Convolutions with biases before BatchNorm.
    "vgg": (lambda size, **kw: build_vgg(
        blocks=((1, 16), (1, 32), (2, 32), (1, 64), (1, 64)), input_shape=(size, size, 3),
        classes=10, **kw), 224, 65, 0, 0),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_computes_the_same_logits(family):
    build, default_size, odd_size, projected, batch_norms_left = FAMILIES[family]
    for size in (default_size, odd_size):
        model = randomize_batch_norms(build(size, classifier_activation=None))
        optimized, report = optimize_for_inference(model, return_report=True)

        error = relative_error(model, optimized, size)
        assert error <= TOLERANCE, (family, size, error)
        assert count(optimized, keras.layers.BatchNormalization) == batch_norms_left
        assert len(report.folded) == (
            count(model, keras.layers.BatchNormalization) - batch_norms_left)
        assert count(optimized, ProjectedSqueezeExcitation) == projected == report.num_projected_se
        assert count(optimized, SqueezeExcitation) == count(model, SqueezeExcitation) - projected
        assert get_preprocessing(optimized) == get_preprocessing(model)
        assert optimized.name == model.name
        assert not optimized.trainable_weights
        assert all(not layer.trainable for layer in optimized.layers)
        # Folded convolutions keep their names; nothing else is renamed.
        assert {layer.name for layer in optimized.layers} == {
            layer.name for layer in model.layers
        } - {bn for bn, _ in report.folded}


def test_features_without_top_and_any_spatial_size():
    model = randomize_batch_norms(SEResNet50(
        weights=None, depths=(1, 1, 1, 1), include_top=False, pooling="avg",
        input_shape=(None, None, 3)))
    optimized = optimize_for_inference(model)
    for size in (64, 97):
        assert relative_error(model, optimized, size) <= TOLERANCE
    assert optimized.output.shape == model.output.shape == (None, 2048)


def test_keras_file_round_trip_with_safe_mode(tmp_path):
    model = randomize_batch_norms(SEResNet50(
        weights=None, depths=(1, 1, 1, 1), input_shape=(64, 64, 3), classes=10,
        classifier_activation=None))
    # A model loaded from a .keras file is optimized like a built one.
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    optimized = optimize_for_inference(loaded)
    optimized.save(tmp_path / "optimized.keras")
    reloaded = keras.models.load_model(tmp_path / "optimized.keras", safe_mode=True)

    assert relative_error(model, reloaded, 64) <= TOLERANCE
    assert count(reloaded, ProjectedSqueezeExcitation) == 4
    assert count(reloaded, keras.layers.BatchNormalization) == 0
    assert get_preprocessing(reloaded) == get_preprocessing(model)
    assert not reloaded.trainable_weights
    # No duplicated kernels: the projection is composed with the SE MLP.
    assert reloaded.count_params() < model.count_params()


def test_max_squeeze_is_left_as_it_is():
    model = randomize_batch_norms(SEResNet50(
        weights=None, depths=(1, 1, 1, 1), input_shape=(64, 64, 3), classes=10,
        classifier_activation=None, se_squeeze="max"))
    optimized, report = optimize_for_inference(model, return_report=True)

    assert relative_error(model, optimized, 64) <= TOLERANCE
    assert count(optimized, ProjectedSqueezeExcitation) == 0
    assert count(optimized, SqueezeExcitation) == 4
    assert set(report.kept_se.values()) == {"max squeeze (does not commute with the projection)"}
    assert "kept SE: 4 (max squeeze" in report.summary()


def test_the_exactness_check_catches_a_wrong_fold(monkeypatch):
    # The check of every family above must fail for a fold that forgets
    # BatchNorm's epsilon (1e-3 here, Inception's, against variances of
    # 0.05 to 1.5).
    model = randomize_batch_norms(SEResNet20(classifier_activation=None, bn_epsilon=1e-3))
    assert relative_error(model, optimize_for_inference(model), 32) <= TOLERANCE

    right = rewrites_lib._bn_affine

    def without_epsilon(bn):
        epsilon, bn.epsilon = bn.epsilon, 0.0
        try:
            return right(bn)
        finally:
            bn.epsilon = epsilon

    monkeypatch.setattr(rewrites_lib, "_bn_affine", without_epsilon)
    assert relative_error(model, optimize_for_inference(model), 32) > 100 * TOLERANCE


def test_projected_layer_equals_squeeze_excitation_in_both_data_formats():
    rng = np.random.default_rng(0)
    for data_format, shape in (("channels_last", (2, 5, 7, 8)), ("channels_first", (2, 8, 5, 7))):
        source = rng.normal(size=shape).astype("float32")
        axis = -1 if data_format == "channels_last" else 1
        w = rng.normal(size=(8, 32))
        b = rng.normal(size=32)
        target = (np.moveaxis(np.moveaxis(source, axis, -1) @ w + b, -1, axis)).astype("float32")
        se = SqueezeExcitation(ratio=4, gate="hard_sigmoid", data_format=data_format)
        expected = np.asarray(se(target))
        reduce_kernel, reduce_bias, expand_kernel, expand_bias = se.get_weights()
        projected = ProjectedSqueezeExcitation(
            ratio=4, gate="hard_sigmoid", data_format=data_format)
        projected([source, target])
        projected.set_weights([w @ reduce_kernel, b @ reduce_kernel + reduce_bias,
                               expand_kernel, expand_bias])
        np.testing.assert_allclose(projected([source, target]), expected, rtol=1e-5, atol=1e-5)
        assert ProjectedSqueezeExcitation.from_config(projected.get_config()).gate == "hard_sigmoid"


def test_channels_first_models_fold_the_channel_axis():
    # TensorFlow has no channels_first convolutions on CPU, so the graph is
    # checked without running it: the channels_first copy gets the same
    # rewrites and the same folded weights as its channels_last twin.
    def build(data_format):
        axis = -1 if data_format == "channels_last" else 1
        shape = (16, 16, 3) if data_format == "channels_last" else (3, 16, 16)
        inputs = keras.Input(shape)
        x = keras.layers.Conv2D(8, 3, use_bias=False, data_format=data_format, name="conv1")(inputs)
        x = keras.layers.BatchNormalization(axis=axis, name="bn1")(x)
        x = keras.layers.ReLU(name="relu1")(x)
        x = keras.layers.Conv2D(32, 1, use_bias=False, data_format=data_format, name="conv2")(x)
        x = keras.layers.BatchNormalization(axis=axis, name="bn2")(x)
        x = SqueezeExcitation(ratio=4, data_format=data_format, name="se")(x)
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="pool")(x)
        return randomize_batch_norms(keras.Model(inputs, x))

    last, first = build("channels_last"), build("channels_first")
    first.set_weights(last.get_weights())
    for name in ("bn1", "bn2"):
        first.get_layer(name).set_weights(last.get_layer(name).get_weights())
    optimized_last = optimize_for_inference(last)
    optimized_first, report = optimize_for_inference(first, return_report=True)

    assert [bn for bn, _ in report.folded] == ["bn1", "bn2"]
    assert report.projected_se == ["se"]
    for a, b in zip(optimized_first.weights, optimized_last.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert optimized_first.get_layer("se").data_format == "channels_first"


def test_a_plain_keras_sequential_model_is_optimized():
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(name="relu"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=3, name="dw"),
        keras.layers.BatchNormalization(center=False, scale=False, name="dw_bn"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(6, name="dense"),
        keras.layers.BatchNormalization(name="dense_bn"),
        keras.layers.Dropout(0.5, name="dropout"),
    ], name="plain")
    randomize_batch_norms(model)
    optimized, report = optimize_for_inference(model, return_report=True)

    assert relative_error(model, optimized, 12) <= TOLERANCE
    assert [layer.name for layer in optimized.layers[1:]] == [
        "conv", "relu", "dw", "flatten", "dense", "dropout"]
    assert report.num_folded == 3 and report.num_projected_se == 0
    # Nested in another model (as a fine-tuning head might be), it is optimized too.
    inputs = keras.Input((12, 12, 3))
    outer = keras.Model(inputs, keras.layers.Softmax(name="softmax")(model(inputs)))
    optimized_outer, outer_report = optimize_for_inference(outer, return_report=True)
    assert outer_report.num_folded == 3
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(optimized_outer(x), outer(x), rtol=1e-5, atol=1e-6)


def test_a_residual_scale_after_a_projected_se_is_folded():
    # Inception-ResNet-v2's residual branch: 1x1 conv with bias, SE, then x 0.17.
    inputs = keras.Input((9, 9, 16))
    r = keras.layers.Conv2D(64, 1, name="block_conv")(inputs)
    r = SqueezeExcitation(ratio=8, name="block_se")(r)
    r = keras.layers.Rescaling(0.17, name="block_scale")(r)
    shortcut = keras.layers.Conv2D(64, 1, name="shortcut")(inputs)
    model = keras.Model(inputs, keras.layers.Add(name="block_add")([shortcut, r]))
    optimized, report = optimize_for_inference(model, return_report=True)

    x = np.random.default_rng(0).normal(size=(2, 9, 9, 16)).astype("float32")
    np.testing.assert_allclose(optimized(x), model(x), rtol=1e-5, atol=1e-5)
    assert report.folded_rescaling == [("block_scale", "block_conv")]
    assert report.projected_se == ["block_se"]


def test_models_that_cannot_be_optimized_say_why():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="subclassed model"):
        optimize_for_inference(Subclassed())
    with pytest.raises(ValueError, match="build the Sequential model"):
        optimize_for_inference(keras.Sequential([keras.layers.Dense(2)]))
