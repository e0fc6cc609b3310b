"""Multiply-add counts (the paper's "GFLOPs") and trainable parameter counts.

Counted, as in the paper and in the tables of ResNet, ResNeXt and
MobileNet: the multiply-adds of convolutions and fully connected layers,
and of the SE blocks' squeeze (one add per input element), excitation (two
small matrix products) and scale (one multiply per element). BatchNorm,
activations, pooling outside SE blocks and additions are not counted: after
inference-time folding they cost nothing or next to nothing, and the
published figures leave them out.
"""

import math

import keras

from se_keras.layers import ChannelSpatialSqueezeExcitation
from se_keras.layers import SpatialSqueezeExcitation
from se_keras.layers import SqueezeExcitation


def _spatial_and_channels(shape, data_format):
    dims = shape[1:]
    if data_format == "channels_first":
        return math.prod(dims[1:]), dims[0]
    return math.prod(dims[:-1]), dims[-1]


def _layer_flops(layer):
    if isinstance(layer, keras.Model):
        return sum(_layer_flops(inner) for inner in layer.layers)
    if isinstance(layer, (keras.layers.InputLayer,)) or not layer.built:
        return 0
    out_shape = tuple(layer.output.shape)
    inputs = layer.input
    in_shape = tuple(inputs.shape) if hasattr(inputs, "shape") else None
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        spatial, out_channels = _spatial_and_channels(out_shape, layer.data_format)
        return spatial * math.prod(layer.kernel_size) * out_channels
    if isinstance(layer, keras.layers.SeparableConv2D):
        spatial, out_channels = _spatial_and_channels(out_shape, layer.data_format)
        _, in_channels = _spatial_and_channels(in_shape, layer.data_format)
        depthwise = spatial * math.prod(layer.kernel_size) * in_channels * layer.depth_multiplier
        return depthwise + spatial * in_channels * layer.depth_multiplier * out_channels
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        spatial, out_channels = _spatial_and_channels(out_shape, layer.data_format)
        kernel = layer.kernel.shape  # (*kernel_size, in_channels / groups, filters)
        return spatial * math.prod(kernel[:-1]) * out_channels
    if isinstance(layer, keras.layers.Dense):
        return math.prod(out_shape[1:-1]) * layer.kernel.shape[0] * layer.kernel.shape[1]
    if isinstance(layer, SqueezeExcitation):
        spatial, channels = _spatial_and_channels(in_shape, layer.data_format)
        return 2 * spatial * channels + 2 * channels * layer.width
    if isinstance(layer, SpatialSqueezeExcitation):
        spatial, channels = _spatial_and_channels(in_shape, layer.data_format)
        return 2 * spatial * channels
    if isinstance(layer, ChannelSpatialSqueezeExcitation):
        spatial, channels = _spatial_and_channels(in_shape, layer.data_format)
        # The channel branch as above, the spatial branch's 1x1 projection
        # and scale (2 * spatial * channels each).
        return 4 * spatial * channels + 2 * channels * layer.channel_se.width
    return 0


def flops_by_layer(model):
    """Multiply-adds per layer for one image, as {layer name: count}.

    Args:
        model: a built functional `keras.Model` with a static input size.

    Returns:
        A dict of the layers that count, in graph order.

    Example:
    >>> from se_keras.applications import SEResNet50
    >>> counts = flops_by_layer(SEResNet50(weights=None))
    """
    counts = {}
    for layer in model.layers:
        flops = _layer_flops(layer)
        if flops:
            counts[layer.name] = flops
    return counts


def count_flops(model):
    """Multiply-adds of one forward pass of one image (the paper's "FLOPs").

    Args:
        model: a built functional `keras.Model` whose input has a static
            spatial size (build it with `input_shape=(224, 224, 3)`).

    Returns:
        An int.

    Example:
    >>> from se_keras.applications import SEResNet50
    >>> round(count_flops(SEResNet50(weights=None, layout="legacy")) / 1e9, 2)
    3.87
    """
    for tensor in model.inputs:
        if None in tuple(tensor.shape)[1:]:
            raise ValueError(
                "count_flops needs a model with a static input size; build it "
                "with an `input_shape`. Received: model with input shape "
                f"{tuple(tensor.shape)}"
            )
    return sum(flops_by_layer(model).values())


def count_params(model):
    """Trainable parameters, as timm and the paper count them.

    Keras' `count_params()` also counts BatchNorm's moving mean and variance,
    which are statistics, not parameters.

    Example:
    >>> from se_keras.applications import SEResNet50
    >>> count_params(SEResNet50(weights=None, se=False))
    25557032
    """
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
