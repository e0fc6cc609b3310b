"""Channel Squeeze-and-Excitation (Hu et al.) and what the SE layer family shares.

The spatial variants of Roy et al. are in `spatial_squeeze_excitation`.
All the layers work on inputs of rank 3, 4 or 5 (sequences, images, video)
in either data format, with any batch size and unknown spatial size.

Mixed precision: the squeeze and the excitation MLP run in float32 whatever
the layer's compute dtype. Summing a float16 feature map over thousands of
positions overflows float16 long before any single activation does, and the
MLP is so small (2 * C * C_r multiply-adds per sample) that float32 costs
nothing measurable. Only the final rescaling, where the gate lies in a
bounded range, runs in the input's dtype.
"""

import keras
from keras import ops

from se_keras._validation import check_choice
from se_keras._validation import check_positive

GATES = ("sigmoid", "hard_sigmoid", "tanh", "relu")
SQUEEZES = ("avg", "max")


def make_divisible(value, divisor, min_value=None, round_limit=0.0):
    """Rounds `value` to the nearest multiple of `divisor` (timm's rule).

    timm's SE modules use this with `round_limit=0.0`, which gives 8 reduced
    channels for C=64, r=16 (seresnet18/34), where the paper's floor rule
    gives 4.

    Args:
        value: the width to round (may be fractional, e.g. C / r).
        divisor: the multiple to round to.
        min_value: the smallest width returned; defaults to `divisor`.
        round_limit: if rounding down lost more than `1 - round_limit` of the
            value, round up instead (timm's default elsewhere is 0.9).

    Returns:
        An int multiple of `divisor`.

    Example:
    >>> make_divisible(64 / 16, 8)
    8
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def reduced_width(channels, ratio=16, width_divisor=None):
    """The bottleneck width C_r of an SE block.

    Args:
        channels: C, the number of input channels.
        ratio: the reduction ratio r.
        width_divisor: None for the paper's rule `max(1, C // r)`; an int `d`
            for timm's `make_divisible(C / r, d)` rule.

    Returns:
        The reduced width as an int.

    Example:
    >>> reduced_width(64, 16), reduced_width(64, 16, width_divisor=8)
    (4, 8)
    """
    if width_divisor is None:
        return max(1, int(channels // ratio))
    return make_divisible(channels / ratio, width_divisor)


def _normalize_data_format(data_format):
    if data_format is None:
        return keras.config.image_data_format()
    check_choice("data_format", data_format, ("channels_last", "channels_first"))
    return data_format


def _check_input_shape(layer, input_shape):
    """Returns (channel_axis, spatial_axes, channels) or raises ValueError."""
    rank = len(input_shape)
    if rank not in (3, 4, 5):
        raise ValueError(
            f"{layer.__class__.__name__} expects an input of rank 3, 4 or 5 "
            "(batch, spatial..., channels). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    if layer.data_format == "channels_last":
        channel_axis, spatial_axes = rank - 1, tuple(range(1, rank - 1))
    else:
        channel_axis, spatial_axes = 1, tuple(range(2, rank))
    channels = input_shape[channel_axis]
    if channels is None:
        raise ValueError(
            f"{layer.__class__.__name__} needs the number of channels (axis "
            f"{channel_axis}) to be known when it is built. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    return channel_axis, spatial_axes, int(channels)


def _global_average(x, channels_last):
    # Equal to ops.mean over the spatial axes (to float rounding), but on
    # TensorFlow's CPU kernels the mean over the middle axes of a
    # channels_last tensor is a strided reduction, while a (1 x P) @ (P x C)
    # matmul reads the feature map once with the BLAS kernel (the README's
    # benchmark section has the figures). Works with unknown spatial sizes.
    #
    # The batch axis is kept as it is (never -1): a reshape that derived it
    # from a spatial size traced for another input would regroup the
    # positions of several images into one and pool across the batch.
    shape = ops.shape(x)
    batch = shape[0]
    channels = shape[-1] if channels_last else shape[1]
    if channels_last:
        flat = ops.reshape(x, (batch, -1, channels))
        positions = ops.shape(flat)[1]
        weights = ops.ones((1, positions), dtype=x.dtype) / ops.cast(positions, x.dtype)
        return ops.reshape(ops.matmul(weights, flat), (batch, channels))
    flat = ops.reshape(x, (batch, channels, -1))
    positions = ops.shape(flat)[2]
    weights = ops.ones((positions, 1), dtype=x.dtype) / ops.cast(positions, x.dtype)
    return ops.reshape(ops.matmul(flat, weights), (batch, channels))


def _gate(x, gate):
    if gate == "sigmoid":
        return ops.sigmoid(x)
    if gate == "hard_sigmoid":
        return ops.hard_sigmoid(x)
    if gate == "tanh":
        return ops.tanh(x)
    return ops.relu(x)


def _float32(variable):
    # The variables are created with autocast=False, so reading them inside
    # a float16 autocast scope (which Keras opens around a direct call of a
    # mixed-precision layer even when the layer itself has autocast=False)
    # keeps them float32; the cast is then a no-op.
    return ops.cast(variable.value, "float32")


class _SEBase(keras.layers.Layer):
    """Shared argument handling of the three SE layers."""

    def __init__(
        self,
        use_bias=True,
        data_format=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        # autocast=False: we cast by hand so the excitation stays float32.
        super().__init__(autocast=False, **kwargs)
        self.use_bias = bool(use_bias)
        self.data_format = _normalize_data_format(data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.supports_masking = True

    @staticmethod
    def _check_excitation(ratio, reduced_channels, width_divisor, gate):
        """Checks the bottleneck MLP's options (the channel layer and its projected form)."""
        check_positive("ratio", ratio)
        check_positive("reduced_channels", reduced_channels, True, True)
        check_positive("width_divisor", width_divisor, True, True)
        check_choice("gate", gate, GATES)

    def _keep_excitation(self, ratio, reduced_channels, width_divisor, activation, gate):
        self.ratio = ratio
        self.reduced_channels = reduced_channels
        self.width_divisor = width_divisor
        self.activation_name = activation
        self.activation = keras.activations.get(activation)
        self.gate = gate

    def _excitation_config(self):
        return {
            "ratio": self.ratio,
            "reduced_channels": self.reduced_channels,
            "width_divisor": self.width_divisor,
            "activation": self.activation_name
            if isinstance(self.activation_name, str)
            else keras.activations.serialize(self.activation),
            "gate": self.gate,
        }

    def _add_dense(self, name, units_in, units_out):
        # autocast=False: the excitation runs in float32 (module docstring);
        # an autocast variable would be rounded to float16 when read.
        kernel = self.add_weight(
            name=f"{name}_kernel",
            shape=(units_in, units_out),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            dtype="float32",
            autocast=False,
        )
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias",
                shape=(units_out,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                dtype="float32",
                autocast=False,
            )
        return kernel, bias

    def _dense(self, x, kernel, bias):
        y = ops.matmul(x, _float32(kernel))
        if bias is not None:
            y = y + _float32(bias)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_bias": self.use_bias,
                "data_format": self.data_format,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="se_keras")
