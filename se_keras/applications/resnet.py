"""SE-ResNet, SE-ResNeXt and SENet-154 (Hu et al., arXiv 1709.01507).

One generic builder, `build_resnet`, and thin public variants. Every
architecture is a row of `ARCHITECTURES`; the two layouts of the public
checkpoints are the rows of `VARIANTS`:

- "timm": timm's `resnet.py` models (seresnet*, seresnext*, senet154 and the
  gluon ports): stride on the 3x3 conv, stem max pool with padding 1, SE
  width `make_divisible(C / 16, 8)`.
- "legacy": the authors' Caffe models as ported by Cadene (timm's
  `legacy_*`): SE-ResNet bottlenecks put the stride on the first 1x1 conv,
  the stem max pool uses `ceil_mode=True`, SE width `C // 16`. This is the
  paper's own architecture.

Each public builder defaults to the variant of its best public checkpoint,
so `SEResNet50(weights=None)` has the same layout as
`SEResNet50(weights="imagenet")`.

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
from se_keras.applications import _common
from se_keras.layers import SqueezeExcitation

BLOCKS = ("basic", "bottleneck")
STEMS = ("7x7", "deep", "deep_tiered")
DOWNSAMPLES = ("conv1x1", "conv3x3", "avg")
STRIDE_PLACES = ("1x1", "3x3")
SE_POSITIONS = ("standard", "pre", "post", "identity")

# One row per architecture: what does not change between checkpoint layouts.
ARCHITECTURES = {
    "seresnet18": dict(block="basic", depths=(2, 2, 2, 2)),
    "seresnet34": dict(block="basic", depths=(3, 4, 6, 3)),
    "seresnet50": dict(block="bottleneck", depths=(3, 4, 6, 3)),
    "seresnet101": dict(block="bottleneck", depths=(3, 4, 23, 3)),
    "seresnet152": dict(block="bottleneck", depths=(3, 8, 36, 3)),
    "seresnet152d": dict(
        block="bottleneck", depths=(3, 8, 36, 3), stem="deep", stem_width=32,
        downsample="avg", default_size=256,
    ),
    "seresnext26_32x4d": dict(
        block="bottleneck", depths=(2, 2, 2, 2), cardinality=32, base_width=4
    ),
    "seresnext26d_32x4d": dict(
        block="bottleneck", depths=(2, 2, 2, 2), cardinality=32, base_width=4,
        stem="deep", stem_width=32, downsample="avg",
    ),
    "seresnext26t_32x4d": dict(
        block="bottleneck", depths=(2, 2, 2, 2), cardinality=32, base_width=4,
        stem="deep_tiered", stem_width=32, downsample="avg",
    ),
    "seresnext50_32x4d": dict(
        block="bottleneck", depths=(3, 4, 6, 3), cardinality=32, base_width=4
    ),
    "seresnext101_32x4d": dict(
        block="bottleneck", depths=(3, 4, 23, 3), cardinality=32, base_width=4
    ),
    "seresnext101_32x8d": dict(
        block="bottleneck", depths=(3, 4, 23, 3), cardinality=32, base_width=8
    ),
    "seresnext101_64x4d": dict(
        block="bottleneck", depths=(3, 4, 23, 3), cardinality=64, base_width=4
    ),
    "senet154": dict(
        block="bottleneck", depths=(3, 8, 36, 3), cardinality=64, base_width=4,
        stem="deep", stem_width=64, downsample="conv3x3", reduce_first=2,
        dropout_rate=0.2,
    ),
}

# The checkpoint layouts (see the module docstring).
VARIANTS = {
    "timm": dict(stride_in="3x3", ceil_mode_pool=False, se_width_divisor=8),
    # stride_in is "1x1" only for plain SE-ResNet bottlenecks; the legacy
    # SE-ResNeXt and SENet-154 blocks stride in the 3x3 conv.
    "legacy": dict(stride_in="1x1", ceil_mode_pool=True, se_width_divisor=None),
}


def variant_options(arch, variant):
    """The architecture options of `VARIANTS[variant]` for one architecture.

    Example:
    >>> variant_options("seresnext50_32x4d", "legacy")["stride_in"]
    '3x3'
    """
    check_choice("variant", variant, tuple(VARIANTS))
    options = dict(VARIANTS[variant])
    row = ARCHITECTURES[arch]
    if variant == "legacy" and (
        row["block"] == "basic" or row.get("cardinality", 1) > 1
    ):
        options["stride_in"] = "3x3"
    if variant == "legacy" and row["block"] == "basic":
        # timm's legacy SEResNetBlock (seresnet18/34) applies a ReLU after
        # bn2, before the SE block; its weights were trained that way.
        options["branch_relu"] = True
    return options


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
        x = _common.conv(x, filters, 1, name=f"{name}_conv")
    else:
        kernel = 3 if downsample == "conv3x3" and strides > 1 else 1
        x = _common.conv(x, filters, kernel, strides=strides, name=f"{name}_conv")
    return _common.batch_norm(x, epsilon, f"{name}_bn")


def _residual_unit(x, *, block, planes, strides, needs_projection, opts, use_se, name):
    """One residual block; `opts` holds the network-wide options."""
    eps = opts["bn_epsilon"]
    if block == "basic":
        out_channels = planes
    else:
        out_channels = planes * 4

    def se_layer():
        return SqueezeExcitation(
            ratio=opts["se_ratio"],
            width_divisor=opts["se_width_divisor"],
            gate=opts["se_gate"],
            squeeze=opts["se_squeeze"],
            data_format=keras.config.image_data_format(),
            name=f"{name}_se",
        )

    position = opts["se_position"] if use_se else None
    shortcut = x
    if needs_projection:
        shortcut = _shortcut(
            x, out_channels, strides, opts["downsample"], eps, f"{name}_down"
        )
    r = se_layer()(x) if position == "pre" else x

    if block == "basic":
        r = _common.conv(r, planes // opts["reduce_first"], 3, strides, name=f"{name}_conv1")
        r = _common.batch_norm(r, eps, f"{name}_bn1")
        r = layers.ReLU(name=f"{name}_relu1")(r)
        r = _common.conv(r, out_channels, 3, name=f"{name}_conv2")
        r = _common.batch_norm(r, eps, f"{name}_bn2")
        if opts["branch_relu"]:
            r = layers.ReLU(name=f"{name}_relu2")(r)
    else:
        width = int(planes * (opts["base_width"] / 64)) * opts["cardinality"]
        stride_1x1 = strides if opts["stride_in"] == "1x1" else 1
        stride_3x3 = strides if opts["stride_in"] == "3x3" else 1
        r = _common.conv(r, width // opts["reduce_first"], 1, stride_1x1, name=f"{name}_conv1")
        r = _common.batch_norm(r, eps, f"{name}_bn1")
        r = layers.ReLU(name=f"{name}_relu1")(r)
        r = _common.conv(
            r, width, 3, stride_3x3, groups=opts["cardinality"], name=f"{name}_conv2"
        )
        r = _common.batch_norm(r, eps, f"{name}_bn2")
        r = layers.ReLU(name=f"{name}_relu2")(r)
        r = _common.conv(r, out_channels, 1, name=f"{name}_conv3")
        r = _common.batch_norm(r, eps, f"{name}_bn3")

    if position == "standard":
        r = se_layer()(r)
    elif position == "identity":
        shortcut = se_layer()(shortcut)
    x = layers.Add(name=f"{name}_add")([shortcut, r])
    x = layers.ReLU(name=f"{name}_out")(x)
    if position == "post":
        x = se_layer()(x)
    return x


def _stem(x, stem, stem_width, ceil_mode_pool, eps):
    if stem == "7x7":
        widths, kernels, strides = (64,), (7,), (2,)
    else:
        first = stem_width if stem == "deep" else 3 * (stem_width // 4)
        widths, kernels, strides = (first, stem_width, stem_width * 2), (3, 3, 3), (2, 1, 1)
    for i, (width, kernel, stride) in enumerate(zip(widths, kernels, strides), 1):
        x = _common.conv(x, width, kernel, stride, name=f"stem_conv{i}")
        x = _common.batch_norm(x, eps, f"stem_bn{i}")
        x = layers.ReLU(name=f"stem_relu{i}")(x)
    return _common.max_pool_3x3_s2(x, ceil_mode_pool, "stem_pool"), widths[-1]


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
    `ARCHITECTURES` and `VARIANTS` and load weights afterwards.

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
        se_position: "standard" (residual branch, before the addition),
            "pre" (before the residual unit), "post" (after the addition and
            ReLU) or "identity" (on the shortcut), the paper's ablation.
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
    input_shape = _common.validate_common(
        weights=weights,
        known_tags=known_tags,
        include_top=include_top,
        classes=classes,
        input_shape=input_shape,
        default_size=default_size,
        min_size=32,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    check_choice("block", block, BLOCKS)
    check_choice("stem", stem, STEMS)
    check_choice("downsample", downsample, DOWNSAMPLES)
    check_choice("stride_in", stride_in, STRIDE_PLACES)
    check_choice("se_position", se_position, SE_POSITIONS)
    if block == "basic" and (cardinality != 1 or base_width != 64):
        raise ValueError(
            "Basic blocks support only cardinality=1 and base_width=64. "
            f"Received: cardinality={cardinality}, base_width={base_width}"
        )
    _common.validate_se_options(se_ratio, se_gate, se_squeeze)
    stages = (1, 2, 3, 4) if se_stages is None else tuple(se_stages)
    if not set(stages) <= {1, 2, 3, 4}:
        raise ValueError(
            "`se_stages` must be a subset of (1, 2, 3, 4). "
            f"Received: se_stages={se_stages!r}"
        )
    opts = dict(
        bn_epsilon=bn_epsilon, se_ratio=se_ratio, se_width_divisor=se_width_divisor,
        se_gate=se_gate, se_squeeze=se_squeeze, se_position=se_position,
        downsample=downsample, reduce_first=reduce_first, base_width=base_width,
        cardinality=cardinality, stride_in=stride_in, branch_relu=branch_relu,
    )

    record = _common.preprocessing_record(
        input_shape=input_shape,
        base=weights_preprocessing or _common.weights_preprocessing(
            None if weights in known_tags or weights == "imagenet" else weights, default_size
        ),
        preprocessing=preprocessing,
        include_preprocessing=include_preprocessing,
    )
    img_input = _common.make_input(input_tensor, input_shape)
    x = _common.apply_preprocessing(img_input, record)
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
    x = _common.head(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
    )
    return keras.Model(_common.model_inputs(input_tensor, img_input), x, name=name)


# Builder options that pretrained weights do not depend on.
_OPTIONS_KEEPING_WEIGHTS = {
    "include_top", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "dropout_rate", "preprocessing", "include_preprocessing",
}


def resolve_variant(arch, weights=None, variant=None):
    """The checkpoint layout a builder call builds: `variant`, else the weights', else the default.

    A training run records it, so that the run's model is rebuilt in the
    layout it was trained in even when it is rebuilt without its weights.

    Example:
    >>> resolve_variant("seresnext50_32x4d", "legacy_in1k")
    'legacy'
    """
    from se_keras.weights import registry

    checkpoint = None
    if isinstance(weights, str) and weights in registry.tags_for(arch) | {"imagenet"}:
        checkpoint = registry.get(arch, weights)
        if variant is not None and variant != checkpoint.variant:
            raise ValueError(
                f"The weights {checkpoint.name!r} need variant="
                f"{checkpoint.variant!r}. Received: variant={variant!r}"
            )
    if variant is None:
        variant = checkpoint.variant if checkpoint else registry.default_variant(arch)
    check_choice("variant", variant, tuple(VARIANTS))
    return variant


def _public(arch, *, weights, variant, name, **kwargs):
    """Builds `arch` in the layout its weights need, then loads the weights."""
    # Imported here: the weights package imports this module for its tables.
    from se_keras import weights as weights_lib
    from se_keras.weights import registry

    variant = resolve_variant(arch, weights, variant)
    checkpoint = None
    if isinstance(weights, str) and weights in registry.tags_for(arch) | {"imagenet"}:
        checkpoint = registry.get(arch, weights)
    if checkpoint is not None:
        changed = sorted(set(kwargs) - _OPTIONS_KEEPING_WEIGHTS)
        if changed:
            # Options such as se_gate or stride_in keep every weight's shape,
            # so the weights would load into a different network and give
            # wrong predictions without any error.
            raise ValueError(
                "Architecture options change the network the pretrained weights "
                "were trained for; use them with weights=None or your own weights "
                f"file. Received: {', '.join(f'{k}={kwargs[k]!r}' for k in changed)}"
            )
    row = dict(ARCHITECTURES[arch])
    if checkpoint is not None:
        row["default_size"] = checkpoint.input_size
    options = {**row, **variant_options(arch, variant), **kwargs}
    if checkpoint is not None:
        options["weights_preprocessing"] = checkpoint.preprocessing_record()
    model = build_resnet(
        weights=weights, known_tags=registry.tags_for(arch), name=name, **options
    )
    if weights is not None:
        weights_lib.load_weights(model, weights, checkpoint=checkpoint, variant=variant)
    return model


_DOC = """Instantiates the {title} architecture.

