"""The SE-ResNet / SE-ResNeXt graph: `build_resnet` and its blocks.

`se_keras.applications.resnet` holds the architecture and layout tables
and the public builders that fill these arguments.

Layer names (a stable contract; the weight converter relies on them), for
stage s and block b counted from 1:

    preprocessing                              the `ImagePreprocessing` record
    stem_conv{i}, stem_bn{i}, stem_relu{i}     i = 1 (7x7 stem) or 1..3 (deep)
    stem_pool                                  3x3/2 max pool
    stage{s}_block{b}_conv{i}, _bn{i}, _relu{i}   the residual branch
    stage{s}_block{b}_se                       the SqueezeExcitation layer
    stage{s}_block{b}_down_pool, _down_conv, _down_bn   projection shortcut
    stage{s}_block{b}_add, stage{s}_block{b}_out        sum and final ReLU
    avg_pool / max_pool, dropout, predictions  the head
"""

import keras
from keras import layers

from se_keras._validation import check_choice
from se_keras.applications import _arguments
from se_keras.applications import _assembly
from se_keras.applications import _blocks
from se_keras.applications import _se_positions

BLOCKS = ("basic", "bottleneck")
STEMS = ("7x7", "deep", "deep_tiered")
DOWNSAMPLES = ("conv1x1", "conv3x3", "avg")
STRIDE_PLACES = ("1x1", "3x3")
SE_POSITIONS = _se_positions.FAMILIES["resnet"].positions


def _shortcut(x, filters, strides, downsample, epsilon, name):
    data_format = keras.config.image_data_format()
    if downsample == "avg":
        if strides > 1:
            # PyTorch AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False):
            # TF's "same" average pooling pads only at the end and leaves the
            # padding out of the count, which is the same thing.
            x = layers.AveragePooling2D(
                2, strides, padding="same", data_format=data_format,
                name=f"{name}_pool",
            )(x)
        x = _blocks.conv(x, filters, 1, name=f"{name}_conv")
    else:
        kernel = 3 if downsample == "conv3x3" and strides > 1 else 1
        x = _blocks.conv(x, filters, kernel, strides=strides, name=f"{name}_conv")
    return _blocks.batch_norm(x, epsilon, f"{name}_bn")


