"""Helpers shared by the tests of the builders without public checkpoints
(inception, mobilenet, shufflenet, vgg): SE layer lookup, the reference cost
of SE blocks, the argument errors they all raise, and the checks of
`include_top=False` and `input_tensor`. The `models` fixture is in
`conftest.py`.
"""

import keras
import numpy as np

from se_keras.layers import SqueezeExcitation
from se_keras.utils import count_flops
from se_keras.utils import count_params


def se_layers(model):
    """The model's `SqueezeExcitation` layers, in graph order."""
    return [layer for layer in model.layers if isinstance(layer, SqueezeExcitation)]


def se_cost(feature_maps, ratio=16):
    """(trainable parameters, multiply-adds) of SE blocks, from the paper's definition.

    An SE block on an H x W x C map (Hu et al., section 3 and figure 2):
    global average pooling, FC C -> C_r, ReLU, FC C_r -> C, sigmoid, scale,
    with C_r = max(1, C // r) and biases in both FCs, so 2 C C_r + C_r + C
    parameters. Multiply-adds counted as the paper and
    `se_keras.utils.count_flops` count them: H W C adds for the squeeze,
    2 C C_r for the two FCs and H W C multiplies for the scale.

    Args:
        feature_maps: (size, channels) of each SE block's square input.
        ratio: the reduction ratio r.

    Returns:
        A tuple of two ints.
    """
    params = macs = 0
    for size, channels in feature_maps:
        width = max(1, channels // ratio)
        params += 2 * channels * width + width + channels
        macs += 2 * size * size * channels + 2 * channels * width
    return params, macs


def assert_adds_exactly_the_se_blocks(se, plain, feature_maps, ratio=16):
    """Asserts that `se` is `plain` plus SE blocks on `feature_maps` and nothing else.

    Returns:
        ((plain params, se params), (plain multiply-adds, se multiply-adds)).
    """
    se_params, se_macs = se_cost(feature_maps, ratio)
    params = (count_params(plain), count_params(se))
    macs = (count_flops(plain), count_flops(se))
    assert params[1] - params[0] == se_params
    assert macs[1] - macs[0] == se_macs
    return params, macs


def bad_arguments(min_size=32):
    """(kwargs, message) rows of the errors that every builder here raises alike.

    keras.applications' checks (weights, classes, input shape, pooling), for
    models without published weights, and the SE options'.

    Args:
        min_size: the builder's smallest input size.
    """
    return [
        (dict(weights="imagenet"), r"no pretrained.*Received: weights='imagenet'"),
        (dict(weights="missing.weights.h5"), r"Received: weights='missing.weights.h5'"),
        (dict(classes=0), r"Received: classes=0"),
        (dict(input_shape=(16, 16, 3)),
         rf"at least {min_size}x{min_size}.*Received: input_shape=\(16, 16, 3\)"),
        (dict(input_shape=(64, 64)), r"three integers.*Received: input_shape=\(64, 64\)"),
        (dict(input_shape=(None, None, 3)), r"static.*Received: input_shape=\(None, None, 3\)"),
        (dict(include_top=False, pooling="median"), r"Received: pooling='median'"),
        (dict(se_ratio=0), r"Received: se_ratio=0"),
        (dict(se_gate="softmax"), r"Received: se_gate='softmax'"),
        (dict(se_squeeze="min"), r"Received: se_squeeze='min'"),
        (dict(se_position="middle"), r"Received: se_position='middle'"),
    ]


def assert_pooled(builder, pooling, features, **kwargs):
    """`include_top=False` with `pooling` gives (None, features); returns the model."""
    model = builder(include_top=False, pooling=pooling, **kwargs)
    assert model.output.shape == (None, features)
    return model


def assert_any_input_size(model, image_size, expected):
    """A model without a fixed input size runs on one zero image of `image_size` (H, W).

    Args:
        model: the model; its input must be (None, None, None, 3).
        image_size: (height, width) of the image.
        expected: the output's shape, or a list of shapes for several outputs.
    """
    assert model.input.shape == (None, None, None, 3)
    outputs = model(np.zeros((1, *image_size, 3), "float32"))
    if isinstance(expected, list):
        assert [tuple(o.shape) for o in outputs] == expected
    else:
        assert tuple(outputs.shape) == expected


def build_on_input_tensor(builder, *, size=64, classes=5, **kwargs):
    """`builder` on a `Rescaling` of a new `keras.Input`: that Input is the model's.

    Returns:
        The model, checked to take the Input and give (None, classes).
    """
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    model = builder(input_tensor=x, classes=classes, **kwargs)
    assert model.inputs[0] is inputs
    assert model.output.shape == (None, classes)
    return model


def assert_se_options(model, count, *, ratio, gate, squeeze):
    """`count` SE layers, all with these options; returns them."""
    se = se_layers(model)
    assert len(se) == count
    assert all(l.ratio == ratio and l.gate == gate and l.squeeze == squeeze for l in se)
    return se
