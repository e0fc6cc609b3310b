"""SE-BN-Inception, SE-Inception-v3 and SE-Inception-ResNet-v2 (Hu et al., arXiv 1709.01507).

One generic builder, `build_inception`, and thin public variants; every
architecture is a row of `ARCHITECTURES`. The SE block recalibrates each
Inception module's output (the paper's figure 2); in Inception-ResNet it
acts on the residual branch before the addition, like SE-ResNet.

Where Inception-ResNet-v2's residual blocks put it (`se_position`, the
vocabulary of `se_keras.applications._se_positions`); BN-Inception and
Inception-v3 have no residual blocks, accept every value and ignore it:

| value | where | former name |
|---|---|---|
| "standard" (default) | on the residual branch, before the scaling and addition (the paper's integration) | "residual" |
| "post" | after the addition and ReLU | "output" |

- BN-Inception (Ioffe & Szegedy 2015, figure 5 and the authors' Caffe
  layout): convolutions with biases, BatchNorm with scale, epsilon 1e-5,
  stride-2 max pools with Caffe's `ceil_mode`, average pools that count the
  padding. 224x224 default. The pools of the stride-2 modules (3c, 4e) pad
  "same", which is Caffe's ceil mode at even sizes and, unlike Caffe, also
  matches the strided convolutions at odd sizes.
- Inception-v3 and Inception-ResNet-v2: the layouts of
  `keras.applications.InceptionV3` and `InceptionResNetV2` (convolutions
  without biases, BatchNorm without scale, epsilon 1e-3, "valid" strided
  convolutions), so that `se=False` gives those models exactly. 299x299
  default. keras' `CustomScaleLayer` (`x + scale * r`) is a `Rescaling`
  layer followed by an `Add` here.

Layer names (a stable contract). A convolution `X` is followed by `X_bn` and
`X_relu`; branches are numbered from 0 as in the TF-slim checkpoints, the
convolutions inside a branch from 1.

BN-Inception, with the Caffe model's names:

    conv1_7x7_s2, pool1_3x3_s2, conv2_3x3_reduce, conv2_3x3, pool2_3x3_s2
    inception_{m}_1x1, _3x3_reduce, _3x3, _double_3x3_reduce,
        _double_3x3_1, _double_3x3_2, _pool, _pool_proj   m = 3a ... 5b
    inception_{m}_output (concatenation), inception_{m}_se

Inception-v3:

    stem_conv1 ... stem_conv5, stem_pool1, stem_pool2
    mixed{m}_b{k}_{j}        convolution j of branch k of module m = 0 ... 10
    mixed{m}_b{k}_pool       the pooling branch's pool
    mixed{m}_b{k}_concat     the split 1x3 / 3x1 outputs of mixed9 and mixed10
    mixed{m} (concatenation, keras' name), mixed{m}_se

Inception-ResNet-v2:

    stem_conv1 ... stem_conv5, stem_pool1, stem_pool2
    mixed_5b, mixed_6a, mixed_7a (+ _b{k}_{j}, _b{k}_pool, _se)
    block35_{i}, block17_{i}, block8_{i}: _b{k}_{j} branch convolutions,
        _mixed (concatenation), _conv (1x1 up-projection, with bias),
        _se, _scale, _add, _relu (absent in block8_10)
    conv_7b (+ _bn, _relu)

Every model ends in avg_pool / max_pool and predictions.
"""

import keras
from keras import layers

from se_keras._validation import check_choice
from se_keras.applications import _arguments
from se_keras.applications import _assembly
from se_keras.applications import _blocks
from se_keras.applications import _public_builders
from se_keras.applications import _se_positions
from se_keras.applications._public_builders import Option

# What differs between the families outside the module graphs.
ARCHITECTURES = {
    "bn_inception": dict(
        default_size=224, min_size=32, use_bias=True, bn_scale=True, bn_epsilon=1e-5
    ),
    "inception_v3": dict(
        default_size=299, min_size=75, use_bias=False, bn_scale=False, bn_epsilon=1e-3
    ),
    "inception_resnet_v2": dict(
        default_size=299, min_size=75, use_bias=False, bn_scale=False, bn_epsilon=1e-3
    ),
}

# BN-Inception's modules (Ioffe & Szegedy 2015, figure 5): #1x1, #3x3 reduce,
# #3x3, double #3x3 reduce, double #3x3, pool, pool projection, stride.
# A 0 means no such branch; stride-2 modules pass the pool through.
BN_INCEPTION_MODULES = {
    "3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (352, 192, 320, 192, 224, "max", 128, 1),
}


