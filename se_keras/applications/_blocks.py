"""The layer blocks every family builds from: PyTorch-padded convolutions,
BatchNorm, the stem max pool, the SE block and the classification head.

Convolutions pad like PyTorch (`padding=kernel_size // 2`) so that
converted weights give the reference outputs; BatchNorm's momentum 0.9 is
PyTorch's 0.1.
"""

import keras
from keras import layers

from se_keras.layers import SqueezeExcitation


def channel_axis():
    return -1 if keras.config.image_data_format() == "channels_last" else 1


def _pad_like_pytorch(x, kernel_size, strides, name):
    """`(x, padding)` for a convolution `name` padded like PyTorch's `kernel_size // 2`.

    Strided convolutions get an explicit symmetric ZeroPadding2D
    (`name_pad`) and "valid" padding: TensorFlow's "same" pads more on the
    bottom/right for stride 2, which shifts every window and breaks
    converted weights. At stride 1 an odd kernel pads symmetrically under
    "same", so no extra layer is needed.
    """
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(
            kernel_size // 2, data_format=keras.config.image_data_format(),
            name=f"{name}_pad",
        )(x)
        return x, "valid"
    return x, "same"


def _padded_conv(layer_class, x, kernel_size, strides, name, **options):
    x, padding = _pad_like_pytorch(x, kernel_size, strides, name)
    return layer_class(
        kernel_size=kernel_size, strides=strides, padding=padding,
        data_format=keras.config.image_data_format(), name=name, **options,
    )(x)


def conv(x, filters, kernel_size, strides=1, groups=1, name=None, use_bias=False):
    """A convolution padded like PyTorch's `padding=kernel_size // 2`."""
    return _padded_conv(
        layers.Conv2D, x, kernel_size, strides, name,
        filters=filters, groups=groups, use_bias=use_bias,
    )


def depthwise_conv(x, kernel_size, strides=1, name=None, depth_multiplier=1):
    """A bias-free depthwise convolution padded like PyTorch, as `conv` is."""
    return _padded_conv(
        layers.DepthwiseConv2D, x, kernel_size, strides, name,
        depth_multiplier=depth_multiplier, use_bias=False,
    )


def batch_norm(x, epsilon, name, scale=True):
    # momentum 0.9 in Keras is PyTorch's momentum 0.1.
    return layers.BatchNormalization(
        axis=channel_axis(), epsilon=epsilon, momentum=0.9, scale=scale, name=name
    )(x)


def max_pool_3x3_s2(x, ceil_mode, name):
    """PyTorch's stem max pool, after a ReLU (so zero padding equals -inf padding).

    `ceil_mode=False`: `MaxPool2d(3, 2, padding=1)` (timm, torchvision).
    `ceil_mode=True`: `MaxPool2d(3, 2, ceil_mode=True)` (the Caffe-derived
    legacy models): no left padding, and a last window that may hang over the
    bottom/right edge. Padding one zero at the end and pooling "valid" gives
    exactly ceil((H - 3) / 2) + 1 outputs for every H.
    """
    data_format = keras.config.image_data_format()
    padding = ((0, 1), (0, 1)) if ceil_mode else 1
    x = layers.ZeroPadding2D(padding, data_format=data_format, name=f"{name}_pad")(x)
    return layers.MaxPooling2D(3, strides=2, data_format=data_format, name=name)(x)


def se_block(enabled=True, *, ratio, gate, squeeze, width_divisor=None):
    """`block(x, name)`: a `SqueezeExcitation` layer `name` on `x`, or `x` itself if not `enabled`.

    Every family's SE block: the paper's C // r width, or
    `make_divisible(C / r, width_divisor)` for timm's checkpoints.

    Example:
    >>> se = se_block(ratio=16, gate="sigmoid", squeeze="avg")
    >>> y = se(keras.Input((8, 8, 32)), "block1_se")
    """

    def block(x, name):
        if not enabled:
            return x
        return SqueezeExcitation(
            ratio=ratio,
            width_divisor=width_divisor,
            gate=gate,
            squeeze=squeeze,
            data_format=keras.config.image_data_format(),
            name=name,
        )(x)

    return block


def classifier(x, classes, activation):
    """The "predictions" Dense layer.

    Under a mixed precision policy it runs in float32, so that the softmax
    and the loss are computed in full precision.
    """
    policy = keras.config.dtype_policy().name
    return layers.Dense(
        classes,
        activation=activation,
        dtype="float32" if policy.startswith("mixed") else None,
        name="predictions",
    )(x)


def head(x, *, include_top, pooling, classes, classifier_activation, dropout_rate=0.0):
    """Global pooling and the classifier, keras.applications' layer names."""
    data_format = keras.config.image_data_format()
    if include_top:
        x = layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="dropout")(x)
        x = classifier(x, classes, classifier_activation)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    return x