Reference: Hu et al., "Squeeze-and-Excitation Networks" (arXiv 1709.01507).
{extra}
The default layout follows the best public checkpoint ({layout}); pass
`variant="timm"` or `variant="legacy"` for the other (see
`se_keras.applications.resnet`).

Args:
    include_top: whether to include the classifier on top.
    weights: None (random initialization), "imagenet" (the best ImageNet-1k
        checkpoint), a pretrained tag ({tags}), or a path to a `.weights.h5`
        file or a timm checkpoint (`.safetensors` or `.pth`).
    input_tensor: optional Keras tensor to use as image input.
    input_shape: optional shape tuple; at least 32x32 with 3 channels for
        pretrained weights. Defaults to ({size}, {size}, 3) with the top.
    pooling: None, "avg" or "max": global pooling when `include_top=False`.
    classes: number of classes, 1000 with pretrained weights and the top.
    classifier_activation: activation of the top layer; None or "softmax"
        with pretrained weights.
    name: the model's name.
    variant: "timm" or "legacy" checkpoint layout; None follows `weights`.
    include_preprocessing: put the weights' normalization in the model
        (its `ImagePreprocessing` layer), so it takes RGB pixels in
        [0, 255]; otherwise apply `preprocess_input` yourself.
    preprocessing: fields of the model's `se_keras.Preprocessing` record
        to override (a dict or a record); by default the weights' own
        (read it with `se_keras.get_preprocessing(model)`).
    **kwargs: architecture and SE options of
        `se_keras.applications.resnet.build_resnet` (`se=False` for the
        plain network, `se_ratio`, `se_gate`, `se_squeeze`, `se_stages`,
        `se_position`, `stride_in`, `bn_epsilon`, ...).