class _Builder:
    """Conv-BN-ReLU and SE with one family's options, so the graphs read like tables."""

    def __init__(self, *, use_bias, bn_scale, bn_epsilon, se, se_ratio, se_gate, se_squeeze):
        self.use_bias = use_bias
        self.bn_scale = bn_scale
        self.bn_epsilon = bn_epsilon
        # `se(x, name)`: an SE block, or `x` itself when `se` is False.
        self.se = _blocks.se_block(se, ratio=se_ratio, gate=se_gate, squeeze=se_squeeze)
        self.data_format = keras.config.image_data_format()
        self.axis = _blocks.channel_axis()

    def conv_bn(self, x, filters, kernel, name, strides=1, padding="same", relu=True):
        """Convolution `name`, then `name_bn` and (if `relu`) `name_relu`.

        padding="same" pads as Caffe and PyTorch do (`_blocks.conv`: an
        explicit symmetric `name_pad` when strided, where TensorFlow's "same"
        pads the bottom/right more); strided convolutions there have square
        kernels. padding="valid" is keras' unpadded convolution.
        """
        if padding == "same":
            x = _blocks.conv(x, filters, kernel, strides, name=name, use_bias=self.use_bias)
        else:
            x = layers.Conv2D(
                filters, kernel, strides=strides, padding=padding, use_bias=self.use_bias,
                data_format=self.data_format, name=name,
            )(x)
        x = _blocks.batch_norm(x, self.bn_epsilon, f"{name}_bn", scale=self.bn_scale)
        if relu:
            x = layers.ReLU(name=f"{name}_relu")(x)
        return x

    def concat(self, tensors, name):
        """Concatenates `tensors` on the channel axis."""
        return layers.Concatenate(axis=self.axis, name=name)(tensors)

    def avg_pool_3x3(self, x, name):
        """keras' 3x3/1 average pool ("same", the padding not counted)."""
        return layers.AveragePooling2D(
            3, strides=1, padding="same", data_format=self.data_format, name=name
        )(x)

    def keras_max_pool(self, x, name, padding="valid"):
        """keras' and TF-slim's 3x3/2 max pool: unpadded ("valid"), or TensorFlow's "same".

        Not `_blocks.max_pool_3x3_s2`, which pads explicitly like PyTorch.
        """
        return layers.MaxPooling2D(
            3, strides=2, padding=padding, data_format=self.data_format, name=name
        )(x)


def _bn_inception(x, b, se_position):
    del se_position  # modules have no residual branch: SE on the output
    x = b.conv_bn(x, 64, 7, "conv1_7x7_s2", strides=2)
    x = _blocks.max_pool_3x3_s2(x, ceil_mode=True, name="pool1_3x3_s2")
    x = b.conv_bn(x, 64, 1, "conv2_3x3_reduce")
    x = b.conv_bn(x, 192, 3, "conv2_3x3")
    x = _blocks.max_pool_3x3_s2(x, ceil_mode=True, name="pool2_3x3_s2")
    for module, row in BN_INCEPTION_MODULES.items():
        n1x1, n3x3_red, n3x3, ndbl_red, ndbl, pool, proj, stride = row
        p = f"inception_{module}"
        branches = []
        if n1x1:
            branches.append(b.conv_bn(x, n1x1, 1, f"{p}_1x1"))
        y = b.conv_bn(x, n3x3_red, 1, f"{p}_3x3_reduce")
        branches.append(b.conv_bn(y, n3x3, 3, f"{p}_3x3", strides=stride))
        y = b.conv_bn(x, ndbl_red, 1, f"{p}_double_3x3_reduce")
        y = b.conv_bn(y, ndbl, 3, f"{p}_double_3x3_1")
        branches.append(b.conv_bn(y, ndbl, 3, f"{p}_double_3x3_2", strides=stride))
        if stride > 1:
            # "same" pads one row/column at the end when the size is even:
            # Caffe's ceil_mode pool exactly. At odd sizes Caffe's pool is one
            # smaller than the strided convolutions and the concatenation
            # fails; "same" matches them (ceil(H / 2)).
            y = b.keras_max_pool(x, f"{p}_pool", padding="same")
        elif pool == "avg":
            # Zero padding then "valid": Caffe's average counts the padding.
            y = layers.ZeroPadding2D(1, data_format=b.data_format, name=f"{p}_pool_pad")(x)
            y = layers.AveragePooling2D(
                3, strides=1, data_format=b.data_format, name=f"{p}_pool"
            )(y)
        else:
            y = layers.MaxPooling2D(
                3, strides=1, padding="same", data_format=b.data_format, name=f"{p}_pool"
            )(x)
        if proj:
            y = b.conv_bn(y, proj, 1, f"{p}_pool_proj")
        branches.append(y)
        x = b.se(b.concat(branches, f"{p}_output"), f"{p}_se")
    return x


