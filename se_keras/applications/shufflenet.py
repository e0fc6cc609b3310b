"""SE-ShuffleNet (v1) (Hu et al., arXiv 1709.01507; Zhang et al., arXiv 1707.01083).

ShuffleNet units (Zhang et al., figure 2): 1x1 group convolution, BN,
ReLU, channel shuffle, 3x3 depthwise convolution (stride 2 in each stage's
first unit), BN, 1x1 group convolution, BN; then the identity is added, or,
in strided units, a 3x3/2 average pool of the input is concatenated; a ReLU
follows. The bottleneck has a quarter of the unit's output channels, and
the first unit's first 1x1 convolution is not grouped (its input has only
24 channels). Stage widths follow the paper's table 1 for each number of
groups g, times the scale factor s ("ShuffleNet s x"), rounded to a
multiple of 4 g so that every group convolution splits evenly.

With g = 3 and s = 1 the plain network is Megvii's official ShuffleNetV1
1.0x (1,865,728 parameters, 1000 of them the classifier bias Megvii leaves
out; 137.5 M multiply-adds).

Where the SE block goes (`se_position`, the vocabulary of
`se_keras.applications._se_positions`):

| value | where | former name |
|---|---|---|
| "standard" (default) | on the residual branch before the addition or concatenation, as in SE-ResNet | "residual" |
| "post" | after the unit's final ReLU | "output" |

With r = 16 on all 16 units of ShuffleNet 1x (g = 3), "standard" gives
1.87M -> 2.48M parameters and 137.5 -> 141.3 M multiply-adds; the paper's
1.8M -> 2.4M are these counts truncated to one decimal, and its 140 -> 142
MFLOPs are within 2%.

The channel shuffle is a `ChannelShuffle` layer (no Lambda), so saved
models load with `safe_mode=True`.

Layer names (a stable contract), stages counted from 1 (the paper's
stages 2-4) and units from 1:

    stem_conv, stem_bn, stem_relu, stem_pool        3x3/2 conv, 3x3/2 max pool
    stage{s}_block{b}_conv1, _bn1, _relu1           1x1 group convolution
    stage{s}_block{b}_shuffle                       ChannelShuffle
    stage{s}_block{b}_conv2, _bn2                   3x3 depthwise
    stage{s}_block{b}_conv3, _bn3                   1x1 group convolution
    stage{s}_block{b}_se                            SqueezeExcitation
    stage{s}_block{b}_down_pool                     3x3/2 average pool (strided units)
    stage{s}_block{b}_add / _concat, _out           merge and ReLU
    avg_pool / max_pool, predictions                the head
"""

import keras
from keras import layers
from keras import ops

from se_keras._validation import check_choice
from se_keras._validation import check_positive
from se_keras.applications import _arguments
from se_keras.applications import _assembly
from se_keras.applications import _blocks
from se_keras.applications import _public_builders
from se_keras.applications import _se_positions
from se_keras.applications._public_builders import Option

# Output channels of stages 1-3 for each number of groups (Zhang et al.,
# table 1, ShuffleNet 1x).
STAGE_WIDTHS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_DEPTHS = (4, 8, 4)
STEM_WIDTH = 24


