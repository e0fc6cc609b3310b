"""The CIFAR networks of the paper's CIFAR tables, with SE blocks.

- SE-ResNet-20/32/56/110 (He et al. 2016, "Deep Residual Learning"):
  post-activation basic blocks, 16/32/64 channels, n = (depth - 2) / 6
  blocks per stage.
- SE-ResNet-164 (He et al. 2016, "Identity Mappings"): pre-activation
  bottlenecks, 64/128/256 output channels, n = (depth - 2) / 9.
- SE-WRN-16-8 (Zagoruyko & Komodakis 2016): pre-activation basic blocks,
  widths 16k/32k/64k with k = 8, n = (depth - 4) / 6.

Shortcuts that change shape are 1x1 projections with BatchNorm (option B).
The SE block sits on the residual branch before the addition, as in the
paper: `se_position="standard"` in the vocabulary of
`se_keras.applications._se_positions`, the only placement these builders
offer (they take no `se_position`). Layer names follow the ImageNet builders' contract
(`stage{s}_block{b}_se`, ...), with `final_bn`/`final_relu` closing the
pre-activation networks.
"""

from keras import layers

from se_keras.applications import _arguments
from se_keras.applications import _assembly
from se_keras.applications import _blocks
from se_keras.applications import _public_builders

# One row per public model.
ARCHITECTURES = {
    "seresnet20_cifar": dict(block="basic", depth=20, preact=False),
    "seresnet32_cifar": dict(block="basic", depth=32, preact=False),
    "seresnet56_cifar": dict(block="basic", depth=56, preact=False),
    "seresnet110_cifar": dict(block="basic", depth=110, preact=False),
    "seresnet164_cifar": dict(block="bottleneck", depth=164, preact=True),
    "sewrn16_8_cifar": dict(block="basic", depth=16, preact=True, widen_factor=8),
}


def _blocks_per_stage(block, depth, preact):
    if block == "bottleneck":
        n, remainder = divmod(depth - 2, 9)
    elif preact:
        n, remainder = divmod(depth - 4, 6)
    else:
        n, remainder = divmod(depth - 2, 6)
    if remainder or n < 1:
        raise ValueError(
            f"`depth` does not give a whole number of {block} blocks per stage. "
            f"Received: depth={depth}"
        )
    return n