def _stem_v3(x, b):
    """The stem shared by keras' Inception-v3 and Inception-ResNet-v2."""
    x = b.conv_bn(x, 32, 3, "stem_conv1", strides=2, padding="valid")
    x = b.conv_bn(x, 32, 3, "stem_conv2", padding="valid")
    x = b.conv_bn(x, 64, 3, "stem_conv3")
    x = b.keras_max_pool(x, "stem_pool1")
    x = b.conv_bn(x, 80, 1, "stem_conv4", padding="valid")
    x = b.conv_bn(x, 192, 3, "stem_conv5", padding="valid")
    return b.keras_max_pool(x, "stem_pool2")


def _chain(x, b, name, convs):
    """Convolutions `name_1`, `name_2`, ... of (filters, kernel[, strides, padding])."""
    for j, spec in enumerate(convs, 1):
        filters, kernel, *rest = spec
        x = b.conv_bn(x, filters, kernel, f"{name}_{j}", *rest)
    return x


def _avg_pool_branch(x, b, name, filters):
    return b.conv_bn(b.avg_pool_3x3(x, f"{name}_pool"), filters, 1, f"{name}_1")


def _inception_v3(x, b, se_position):
    del se_position  # modules have no residual branch: SE on the output
    x = _stem_v3(x, b)
    for m, pool_filters in enumerate((32, 64, 64)):  # 35x35
        p = f"mixed{m}"
        x = b.concat([
            _chain(x, b, f"{p}_b0", [(64, 1)]),
            _chain(x, b, f"{p}_b1", [(48, 1), (64, 5)]),
            _chain(x, b, f"{p}_b2", [(64, 1), (96, 3), (96, 3)]),
            _avg_pool_branch(x, b, f"{p}_b3", pool_filters),
        ], p)
        x = b.se(x, f"{p}_se")
    x = b.concat([  # 35 -> 17
        _chain(x, b, "mixed3_b0", [(384, 3, 2, "valid")]),
        _chain(x, b, "mixed3_b1", [(64, 1), (96, 3), (96, 3, 2, "valid")]),
        b.keras_max_pool(x, "mixed3_b2_pool"),
    ], "mixed3")
    x = b.se(x, "mixed3_se")
    for m, width in zip((4, 5, 6, 7), (128, 160, 160, 192)):  # 17x17
        p = f"mixed{m}"
        x = b.concat([
            _chain(x, b, f"{p}_b0", [(192, 1)]),
            _chain(x, b, f"{p}_b1", [(width, 1), (width, (1, 7)), (192, (7, 1))]),
            _chain(x, b, f"{p}_b2", [
                (width, 1), (width, (7, 1)), (width, (1, 7)), (width, (7, 1)), (192, (1, 7))
            ]),
            _avg_pool_branch(x, b, f"{p}_b3", 192),
        ], p)
        x = b.se(x, f"{p}_se")
    x = b.concat([  # 17 -> 8
        _chain(x, b, "mixed8_b0", [(192, 1), (320, 3, 2, "valid")]),
        _chain(x, b, "mixed8_b1", [(192, 1), (192, (1, 7)), (192, (7, 1)), (192, 3, 2, "valid")]),
        b.keras_max_pool(x, "mixed8_b2_pool"),
    ], "mixed8")
    x = b.se(x, "mixed8_se")
    for m in (9, 10):  # 8x8
        p = f"mixed{m}"
        y1 = _chain(x, b, f"{p}_b1", [(384, 1)])
        y1 = b.concat([
            b.conv_bn(y1, 384, (1, 3), f"{p}_b1_2"),
            b.conv_bn(y1, 384, (3, 1), f"{p}_b1_3"),
        ], f"{p}_b1_concat")
        y2 = _chain(x, b, f"{p}_b2", [(448, 1), (384, 3)])
        y2 = b.concat([
            b.conv_bn(y2, 384, (1, 3), f"{p}_b2_3"),
            b.conv_bn(y2, 384, (3, 1), f"{p}_b2_4"),
        ], f"{p}_b2_concat")
        x = b.concat([
            _chain(x, b, f"{p}_b0", [(320, 1)]), y1, y2, _avg_pool_branch(x, b, f"{p}_b3", 192)
        ], p)
        x = b.se(x, f"{p}_se")
    return x