@keras.saving.register_keras_serializable(package="se_keras")
class ChannelShuffle(keras.layers.Layer):
    """ShuffleNet's channel shuffle (Zhang et al., arXiv 1707.01083).

    Reshapes the channel axis to (groups, C / groups), transposes it to
    (C / groups, groups) and flattens it back, so that the next group
    convolution sees channels from every group (the paper's definition;
    Megvii's code applies the inverse permutation, which matters only when
    converting its weights). Works with unknown batch and spatial sizes.

    Args:
        groups: the number of groups g; C must be a multiple of g.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:
    >>> import numpy as np
    >>> from se_keras.applications.shufflenet import ChannelShuffle
    >>> x = np.arange(6, dtype="float32").reshape(1, 1, 1, 6)
    >>> ChannelShuffle(2)(x).numpy().ravel().tolist()
    [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """

    def __init__(self, groups, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(
                f"`groups` must be a positive integer. Received: groups={groups!r}"
            )
        self.groups = groups
        self.data_format = data_format or keras.config.image_data_format()
        check_choice("data_format", self.data_format, ("channels_last", "channels_first"))

    def build(self, input_shape):
        """Checks that the channels are known and split into `groups` evenly."""
        axis = -1 if self.data_format == "channels_last" else 1
        channels = input_shape[axis]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"ChannelShuffle needs a known number of channels divisible by "
                f"groups={self.groups}. Received: input_shape={tuple(input_shape)}"
            )
        self.channels = channels

    def call(self, inputs):
        """Returns `inputs` with their channels shuffled; same shape and dtype."""
        g, n = self.groups, self.channels // self.groups
        x = inputs
        if self.data_format == "channels_first":
            x = ops.moveaxis(x, 1, -1)
        channels_last_shape = ops.shape(x)
        # Folding batch and positions into one axis keeps the reshape valid
        # for unknown spatial sizes.
        x = ops.reshape(x, (-1, g, n))
        x = ops.transpose(x, (0, 2, 1))
        x = ops.reshape(x, channels_last_shape)
        if self.data_format == "channels_first":
            x = ops.moveaxis(x, -1, 1)
        return x

    def compute_output_shape(self, input_shape):
        """The input shape: the shuffle only permutes channels."""
        return input_shape

    def get_config(self):
        """The base config plus `groups` and `data_format` (the constructor's arguments)."""
        config = super().get_config()
        config.update({"groups": self.groups, "data_format": self.data_format})
        return config


def stage_widths(groups, scale):
    """The output channels of the three stages of ShuffleNet `scale` x (g = groups).

    Args:
        groups: g, one of `STAGE_WIDTHS`.
        scale: the scale factor s.

    Returns:
        A tuple of three ints, multiples of 4 g.

    Example:
    >>> from se_keras.applications.shufflenet import stage_widths
    >>> stage_widths(3, 1.0), stage_widths(3, 0.5)
    ((240, 480, 960), (120, 240, 480))
    """
    step = 4 * groups
    return tuple(max(step, int(round(w * scale / step)) * step) for w in STAGE_WIDTHS[groups])


def _unit(
    x, *, out_channels, mid_channels, strides, groups, first_groups, se, se_position, eps, name
):
    data_format = keras.config.image_data_format()
    in_channels = x.shape[_blocks.channel_axis()]
    branch_channels = out_channels - in_channels if strides > 1 else out_channels
    r = _blocks.conv(x, mid_channels, 1, groups=first_groups, name=f"{name}_conv1")
    r = _blocks.batch_norm(r, eps, f"{name}_bn1")
    r = layers.ReLU(name=f"{name}_relu1")(r)
    if groups > 1:
        # Also after the ungrouped first convolution, as in Megvii's code.
        r = ChannelShuffle(groups, data_format=data_format, name=f"{name}_shuffle")(r)
    r = _blocks.depthwise_conv(r, 3, strides, name=f"{name}_conv2")
    r = _blocks.batch_norm(r, eps, f"{name}_bn2")
    r = _blocks.conv(r, branch_channels, 1, groups=groups, name=f"{name}_conv3")
    r = _blocks.batch_norm(r, eps, f"{name}_bn3")
    if se_position == _se_positions.STANDARD:
        r = se(r, f"{name}_se")
    if strides > 1:
        # PyTorch's AvgPool2d(3, 2, padding=1) counts the zero padding.
        shortcut = layers.ZeroPadding2D(1, data_format=data_format, name=f"{name}_down_pool_pad")(x)
        shortcut = layers.AveragePooling2D(
            3, strides=2, data_format=data_format, name=f"{name}_down_pool"
        )(shortcut)
        x = layers.Concatenate(axis=_blocks.channel_axis(), name=f"{name}_concat")([shortcut, r])
    else:
        x = layers.Add(name=f"{name}_add")([x, r])
    x = layers.ReLU(name=f"{name}_out")(x)
    if se_position == _se_positions.POST:
        x = se(x, f"{name}_se")
    return x