Returns:
    A `keras.Model`.

Example:
>>> from se_keras.applications import {func}
>>> model = {func}(weights=None, input_shape=(64, 64, 3), include_top=False)
"""


def _builder(func_name, arch, title, default_name, extra=""):
    def builder(
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=default_name,
        variant=None,
        **kwargs,
    ):
        return _public(
            arch,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            variant=variant,
            **kwargs,
        )

    from se_keras.weights import registry

    rows = registry.checkpoints_for(arch)
    builder.__name__ = builder.__qualname__ = func_name
    builder.__doc__ = _DOC.format(
        title=title,
        extra=extra,
        layout=registry.default_variant(arch),
        tags=", ".join(repr(c.tag) for c in rows) or "none published",
        size=rows[0].input_size if rows else 224,
        func=func_name,
    )
    builder.arch = arch
    return builder


SEResNet18 = _builder("SEResNet18", "seresnet18", "SE-ResNet-18", "se_resnet18")
SEResNet34 = _builder("SEResNet34", "seresnet34", "SE-ResNet-34", "se_resnet34")
SEResNet50 = _builder("SEResNet50", "seresnet50", "SE-ResNet-50", "se_resnet50")
SEResNet101 = _builder("SEResNet101", "seresnet101", "SE-ResNet-101", "se_resnet101")
SEResNet152 = _builder("SEResNet152", "seresnet152", "SE-ResNet-152", "se_resnet152")
SEResNet152D = _builder(
    "SEResNet152D", "seresnet152d", "SE-ResNet-152-D", "se_resnet152d",
    "The 'D' variant: deep 3x3 stem (32, 32, 64) and average-pool downsampling.",
)
SEResNeXt26 = _builder(
    "SEResNeXt26", "seresnext26_32x4d", "SE-ResNeXt-26 (32x4d)", "se_resnext26_32x4d"
)
SEResNeXt26D = _builder(
    "SEResNeXt26D", "seresnext26d_32x4d", "SE-ResNeXt-26-D (32x4d)", "se_resnext26d_32x4d",
    "The 'D' variant: deep 3x3 stem (32, 32, 64) and average-pool downsampling.",
)
SEResNeXt26T = _builder(
    "SEResNeXt26T", "seresnext26t_32x4d", "SE-ResNeXt-26-T (32x4d)", "se_resnext26t_32x4d",
    "The 'T' variant: tiered deep stem (24, 32, 64) and average-pool downsampling.",
)
SEResNeXt50 = _builder(
    "SEResNeXt50", "seresnext50_32x4d", "SE-ResNeXt-50 (32x4d)", "se_resnext50_32x4d"
)
SEResNeXt101 = _builder(
    "SEResNeXt101", "seresnext101_32x4d", "SE-ResNeXt-101 (32x4d)", "se_resnext101_32x4d"
)
SEResNeXt101_32x8d = _builder(
    "SEResNeXt101_32x8d", "seresnext101_32x8d", "SE-ResNeXt-101 (32x8d)",
    "se_resnext101_32x8d",
)
SEResNeXt101_64x4d = _builder(
    "SEResNeXt101_64x4d", "seresnext101_64x4d", "SE-ResNeXt-101 (64x4d)",
    "se_resnext101_64x4d",
)
SENet154 = _builder(
    "SENet154", "senet154", "SENet-154", "senet154",
    "SE-ResNeXt-152 (64x4d) with a deep stem, halved first convs, 3x3 "
    "downsampling shortcuts and dropout 0.2: the paper's ILSVRC 2017 winner.",
)

BUILDERS = {
    f.__name__: f
    for f in (
        SEResNet18, SEResNet34, SEResNet50, SEResNet101, SEResNet152, SEResNet152D,
        SEResNeXt26, SEResNeXt26D, SEResNeXt26T, SEResNeXt50, SEResNeXt101,
        SEResNeXt101_32x8d, SEResNeXt101_64x4d, SENet154,
    )
}