# Inception-ResNet-v2's residual blocks: branch convolutions
# (filters, kernel) and the residual scale (TF-slim's values).
IRV2_BLOCKS = {
    "block35": dict(count=10, scale=0.17, branches=(
        [(32, 1)], [(32, 1), (32, 3)], [(32, 1), (48, 3), (64, 3)])),
    "block17": dict(count=20, scale=0.1, branches=(
        [(192, 1)], [(128, 1), (160, (1, 7)), (192, (7, 1))])),
    "block8": dict(count=10, scale=0.2, branches=(
        [(192, 1)], [(192, 1), (224, (1, 3)), (256, (3, 1))])),
}


def _residual_block(x, b, kind, i, se_position):
    row = IRV2_BLOCKS[kind]
    p = f"{kind}_{i}"
    last = kind == "block8" and i == row["count"]
    channels = x.shape[b.axis]
    branches = [_chain(x, b, f"{p}_b{k}", convs) for k, convs in enumerate(row["branches"])]
    r = b.concat(branches, f"{p}_mixed")
    r = layers.Conv2D(
        channels, 1, use_bias=True, data_format=b.data_format, name=f"{p}_conv"
    )(r)
    if se_position == _se_positions.STANDARD:
        r = b.se(r, f"{p}_se")
    # keras and TF-slim end with a block8 of scale 1 and no activation.
    r = layers.Rescaling(1.0 if last else row["scale"], name=f"{p}_scale")(r)
    x = layers.Add(name=f"{p}_add")([x, r])
    if not last:
        x = layers.ReLU(name=f"{p}_relu")(x)
    if se_position == _se_positions.POST:
        x = b.se(x, f"{p}_se")
    return x


def _inception_resnet_v2(x, b, se_position):
    x = _stem_v3(x, b)
    x = b.concat([
        _chain(x, b, "mixed_5b_b0", [(96, 1)]),
        _chain(x, b, "mixed_5b_b1", [(48, 1), (64, 5)]),
        _chain(x, b, "mixed_5b_b2", [(64, 1), (96, 3), (96, 3)]),
        _avg_pool_branch(x, b, "mixed_5b_b3", 64),
    ], "mixed_5b")
    x = b.se(x, "mixed_5b_se")
    for i in range(1, IRV2_BLOCKS["block35"]["count"] + 1):
        x = _residual_block(x, b, "block35", i, se_position)
    x = b.concat([
        _chain(x, b, "mixed_6a_b0", [(384, 3, 2, "valid")]),
        _chain(x, b, "mixed_6a_b1", [(256, 1), (256, 3), (384, 3, 2, "valid")]),
        b.keras_max_pool(x, "mixed_6a_b2_pool"),
    ], "mixed_6a")
    x = b.se(x, "mixed_6a_se")
    for i in range(1, IRV2_BLOCKS["block17"]["count"] + 1):
        x = _residual_block(x, b, "block17", i, se_position)
    x = b.concat([
        _chain(x, b, "mixed_7a_b0", [(256, 1), (384, 3, 2, "valid")]),
        _chain(x, b, "mixed_7a_b1", [(256, 1), (288, 3, 2, "valid")]),
        _chain(x, b, "mixed_7a_b2", [(256, 1), (288, 3), (320, 3, 2, "valid")]),
        b.keras_max_pool(x, "mixed_7a_b3_pool"),
    ], "mixed_7a")
    x = b.se(x, "mixed_7a_se")
    for i in range(1, IRV2_BLOCKS["block8"]["count"] + 1):
        x = _residual_block(x, b, "block8", i, se_position)
    return b.conv_bn(x, 1536, 1, "conv_7b")


_BODIES = {
    "bn_inception": _bn_inception,
    "inception_v3": _inception_v3,
    "inception_resnet_v2": _inception_resnet_v2,
}


