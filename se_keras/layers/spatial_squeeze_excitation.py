"""Spatial Squeeze-and-Excitation layers of Roy et al. (arXiv 1803.02579): sSE and scSE.

They share `_SEBase` (options, float32 variables, config) with the channel
layer in `squeeze_excitation`.
"""

import keras
from keras import ops

from se_keras._validation import check_choice
from se_keras.layers.squeeze_excitation import SqueezeExcitation
from se_keras.layers.squeeze_excitation import _check_input_shape
from se_keras.layers.squeeze_excitation import _SEBase

_COMBINES = ("add", "max", "multiply")


@keras.saving.register_keras_serializable(package="se_keras")
class SpatialSqueezeExcitation(_SEBase):
    """Spatial squeeze and channel excitation, "sSE" (Roy et al., arXiv 1803.02579).

    Squeezes the channels at each position with a 1x1 projection to one
    number and scales every channel at that position by its sigmoid:
    `y[p, c] = x[p, c] * sigmoid(sum_k x[p, k] w_k + b)`. It complements the
    channel SE block, which ignores where things are.

    Args:
        use_bias, data_format, kernel_initializer, bias_initializer,
            kernel_regularizer, bias_regularizer: as in `SqueezeExcitation`.
        **kwargs: base layer arguments.

    Weights: `squeeze_kernel` (C, 1), `squeeze_bias` (1,).

    Example:
    >>> import numpy as np, se_keras
    >>> sse = se_keras.layers.SpatialSqueezeExcitation()
    >>> sse(np.ones((2, 8, 8, 32), "float32")).shape
    (2, 8, 8, 32)
    """

    def build(self, input_shape):
        channel_axis, _, channels = _check_input_shape(self, input_shape)
        self.channels = channels
        self._channel_axis = channel_axis
        self.squeeze_kernel, self.squeeze_bias = self._add_dense("squeeze", channels, 1)

    def spatial_gate(self, inputs):
        """The per-position gate, with a channel axis of size 1, float32.

        Example:
        >>> import numpy as np
        >>> sse = SpatialSqueezeExcitation()
        >>> x = np.ones((2, 4, 4, 8), "float32")
        >>> _ = sse(x)
        >>> tuple(sse.spatial_gate(x).shape)
        (2, 4, 4, 1)
        """
        x = ops.cast(inputs, "float32")
        if self.data_format == "channels_first":
            x = ops.moveaxis(x, 1, -1)
        q = ops.sigmoid(self._dense(x, self.squeeze_kernel, self.squeeze_bias))
        if self.data_format == "channels_first":
            q = ops.moveaxis(q, -1, 1)
        return q

    def call(self, inputs):
        return inputs * ops.cast(self.spatial_gate(inputs), inputs.dtype)


@keras.saving.register_keras_serializable(package="se_keras")
class ChannelSpatialSqueezeExcitation(_SEBase):
    """Concurrent spatial and channel SE, "scSE" (Roy et al., arXiv 1803.02579).

    Runs a channel SE block and a spatial SE block on the same input and
    combines their outputs: by addition (`combine="add"`, the MICCAI 2018
    paper), element-wise maximum ("max", best in the authors' later TMI
    version) or product ("multiply").

    Args:
        ratio, reduced_channels, width_divisor, activation: the channel SE
            block's arguments (see `SqueezeExcitation`).
        combine: "add" (default), "max" or "multiply".
        use_bias, data_format, kernel_initializer, bias_initializer,
            kernel_regularizer, bias_regularizer: as in `SqueezeExcitation`.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np, se_keras
    >>> scse = se_keras.layers.ChannelSpatialSqueezeExcitation(ratio=4)
    >>> scse(np.ones((2, 8, 8, 32), "float32")).shape
    (2, 8, 8, 32)
    """

    def __init__(
        self,
        ratio=16,
        reduced_channels=None,
        width_divisor=None,
        activation="relu",
        combine="add",
        use_bias=True,
        data_format=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        check_choice("combine", combine, _COMBINES)
        super().__init__(
            use_bias=use_bias,
            data_format=data_format,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            **kwargs,
        )
        shared = dict(
            use_bias=use_bias,
            data_format=self.data_format,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            dtype=self.dtype_policy,
        )
        self.channel_se = SqueezeExcitation(
            ratio=ratio,
            reduced_channels=reduced_channels,
            width_divisor=width_divisor,
            activation=activation,
            name="cse",
            **shared,
        )
        self.spatial_se = SpatialSqueezeExcitation(name="sse", **shared)
        self.combine = combine

    def build(self, input_shape):
        _check_input_shape(self, input_shape)
        self.channel_se.build(input_shape)
        self.spatial_se.build(input_shape)

    def call(self, inputs):
        cse = self.channel_se(inputs)
        sse = self.spatial_se(inputs)
        if self.combine == "add":
            return cse + sse
        if self.combine == "max":
            return ops.maximum(cse, sse)
        return cse * sse

    def get_config(self):
        config = super().get_config()
        se_config = self.channel_se.get_config()
        for key in ("ratio", "reduced_channels", "width_divisor", "activation"):
            config[key] = se_config[key]
        config["combine"] = self.combine
        return config
