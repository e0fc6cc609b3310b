"""SE-VGG-16 with BatchNorm (Hu et al., arXiv 1709.01507; Simonyan & Zisserman 2015).

The paper trains VGG-16 from scratch with BatchNorm after every
convolution and reports 15.47 -> 15.48 GFLOPs for VGG-16 -> SE-VGG-16. The
plain network here (`se=False`) is torchvision's `vgg16_bn`: 3x3
convolutions with biases, BatchNorm, ReLU, 2x2 max pools, then the
classifier of `keras.applications.VGG16` (flatten, two 4096-unit fully
connected layers, each followed by dropout 0.5 as in the original VGG).
Its 138,365,992 parameters are keras' VGG16's 138,357,544 plus the
BatchNorm scales and offsets.

Where the SE block goes (`se_position`, the vocabulary of
`se_keras.applications._se_positions`):

| value | where | former name |
|---|---|---|
| "standard" (default) | after the last convolution's activation of each of the five blocks, before the pool (5 SE blocks): 15.483 GFLOPs at 224, the paper's 15.48 | "block" |
| "inner" | after every convolution's activation (13 SE blocks): 15.498 GFLOPs | "conv" |

Layer names (a stable contract), blocks b = 1..5 and convolutions i from 1:

    block{b}_conv{i}, block{b}_bn{i}, block{b}_relu{i}
    block{b}_se ("standard") or block{b}_conv{i}_se ("inner")
    block{b}_pool
    flatten, fc1, fc1_dropout, fc2, fc2_dropout, predictions   the top
    avg_pool / max_pool                                         without the top

"""

import keras
from keras import layers

from se_keras.applications import _arguments
from se_keras.applications import _assembly
from se_keras.applications import _blocks
from se_keras.applications import _public_builders
from se_keras.applications import _se_positions

# Convolutions per block and their width (VGG configuration D).
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def build_vgg(
    *, blocks=VGG16_BLOCKS,
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
    classes=1000, classifier_activation="softmax", name="se_vgg",
    se=True, se_ratio=16, se_gate="sigmoid", se_squeeze="avg", se_position="standard",
    dropout_rate=0.5, bn_epsilon=1e-5, preprocessing=None, include_preprocessing=False,
):
    """Builds an (SE-)VGG with BatchNorm.

    Args:
        blocks: (convolutions, width) per block; `VGG16_BLOCKS` by default.
        The others: as documented on `SEVGG16` (`se_position`: "standard"
            or "inner", see the module docstring).

    Returns:
        A `keras.Model`.

    Example:
    >>> from se_keras.applications.vgg import build_vgg
    >>> model = build_vgg(blocks=((1, 16), (1, 32)), include_top=False)
    """
    input_shape = _arguments.validate_keras_arguments(
        weights=weights, include_top=include_top, classes=classes, input_shape=input_shape,
        pooling=pooling, classifier_activation=classifier_activation,
    )
    _arguments.validate_se_options(se_ratio, se_gate, se_squeeze)
    se_position = _se_positions.resolve("vgg", se_position)
    se_block = _blocks.se_block(se, ratio=se_ratio, gate=se_gate, squeeze=se_squeeze)
    data_format = keras.config.image_data_format()

    img_input, x = _assembly.input_with_preprocessing(
        input_tensor, input_shape, weights=weights, default_size=224,
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )
    for b, (convs, width) in enumerate(blocks, 1):
        for i in range(1, convs + 1):
            x = _blocks.conv(x, width, 3, name=f"block{b}_conv{i}", use_bias=True)
            x = _blocks.batch_norm(x, bn_epsilon, f"block{b}_bn{i}")
            x = layers.ReLU(name=f"block{b}_relu{i}")(x)
            if se_position == _se_positions.INNER:
                x = se_block(x, f"block{b}_conv{i}_se")
        if se_position == _se_positions.STANDARD:
            x = se_block(x, f"block{b}_se")
        x = layers.MaxPooling2D(2, data_format=data_format, name=f"block{b}_pool")(x)

    if include_top:
        x = layers.Flatten(data_format=data_format, name="flatten")(x)
        for fc in ("fc1", "fc2"):
            x = layers.Dense(4096, activation="relu", name=fc)(x)
            if dropout_rate:
                x = layers.Dropout(dropout_rate, name=f"{fc}_dropout")(x)
        # Not `_blocks.head`, which global-pools first: VGG's top flattens.
        x = _blocks.classifier(x, classes, classifier_activation)
    else:
        x = _blocks.head(
            x, include_top=False, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation,
        )
    return _assembly.finish_model(input_tensor, img_input, x, name=name, weights=weights)


SEVGG16 = _public_builders.public_builder(
    "SEVGG16",
    arch="vgg16_bn",
    build=lambda **kwargs: build_vgg(blocks=VGG16_BLOCKS, **kwargs),
    summary="Instantiates the SE-VGG-16 (with BatchNorm) architecture.",
    description=(
        "On VGG-16 (Simonyan & Zisserman 2015) with BatchNorm. With the defaults,\n"
        "an SE block (r = 16) after each of the five conv blocks: 15.48 GFLOPs at\n"
        "224x224 (the paper: 15.47 -> 15.48). No pretrained weights are published."
    ),
    example='include_top=False, pooling="avg", input_shape=(64, 64, 3)',
    name="se_vgg16",
    keras_docs={
        "include_top": "whether to include the three fully connected layers.",
        "input_shape": "optional shape tuple, at least 32x32; defaults to (224, 224, 3) "
                       "with the top (whose fc1 size depends on it).",
    },
    options=[
        *_public_builders.se_options("vgg"),
        _public_builders.Option("dropout_rate", 0.5, "dropout after fc1 and fc2."),
        _public_builders.Option("bn_epsilon", 1e-5, "BatchNorm epsilon."),
        *_public_builders.PREPROCESSING_OPTIONS,
    ],
)

# Public name -> builder (gathered in `se_keras.applications.MODELS`).
BUILDERS = {"SEVGG16": SEVGG16}