def build_inception(
    *, arch,
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="se_inception",
    se=True, se_ratio=16, se_gate="sigmoid", se_squeeze="avg", se_position="standard",
    bn_epsilon=None, preprocessing=None, include_preprocessing=False,
):
    """Builds an (SE-)Inception functional model of one `ARCHITECTURES` row.

    Args:
        arch: "bn_inception", "inception_v3" or "inception_resnet_v2".
        bn_epsilon: BatchNorm epsilon; None takes the family's (1e-5 for
            BN-Inception, 1e-3 for keras' Inception-v3 / -ResNet-v2).
        The others: as documented on `SEInceptionV3` (`se_position`:
            Inception-ResNet-v2 only, "standard" or "post", see the module
            docstring; non-residual modules always get SE on their output).

    Returns:
        A `keras.Model`.

    Example:
    >>> from se_keras.applications.inception import build_inception
    >>> model = build_inception(arch="bn_inception", include_top=False)
    """
    # The architecture first: it sets the default and minimum input sizes.
    check_choice("arch", arch, tuple(ARCHITECTURES))
    row = ARCHITECTURES[arch]
    input_shape = _arguments.validate_keras_arguments(
        weights=weights, include_top=include_top, classes=classes, input_shape=input_shape,
        pooling=pooling, classifier_activation=classifier_activation,
        default_size=row["default_size"], min_size=row["min_size"],
    )
    _arguments.validate_se_options(se_ratio, se_gate, se_squeeze)
    se_position = _se_positions.resolve("inception", se_position)
    builder = _Builder(
        use_bias=row["use_bias"], bn_scale=row["bn_scale"],
        bn_epsilon=row["bn_epsilon"] if bn_epsilon is None else bn_epsilon,
        se=se, se_ratio=se_ratio, se_gate=se_gate, se_squeeze=se_squeeze,
    )
    img_input, x = _assembly.input_with_preprocessing(
        input_tensor, input_shape, weights=weights, default_size=row["default_size"],
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )
    x = _BODIES[arch](x, builder, se_position)
    x = _blocks.head(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    return _assembly.finish_model(input_tensor, img_input, x, name=name, weights=weights)


def _public(func_name, arch, title, default_name, description):
    size = ARCHITECTURES[arch]["default_size"]
    return _public_builders.public_builder(
        func_name,
        arch=arch,
        build=lambda **kwargs: build_inception(arch=arch, **kwargs),
        summary=f"Instantiates the {title} architecture.",
        description=(
            f"{description}\nNo pretrained weights are published: `weights` is None or a "
            "path to a\n`.weights.h5` file. Layer names: see `se_keras.applications.inception`."
        ),
        example=f"include_top=False, input_shape=({size}, {size}, 3)",
        name=default_name,
        size=size,
        min_size=ARCHITECTURES[arch]["min_size"],
        options=[
            *_public_builders.se_options("inception"),
            Option("bn_epsilon", None, "BatchNorm epsilon; None for the family's default."),
            *_public_builders.PREPROCESSING_OPTIONS,
        ],
    )


SEBNInception = _public(
    "SEBNInception", "bn_inception", "SE-BN-Inception", "se_bn_inception",
    "BN-Inception (Ioffe & Szegedy 2015) in the layout of the authors' Caffe\n"
    "model, with an SE block on each Inception module's output. It has no\n"
    "residual blocks: `se_position` is accepted and ignored.",
)
SEInceptionV3 = _public(
    "SEInceptionV3", "inception_v3", "SE-Inception-v3", "se_inception_v3",
    "Inception-v3 (Szegedy et al. 2016) in the layout of\n"
    "`keras.applications.InceptionV3`, with an SE block on each module's\n"
    "output (mixed0 ... mixed10). It has no residual blocks: `se_position`\n"
    "is accepted and ignored.",
)
SEInceptionResNetV2 = _public(
    "SEInceptionResNetV2", "inception_resnet_v2", "SE-Inception-ResNet-v2",
    "se_inception_resnet_v2",
    "Inception-ResNet-v2 (Szegedy et al. 2017) in the layout of\n"
    "`keras.applications.InceptionResNetV2`, with an SE block on each\n"
    "residual branch before the addition (`se_position=\"standard\"`) and on\n"
    "the output of mixed_5b, mixed_6a and mixed_7a.",
)

# Public name -> builder (gathered in `se_keras.applications.MODELS`).
BUILDERS = {f.__name__: f for f in (SEBNInception, SEInceptionV3, SEInceptionResNetV2)}