class SqueezeExcitation(_SEBase):
    """Channel Squeeze-and-Excitation block (Hu et al., arXiv 1709.01507).

    Squeezes each channel to one number by global pooling over all spatial
    axes, passes the result through a bottleneck MLP (C -> C_r, activation,
    C_r -> C, gate) and scales each input channel by its gate:
    `y[..., c] = x[..., c] * gate(W2 act(W1 pool(x) + b1) + b2)[c]`.

    Args:
        ratio: reduction ratio r; the bottleneck has about C / r units.
            Ignored when `reduced_channels` is given. Defaults to 16.
        reduced_channels: explicit bottleneck width C_r (1 <= C_r <= C).
        width_divisor: None (default) for the paper's width `max(1, C // r)`;
            an int d rounds `C / r` to a multiple of d as timm does
            (`width_divisor=8` gives timm's seresnet18 widths).
        activation: activation between the two projections; any Keras
            activation name. Defaults to "relu".
        gate: "sigmoid" (default), "hard_sigmoid", "tanh" or "relu" (the
            excitation operators of the paper's ablation).
        squeeze: "avg" (default, global average pooling) or "max".
        use_bias: whether the projections have biases. Defaults to True.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer: as in `keras.layers.Dense`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Weights: `reduce_kernel` (C, C_r), `reduce_bias` (C_r,), `expand_kernel`
    (C_r, C), `expand_bias` (C,).

    Example:
    >>> import numpy as np, se_keras
    >>> se = se_keras.layers.SqueezeExcitation(ratio=4)
    >>> se(np.ones((2, 8, 8, 32), "float32")).shape
    (2, 8, 8, 32)
    """

    def __init__(
        self,
        ratio=16,
        reduced_channels=None,
        width_divisor=None,
        activation="relu",
        gate="sigmoid",
        squeeze="avg",
        use_bias=True,
        data_format=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        self._check_excitation(ratio, reduced_channels, width_divisor, gate)
        check_choice("squeeze", squeeze, SQUEEZES)
        super().__init__(
            use_bias=use_bias,
            data_format=data_format,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            **kwargs,
        )
        self._keep_excitation(ratio, reduced_channels, width_divisor, activation, gate)
        self.squeeze = squeeze

    def build(self, input_shape):
        channel_axis, spatial_axes, channels = _check_input_shape(self, input_shape)
        width = self.reduced_channels or reduced_width(
            channels, self.ratio, self.width_divisor
        )
        if width > channels:
            raise ValueError(
                "`reduced_channels` must not exceed the number of input "
                f"channels ({channels}). Received: reduced_channels={width}"
            )
        self.channels = channels
        self.width = width
        self._channel_axis = channel_axis
        self._spatial_axes = spatial_axes
        self.reduce_kernel, self.reduce_bias = self._add_dense("reduce", channels, width)
        self.expand_kernel, self.expand_bias = self._add_dense("expand", width, channels)

    def excitation(self, inputs):
        """The per-channel gate, shape (batch, C), float32.

        Exposed for inspecting excitations (the paper's section 7).

        Example:
        >>> import numpy as np
        >>> se = SqueezeExcitation(ratio=4)
        >>> x = np.ones((2, 4, 4, 8), "float32")
        >>> _ = se(x)
        >>> tuple(se.excitation(x).shape)
        (2, 8)
        """
        x = ops.cast(inputs, "float32")
        if self.squeeze == "avg":
            z = _global_average(x, self.data_format == "channels_last")
        else:
            z = ops.max(x, axis=self._spatial_axes)
        h = self.activation(self._dense(z, self.reduce_kernel, self.reduce_bias))
        return _gate(self._dense(h, self.expand_kernel, self.expand_bias), self.gate)

    def call(self, inputs):
        s = self.excitation(inputs)
        s = ops.expand_dims(s, axis=self._spatial_axes)
        return inputs * ops.cast(s, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({**self._excitation_config(), "squeeze": self.squeeze})
        return config