def _residual_unit(x, *, block, planes, strides, needs_projection, opts, use_se, name):
    """One residual block; `opts` holds the network-wide options."""
    eps = opts["bn_epsilon"]
    if block == "basic":
        out_channels = planes
    else:
        out_channels = planes * 4

    position = opts["se_position"] if use_se else None
    se = opts["se_block"]
    shortcut = x
    if needs_projection:
        shortcut = _shortcut(
            x, out_channels, strides, opts["downsample"], eps, f"{name}_down"
        )
    r = se(x, f"{name}_se") if position == _se_positions.PRE else x

    if block == "basic":
        r = _blocks.conv(r, planes // opts["reduce_first"], 3, strides, name=f"{name}_conv1")
        r = _blocks.batch_norm(r, eps, f"{name}_bn1")
        r = layers.ReLU(name=f"{name}_relu1")(r)
        r = _blocks.conv(r, out_channels, 3, name=f"{name}_conv2")
        r = _blocks.batch_norm(r, eps, f"{name}_bn2")
        if opts["branch_relu"]:
            r = layers.ReLU(name=f"{name}_relu2")(r)
    else:
        width = int(planes * (opts["base_width"] / 64)) * opts["cardinality"]
        stride_1x1 = strides if opts["stride_in"] == "1x1" else 1
        stride_3x3 = strides if opts["stride_in"] == "3x3" else 1
        r = _blocks.conv(r, width // opts["reduce_first"], 1, stride_1x1, name=f"{name}_conv1")
        r = _blocks.batch_norm(r, eps, f"{name}_bn1")
        r = layers.ReLU(name=f"{name}_relu1")(r)
        r = _blocks.conv(
            r, width, 3, stride_3x3, groups=opts["cardinality"], name=f"{name}_conv2"
        )
        r = _blocks.batch_norm(r, eps, f"{name}_bn2")
        r = layers.ReLU(name=f"{name}_relu2")(r)
        r = _blocks.conv(r, out_channels, 1, name=f"{name}_conv3")
        r = _blocks.batch_norm(r, eps, f"{name}_bn3")

    if position == _se_positions.STANDARD:
        r = se(r, f"{name}_se")
    elif position == _se_positions.IDENTITY:
        shortcut = se(shortcut, f"{name}_se")
    x = layers.Add(name=f"{name}_add")([shortcut, r])
    x = layers.ReLU(name=f"{name}_out")(x)
    if position == _se_positions.POST:
        x = se(x, f"{name}_se")
    return x


def _stem(x, stem, stem_width, ceil_mode_pool, eps):
    if stem == "7x7":
        widths, kernels, strides = (64,), (7,), (2,)
    else:
        first = stem_width if stem == "deep" else 3 * (stem_width // 4)
        widths, kernels, strides = (first, stem_width, stem_width * 2), (3, 3, 3), (2, 1, 1)
    for i, (width, kernel, stride) in enumerate(zip(widths, kernels, strides), 1):
        x = _blocks.conv(x, width, kernel, stride, name=f"stem_conv{i}")
        x = _blocks.batch_norm(x, eps, f"stem_bn{i}")
        x = layers.ReLU(name=f"stem_relu{i}")(x)
    return _blocks.max_pool_3x3_s2(x, ceil_mode_pool, "stem_pool"), widths[-1]


def build_resnet(
    *,
    block,
    depths,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="se_resnet",
    known_tags=(),
    default_size=224,
    cardinality=1,
    base_width=64,
    stem="7x7",
    stem_width=64,
    ceil_mode_pool=False,
    downsample="conv1x1",
    stride_in="3x3",
    reduce_first=1,
    se=True,
    se_ratio=16,
    se_width_divisor=8,
    se_gate="sigmoid",
    se_squeeze="avg",
    se_stages=None,
    se_position="standard",
    bn_epsilon=1e-5,
    dropout_rate=0.0,
    branch_relu=False,
    preprocessing=None,
    include_preprocessing=False,
    weights_preprocessing=None,
):
    """Builds an (SE-)ResNet / ResNeXt functional model with random weights.

    The public builders (`SEResNet50`, ...) fill these arguments from
    `ARCHITECTURES` and `LAYOUTS` and load weights afterwards.

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck".
        depths: blocks per stage, four ints.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: as in `keras.applications`.
            `weights` is only validated here.
        known_tags: the pretrained tags accepted for `weights`.
        default_size: input size used when `include_top` and no
            `input_shape` is given.
        cardinality, base_width: ResNeXt's groups and width per group
            (1 and 64 give ResNet).
        stem: "7x7", "deep" (3x3 convs of stem_width, stem_width,
            2 * stem_width) or "deep_tiered" (3 * stem_width // 4, ...).
        stem_width: width of the deep stems.
        ceil_mode_pool: stem max pool with PyTorch `ceil_mode=True` and no
            padding (the legacy Caffe layout) instead of padding 1.
        downsample: projection shortcut: "conv1x1" (strided 1x1 conv),
            "conv3x3" (strided 3x3 conv, SENet-154) or "avg" (2x2 average
            pool then 1x1 conv, timm's "d" variants).
        stride_in: where a bottleneck strides: "3x3" (timm, torchvision) or
            "1x1" (the paper's Caffe models).
        reduce_first: divides the width of each block's first conv (2 in
            SENet-154).
        se: False builds the plain ResNet/ResNeXt from the same code.
        se_ratio, se_width_divisor, se_gate, se_squeeze: the
            `SqueezeExcitation` options (ratio, width rule, gate, squeeze op).
        se_stages: the stages (1-4) that get SE blocks; None means all.
        se_position: "standard", "pre", "post" or "identity" (see the
            module docstring).
        bn_epsilon: BatchNorm epsilon; 1e-5 as in PyTorch so that converted
            weights give the reference outputs.
        dropout_rate: dropout before the classifier (SENet-154 uses 0.2).
        branch_relu: basic blocks only: a ReLU after the second BatchNorm,
            before SE and the addition (timm's legacy_seresnet18/34).
        preprocessing: None, a `se_keras.Preprocessing` or a dict of its
            fields overriding the record the weights imply (see
            `se_keras.preprocessing`).
        include_preprocessing: normalize inside the model, so that it
            takes RGB pixels in [0, 255].
        weights_preprocessing: the record of the weights to be loaded (a
            registry row's); None for `weights_preprocessing(weights)`.

    Returns:
        A `keras.Model`.

    Example:
    >>> model = build_resnet(block="bottleneck", depths=(1, 1, 1, 1), include_top=False)
    """
    input_shape = _arguments.validate_keras_arguments(
        weights=weights, include_top=include_top, classes=classes, input_shape=input_shape,
        pooling=pooling, classifier_activation=classifier_activation,
        known_tags=known_tags, default_size=default_size,
    )
    check_choice("block", block, BLOCKS)
    check_choice("stem", stem, STEMS)
    check_choice("downsample", downsample, DOWNSAMPLES)
    check_choice("stride_in", stride_in, STRIDE_PLACES)
    se_position = _se_positions.resolve("resnet", se_position)
    if block == "basic" and (cardinality != 1 or base_width != 64):
        raise ValueError(
            "Basic blocks support only cardinality=1 and base_width=64. "
            f"Received: cardinality={cardinality}, base_width={base_width}"
        )
    _arguments.validate_se_options(se_ratio, se_gate, se_squeeze)
    stages = _arguments.se_stage_set(se_stages, 4)
    opts = dict(
        bn_epsilon=bn_epsilon, se_position=se_position,
        se_block=_blocks.se_block(
            ratio=se_ratio, width_divisor=se_width_divisor, gate=se_gate, squeeze=se_squeeze
        ),
        downsample=downsample, reduce_first=reduce_first, base_width=base_width,
        cardinality=cardinality, stride_in=stride_in, branch_relu=branch_relu,
    )

    record = _assembly.preprocessing_record(
        input_shape=input_shape,
        base=weights_preprocessing or _assembly.weights_preprocessing(
            None if weights in known_tags or weights == "imagenet" else weights, default_size
        ),
        preprocessing=preprocessing,
        include_preprocessing=include_preprocessing,
    )
    img_input, x = _assembly.open_model(input_tensor, input_shape, record)
    x, channels = _stem(x, stem, stem_width, ceil_mode_pool, bn_epsilon)
    expansion = 1 if block == "basic" else 4
    for stage, depth in enumerate(depths, 1):
        planes = 64 * 2 ** (stage - 1)
        for b in range(1, depth + 1):
            strides = 2 if stage > 1 and b == 1 else 1
            x = _residual_unit(
                x,
                block=block,
                planes=planes,
                strides=strides,
                needs_projection=b == 1 and (strides > 1 or channels != planes * expansion),
                opts=opts,
                use_se=se and stage in stages,
                name=f"stage{stage}_block{b}",
            )
            channels = planes * expansion
    x = _blocks.head(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
    )
    # Weights are loaded by the public builders, once the layout is known.
    return _assembly.finish_model(input_tensor, img_input, x, name=name)