def build_shufflenet(
    *,
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="se_shufflenet",
    groups=3, scale=1.0,
    se=True, se_ratio=16, se_gate="sigmoid", se_squeeze="avg", se_position="standard",
    bn_epsilon=1e-5, preprocessing=None, include_preprocessing=False,
):
    """Builds an (SE-)ShuffleNet v1 functional model.

    Args:
        All: as documented on `SEShuffleNet` (`scale` multiplies the stage
            widths; `se_position`: "standard" or "post", see the module
            docstring).

    Returns:
        A `keras.Model`.

    Example:
    >>> from se_keras.applications.shufflenet import build_shufflenet
    >>> model = build_shufflenet(groups=8, scale=0.5, include_top=False)
    """
    input_shape = _arguments.validate_keras_arguments(
        weights=weights, include_top=include_top, classes=classes, input_shape=input_shape,
        pooling=pooling, classifier_activation=classifier_activation,
    )
    check_choice("groups", groups, tuple(STAGE_WIDTHS))
    check_positive("scale", scale)
    _arguments.validate_se_options(se_ratio, se_gate, se_squeeze)
    se_position = _se_positions.resolve("shufflenet", se_position)
    se_block = _blocks.se_block(se, ratio=se_ratio, gate=se_gate, squeeze=se_squeeze)

    img_input, x = _assembly.input_with_preprocessing(
        input_tensor, input_shape, weights=weights, default_size=224,
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )
    x = _blocks.conv(x, STEM_WIDTH, 3, 2, name="stem_conv")
    x = _blocks.batch_norm(x, bn_epsilon, "stem_bn")
    x = layers.ReLU(name="stem_relu")(x)
    x = _blocks.max_pool_3x3_s2(x, ceil_mode=False, name="stem_pool")
    for stage, (width, depth) in enumerate(zip(stage_widths(groups, scale), STAGE_DEPTHS), 1):
        for b in range(1, depth + 1):
            x = _unit(
                x,
                out_channels=width,
                mid_channels=width // 4,
                strides=2 if b == 1 else 1,
                groups=groups,
                # The first unit's input has too few channels to split.
                first_groups=1 if stage == 1 and b == 1 else groups,
                se=se_block,
                se_position=se_position,
                eps=bn_epsilon,
                name=f"stage{stage}_block{b}",
            )
    x = _blocks.head(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    return _assembly.finish_model(input_tensor, img_input, x, name=name, weights=weights)


SEShuffleNet = _public_builders.public_builder(
    "SEShuffleNet",
    arch="shufflenet_v1",
    build=build_shufflenet,
    summary="Instantiates the SE-ShuffleNet (v1) architecture.",
    description=(
        "On ShuffleNet (Zhang et al., arXiv 1707.01083). With the defaults (1x,\n"
        "g = 3, r = 16, SE on every unit's residual branch): 2,484,533 trainable\n"
        "parameters and 141.3 M multiply-adds at 224x224 (the paper: 2.4M, 142 M);\n"
        "`se=False`: 1,865,728 and 137.5 M, Megvii's official ShuffleNetV1 1.0x\n"
        "(the paper: 1.8M, 140 M). No pretrained weights are published."
    ),
    example="scale=0.5, input_shape=(128, 128, 3), classes=10",
    name="se_shufflenet",
    options=[
        Option("groups", 3, "g, the groups of the 1x1 convolutions: 1, 2, 3, 4 or 8."),
        Option("scale", 1.0, 'the scale factor s ("ShuffleNet s x").'),
        *_public_builders.se_options("shufflenet"),
        Option("bn_epsilon", 1e-5, "BatchNorm epsilon."),
        *_public_builders.PREPROCESSING_OPTIONS,
    ],
)

# Public name -> builder (gathered in `se_keras.applications.MODELS`).
BUILDERS = {"SEShuffleNet": SEShuffleNet}