def build_cifar_resnet(
    *, block, depth, preact, widen_factor=1,
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=10, classifier_activation="softmax", name="se_resnet_cifar",
    se=True, se_ratio=16, se_gate="sigmoid", se_squeeze="avg", se_stages=None,
    dropout_rate=0.0, bn_epsilon=1e-5, preprocessing=None, include_preprocessing=False,
):
    """Builds a CIFAR (SE-)ResNet or wide ResNet.

    Args:
        block: "basic" or "bottleneck".
        depth: total depth (20, 32, 56, 110 for basic post-activation,
            164 for bottleneck, 16 for WRN-16-k).
        preact: pre-activation units (ResNet-164, WRN) instead of
            post-activation (ResNet-20 ... 110).
        widen_factor: k of WRN-d-k.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: as in `keras.applications`;
            `weights` is None or a `.weights.h5` path (no public weights).
        se: False builds the plain network from the same code.
        se_ratio, se_gate, se_squeeze: `SqueezeExcitation` options.
        se_stages: the stages (1-3) with SE blocks; None means all.
        dropout_rate: dropout between the convs of a WRN block.
        bn_epsilon: BatchNorm epsilon.
        preprocessing: fields of the model's `se_keras.Preprocessing` record
            to override (a dict or a record); by default the whole 32x32
            image (crop_pct 1.0), ImageNet mean and std, bilinear.
        include_preprocessing: normalize inside the model, so that it takes
            RGB pixels in [0, 255].

    Returns:
        A `keras.Model`.

    Example:
    >>> model = build_cifar_resnet(block="basic", depth=8, preact=False, classes=10)
    """
    input_shape = _arguments.validate_keras_arguments(
        weights=weights, include_top=include_top, classes=classes, input_shape=input_shape,
        pooling=pooling, classifier_activation=classifier_activation,
        default_size=32, min_size=8,
    )
    _arguments.validate_se_options(se_ratio, se_gate, se_squeeze)
    n = _blocks_per_stage(block, depth, preact)
    stages = _arguments.se_stage_set(se_stages, 3)
    se_block = _blocks.se_block(ratio=se_ratio, gate=se_gate, squeeze=se_squeeze)
    bn = lambda t, label: _blocks.batch_norm(t, bn_epsilon, label)  # noqa: E731

    img_input, x = _assembly.input_with_preprocessing(
        input_tensor, input_shape, weights=weights, default_size=32, crop_pct=1.0,
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )
    x = _blocks.conv(x, 16, 3, name="stem_conv1")
    if not preact:
        x = bn(x, "stem_bn1")
        x = layers.ReLU(name="stem_relu1")(x)
    channels = 16
    for stage in (1, 2, 3):
        width = 16 * 2 ** (stage - 1) * widen_factor
        out_channels = width * 4 if block == "bottleneck" else width
        for b in range(1, n + 1):
            label = f"stage{stage}_block{b}"
            strides = 2 if stage > 1 and b == 1 else 1
            shortcut = x
            if preact:
                x = bn(x, f"{label}_preact_bn")
                x = layers.ReLU(name=f"{label}_preact_relu")(x)
                # The projection takes the pre-activated input (He et al. 2016b).
                if strides > 1 or channels != out_channels:
                    shortcut = x
            if strides > 1 or channels != out_channels:
                shortcut = _blocks.conv(shortcut, out_channels, 1, strides, name=f"{label}_down_conv")
                if not preact:
                    shortcut = bn(shortcut, f"{label}_down_bn")
            r = x
            if block == "bottleneck":
                kernels, widths, conv_strides = (1, 3, 1), (width, width, out_channels), (1, strides, 1)
            else:
                kernels, widths, conv_strides = (3, 3), (width, width), (strides, 1)
            for i, (k, w, s) in enumerate(zip(kernels, widths, conv_strides), 1):
                if preact and i > 1:
                    r = bn(r, f"{label}_bn{i - 1}")
                    r = layers.ReLU(name=f"{label}_relu{i - 1}")(r)
                    if dropout_rate and block == "basic":
                        r = layers.Dropout(dropout_rate, name=f"{label}_dropout")(r)
                r = _blocks.conv(r, w, k, s, name=f"{label}_conv{i}")
                if not preact:
                    r = bn(r, f"{label}_bn{i}")
                    if i < len(kernels):
                        r = layers.ReLU(name=f"{label}_relu{i}")(r)
            if se and stage in stages:
                r = se_block(r, f"{label}_se")
            x = layers.Add(name=f"{label}_add")([shortcut, r])
            if not preact:
                x = layers.ReLU(name=f"{label}_out")(x)
            channels = out_channels
    if preact:
        x = bn(x, "final_bn")
        x = layers.ReLU(name="final_relu")(x)
    x = _blocks.head(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    return _assembly.finish_model(input_tensor, img_input, x, name=name, weights=weights)


def _public(func_name, arch, title, default_name):
    return _public_builders.public_builder(
        func_name,
        arch=arch,
        build=lambda **kwargs: build_cifar_resnet(**ARCHITECTURES[arch], **kwargs),
        summary=f"Instantiates {title} for 32x32 inputs (the paper's CIFAR tables).",
        description="No public weights exist: `weights` is None or a `.weights.h5` path.",
        example="classes=10",
        name=default_name,
        classes=10,
        size=32,
        min_size=8,
        kwargs_doc="`se`, `se_ratio`, `se_gate`, `se_squeeze`, `se_stages`, "
                   "`dropout_rate`, `bn_epsilon`, `preprocessing`, `include_preprocessing` "
                   "(see `build_cifar_resnet`).",
    )


SEResNet20 = _public("SEResNet20", "seresnet20_cifar", "SE-ResNet-20", "se_resnet20")
SEResNet32 = _public("SEResNet32", "seresnet32_cifar", "SE-ResNet-32", "se_resnet32")
SEResNet56 = _public("SEResNet56", "seresnet56_cifar", "SE-ResNet-56", "se_resnet56")
SEResNet110 = _public("SEResNet110", "seresnet110_cifar", "SE-ResNet-110", "se_resnet110")
SEResNet164 = _public("SEResNet164", "seresnet164_cifar", "SE-ResNet-164", "se_resnet164")
SEWideResNet16_8 = _public("SEWideResNet16_8", "sewrn16_8_cifar", "SE-WRN-16-8", "se_wrn16_8")

BUILDERS = {
    f.__name__: f
    for f in (SEResNet20, SEResNet32, SEResNet56, SEResNet110, SEResNet164, SEWideResNet16_8)
}
