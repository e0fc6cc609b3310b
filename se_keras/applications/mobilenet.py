"""SE-MobileNet (v1) and SE-MobileNetV2 (Hu et al., arXiv 1709.01507).

One generic builder, `build_mobilenet`, and thin public variants. The plain
networks (`se=False`) have the layouts and trainable parameter counts of
`keras.applications.MobileNet` (Howard et al. 2017) and `MobileNetV2`
(Sandler et al. 2018): ReLU6, convolutions without biases, width multiplier
`alpha` (v1: `int(C * alpha)`; v2: rounded to a multiple of 8). Strided
convolutions pad symmetrically as in PyTorch (`_blocks.conv`), where keras
pads the bottom/right only; the weights' shapes are the same.

Where the SE block goes (`se_position`, the vocabulary of
`se_keras.applications._se_positions`):

| value | where | former name |
|---|---|---|
| "standard" (default) | on each block's output, before the residual addition in v2, like the paper's standard SE-ResNet integration | "output" |
| "inner" | after the depthwise convolution's activation, in the expanded space in v2 (MnasNet's and MobileNetV3's placement) | "depthwise" |

With r = 16 on all 13 depthwise-separable blocks of MobileNet 1.0,
"standard" reproduces the paper's SE-MobileNet: 4.23M -> 4.72M parameters
and 568.7 -> 574.6 M multiply-adds (the paper: 4.2M -> 4.7M, 569 -> 572).
"inner" gates each v1 block's (narrower) input: 4.59M parameters, not the
paper's.

Layer names (a stable contract), blocks counted from 1 (keras' MobileNetV2
counts from 0). Each unit `P` is `P_conv`, `P_bn`, `P_relu` (ReLU6), plus
`P_conv_pad` before a strided convolution:

    stem                        3x3/2 convolution
    block{b}_dw                 depthwise 3x3
    block{b}_pw                 v1 pointwise 1x1
    block{b}_expand             v2 expansion 1x1 (not in block1)
    block{b}_project            v2 linear projection (no _relu)
    block{b}_se, block{b}_add   SE block, v2 residual sum
    top                         v2's final 1x1 convolution
    avg_pool / max_pool, dropout, predictions   the head
"""

from keras import layers

from se_keras._validation import check_choice
from se_keras._validation import check_positive
from se_keras.applications import _arguments
from se_keras.applications import _assembly
from se_keras.applications import _blocks
from se_keras.applications import _public_builders
from se_keras.applications import _se_positions
from se_keras.applications._public_builders import Option
from se_keras.layers import make_divisible

# v1: (pointwise filters, stride) of the 13 depthwise-separable blocks.
MOBILENET_V1_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)

# v2: (expansion t, output channels c, repeats n, first stride s), the
# paper's table 2.
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _divisible(value):
    # keras' and the paper's rounding: nearest multiple of 8, never below
    # 90% of the value.
    return make_divisible(value, 8, round_limit=0.9)


def _conv_bn(x, filters, prefix, eps, strides=1, kernel=1, relu=True):
    x = _blocks.conv(x, filters, kernel, strides, name=f"{prefix}_conv")
    x = _blocks.batch_norm(x, eps, f"{prefix}_bn")
    if relu:
        x = layers.ReLU(6.0, name=f"{prefix}_relu")(x)
    return x


def _depthwise_bn(x, prefix, eps, strides=1, depth_multiplier=1):
    x = _blocks.depthwise_conv(x, 3, strides, f"{prefix}_conv", depth_multiplier)
    x = _blocks.batch_norm(x, eps, f"{prefix}_bn")
    return layers.ReLU(6.0, name=f"{prefix}_relu")(x)


def _mobilenet_v1(x, *, alpha, depth_multiplier, se, se_position, eps):
    x = _conv_bn(x, int(32 * alpha), "stem", eps, strides=2, kernel=3)
    for b, (filters, strides) in enumerate(MOBILENET_V1_BLOCKS, 1):
        x = _depthwise_bn(x, f"block{b}_dw", eps, strides, depth_multiplier)
        if se_position == _se_positions.INNER:
            x = se(x, f"block{b}_se")
        x = _conv_bn(x, int(filters * alpha), f"block{b}_pw", eps)
        if se_position == _se_positions.STANDARD:
            x = se(x, f"block{b}_se")
    return x


def _mobilenet_v2(x, *, alpha, depth_multiplier, se, se_position, eps):
    del depth_multiplier  # v1 only (rejected earlier for v2)
    axis = _blocks.channel_axis()
    x = _conv_bn(x, _divisible(32 * alpha), "stem", eps, strides=2, kernel=3)
    b = 0
    for expansion, channels, repeats, first_stride in MOBILENET_V2_STAGES:
        out_channels = _divisible(int(channels * alpha))
        for i in range(repeats):
            b += 1
            strides = first_stride if i == 0 else 1
            in_channels = x.shape[axis]
            r = x
            if expansion != 1:
                r = _conv_bn(r, expansion * in_channels, f"block{b}_expand", eps)
            r = _depthwise_bn(r, f"block{b}_dw", eps, strides)
            if se_position == _se_positions.INNER:
                r = se(r, f"block{b}_se")
            r = _conv_bn(r, out_channels, f"block{b}_project", eps, relu=False)
            if se_position == _se_positions.STANDARD:
                r = se(r, f"block{b}_se")
            if strides == 1 and in_channels == out_channels:
                r = layers.Add(name=f"block{b}_add")([x, r])
            x = r
    # MobileNetV2 keeps 1280 features below alpha 1 (Sandler et al. 2018).
    last = _divisible(1280 * alpha) if alpha > 1.0 else 1280
    return _conv_bn(x, last, "top", eps)


