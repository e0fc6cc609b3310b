"""An SE block that squeezes before a 1x1 projection: the inference form of SE bottlenecks.

In an SE bottleneck the SE block gates the output of the last 1x1
convolution (with its BatchNorm folded in for inference): `y = x @ W + b`
at every position. The spatial mean commutes with that affine map,
`mean(y) = mean(x) @ W + b`, and the SE block's first layer is affine too,
so the two compose into one small matrix (`act` is the SE activation):

    act(mean(y) @ W1 + b1) = act(mean(x) @ (W @ W1) + (b @ W1 + b1))

`ProjectedSqueezeExcitation` takes `[x, y]`, squeezes `x` (a quarter of
`y`'s channels in a ResNet bottleneck), runs the SE MLP with the composed
first layer `(W @ W1, b @ W1 + b1)` (C_in x C_r: smaller than the SE
block's own C x C_r) and scales `y`. It gives the output of
`SqueezeExcitation()(y)` to float rounding.

`se_keras.export.optimize_for_inference` puts it in place of the SE layers
where the rewrite holds (average squeeze only: a maximum does not commute
with the projection); it is an inference layer, not meant to be trained.
"""

import keras
from keras import ops

from se_keras.layers.squeeze_excitation import _check_input_shape
from se_keras.layers.squeeze_excitation import _gate
from se_keras.layers.squeeze_excitation import _global_average
from se_keras.layers.squeeze_excitation import _SEBase
from se_keras.layers.squeeze_excitation import reduced_width


@keras.saving.register_keras_serializable(package="se_keras")
class ProjectedSqueezeExcitation(_SEBase):
    """Channel SE whose squeeze is taken before a linear 1x1 projection.

    Called on `[source, target]`, where `target = source @ W + b` position by
    position (a 1x1, stride-1 convolution, its BatchNorm folded in), it
    returns `target * gate(W2 act(mean(source) @ W1' + b1') + b2)`. With
    `W1' = W @ W1` and `b1' = b @ W1 + b1` this equals
    `SqueezeExcitation` with weights `(W1, b1, W2, b2)` applied to
    `target` (see the module docstring). The squeeze and the excitation run
    in float32, as in `SqueezeExcitation`; only the average squeeze exists.

    Args:
        ratio, reduced_channels, width_divisor, activation, gate: the SE
            block's options, as in `SqueezeExcitation` (the width C_r is
            computed from the target's channels C).
        use_bias: whether the MLP has biases. Defaults to True (a
            projection with a bias needs one).
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer: as in `keras.layers.Dense`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Weights: `reduce_kernel` (C_in, C_r), `reduce_bias` (C_r,) (the
    projection composed with the SE block's first layer), `expand_kernel`
    (C_r, C), `expand_bias` (C,).

    Example:
    >>> import numpy as np
    >>> layer = ProjectedSqueezeExcitation(ratio=4)
    >>> x = np.ones((2, 8, 8, 16), "float32")
    >>> y = np.ones((2, 8, 8, 64), "float32")
    >>> layer([x, y]).shape
    (2, 8, 8, 64)
    """

    def __init__(
        self,
        ratio=16,
        reduced_channels=None,
        width_divisor=None,
        activation="relu",
        gate="sigmoid",
        use_bias=True,
        data_format=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        self._check_excitation(ratio, reduced_channels, width_divisor, gate)
        super().__init__(
            use_bias=use_bias,
            data_format=data_format,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            **kwargs,
        )
        # Two inputs: the base class's single-mask pass-through does not apply.
        self.supports_masking = False
        self._keep_excitation(ratio, reduced_channels, width_divisor, activation, gate)

    @staticmethod
    def _split_shapes(input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not all(
            isinstance(s, (list, tuple)) for s in input_shape
        ):
            raise ValueError(
                "ProjectedSqueezeExcitation is called on a list [source, target]. "
                f"Received: input_shape={input_shape}"
            )
        return tuple(input_shape[0]), tuple(input_shape[1])

    def build(self, input_shape):
        source_shape, target_shape = self._split_shapes(input_shape)
        _, _, channels_in = _check_input_shape(self, source_shape)
        channel_axis, spatial_axes, channels = _check_input_shape(self, target_shape)
        if len(source_shape) != len(target_shape):
            raise ValueError(
                "ProjectedSqueezeExcitation expects a source and a target of the same rank. "
                f"Received: input_shape={input_shape}"
            )
        width = self.reduced_channels or reduced_width(channels, self.ratio, self.width_divisor)
        if width > channels:
            raise ValueError(
                "`reduced_channels` must not exceed the number of target channels "
                f"({channels}). Received: reduced_channels={width}"
            )
        self.channels_in = channels_in
        self.channels = channels
        self.width = width
        self._channel_axis = channel_axis
        self._spatial_axes = spatial_axes
        self.reduce_kernel, self.reduce_bias = self._add_dense("reduce", channels_in, width)
        self.expand_kernel, self.expand_bias = self._add_dense("expand", width, channels)

    def excitation(self, source):
        """The per-channel gate of the target, shape (batch, C), float32, from `source`.

        Example:
        >>> import numpy as np
        >>> layer = ProjectedSqueezeExcitation(ratio=4)
        >>> x, y = np.ones((2, 4, 4, 8), "float32"), np.ones((2, 4, 4, 32), "float32")
        >>> _ = layer([x, y])
        >>> tuple(layer.excitation(x).shape)
        (2, 32)
        """
        x = ops.cast(source, "float32")
        z = _global_average(x, self.data_format == "channels_last")
        h = self.activation(self._dense(z, self.reduce_kernel, self.reduce_bias))
        return _gate(self._dense(h, self.expand_kernel, self.expand_bias), self.gate)

    def call(self, inputs):
        source, target = inputs
        s = ops.expand_dims(self.excitation(source), axis=self._spatial_axes)
        return target * ops.cast(s, target.dtype)

    def compute_output_shape(self, input_shape):
        return self._split_shapes(input_shape)[1]

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(self._excitation_config())
        return config