_BODIES = {1: _mobilenet_v1, 2: _mobilenet_v2}


def build_mobilenet(
    *, version,
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="se_mobilenet",
    alpha=1.0, depth_multiplier=1, dropout_rate=0.0,
    se=True, se_ratio=16, se_gate="sigmoid", se_squeeze="avg", se_position="standard",
    bn_epsilon=1e-3, preprocessing=None, include_preprocessing=False,
):
    """Builds an (SE-)MobileNet v1 or v2 functional model.

    Args:
        version: 1 or 2.
        depth_multiplier: v1 only: depthwise channel multiplier.
        The others: as documented on `SEMobileNet` (`se_position`:
            "standard" or "inner", see the module docstring).

    Returns:
        A `keras.Model`.

    Example:
    >>> from se_keras.applications.mobilenet import build_mobilenet
    >>> model = build_mobilenet(version=2, alpha=0.5, include_top=False)
    """
    input_shape = _arguments.validate_keras_arguments(
        weights=weights, include_top=include_top, classes=classes, input_shape=input_shape,
        pooling=pooling, classifier_activation=classifier_activation,
    )
    check_choice("version", version, tuple(_BODIES))
    check_positive("alpha", alpha)
    if (
        isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int)
        or depth_multiplier < 1 or (version == 2 and depth_multiplier != 1)
    ):
        raise ValueError(
            "`depth_multiplier` must be a positive integer (1 for MobileNetV2). "
            f"Received: depth_multiplier={depth_multiplier!r}"
        )
    _arguments.validate_se_options(se_ratio, se_gate, se_squeeze)
    se_position = _se_positions.resolve("mobilenet", se_position)

    img_input, x = _assembly.input_with_preprocessing(
        input_tensor, input_shape, weights=weights, default_size=224,
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )
    x = _BODIES[version](
        x, alpha=alpha, depth_multiplier=depth_multiplier,
        se=_blocks.se_block(se, ratio=se_ratio, gate=se_gate, squeeze=se_squeeze),
        se_position=se_position, eps=bn_epsilon,
    )
    x = _blocks.head(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
    )
    return _assembly.finish_model(input_tensor, img_input, x, name=name, weights=weights)


def _family_options(*options):
    return [
        *options,
        *_public_builders.se_options("mobilenet"),
        Option("bn_epsilon", 1e-3, "BatchNorm epsilon."),
        *_public_builders.PREPROCESSING_OPTIONS,
    ]


SEMobileNet = _public_builders.public_builder(
    "SEMobileNet",
    arch="mobilenet_v1",
    build=lambda **kwargs: build_mobilenet(version=1, **kwargs),
    summary="Instantiates the SE-MobileNet (v1) architecture.",
    description=(
        "On MobileNet (Howard et al. 2017). With the defaults, an SE block\n"
        "(r = 16) on the output of each of the 13 depthwise-separable blocks:\n"
        "4,718,044 trainable parameters and 574.6 M multiply-adds at 224x224 (the\n"
        "paper: 4.7M, 572 M); `se=False` gives keras' `MobileNet` (4,231,976,\n"
        "568.7 M). No pretrained weights are published."
    ),
    example="alpha=0.5, input_shape=(128, 128, 3), classes=10",
    name="se_mobilenet",
    options=_family_options(
        Option("alpha", 1.0, "width multiplier (every layer has `int(C * alpha)` channels)."),
        Option("depth_multiplier", 1, "depthwise channel multiplier."),
        Option("dropout_rate", 1e-3, "dropout before the classifier (keras' 1e-3)."),
    ),
)

SEMobileNetV2 = _public_builders.public_builder(
    "SEMobileNetV2",
    arch="mobilenet_v2",
    build=lambda **kwargs: build_mobilenet(version=2, **kwargs),
    summary="Instantiates the SE-MobileNetV2 architecture.",
    description=(
        "On MobileNetV2 (Sandler et al. 2018); the paper has no SE-MobileNetV2\n"
        "figures. An SE block on each of the 17 inverted residual blocks, on the\n"
        "projection's output before the addition by default; `se=False` gives\n"
        "keras' `MobileNetV2` (3,504,872 trainable parameters). No pretrained\n"
        "weights are published."
    ),
    example='alpha=0.35, include_top=False, pooling="avg"',
    name="se_mobilenet_v2",
    options=_family_options(
        Option("alpha", 1.0, "width multiplier (channels rounded to multiples of 8)."),
        Option("dropout_rate", 0.0, "dropout before the classifier."),
    ),
)

# Public name -> builder (gathered in `se_keras.applications.MODELS`).
BUILDERS = {f.__name__: f for f in (SEMobileNet, SEMobileNetV2)}
