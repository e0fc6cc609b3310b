"""SE-VGG-16 with BatchNorm (Hu et al., arXiv 1709.01507; Simonyan & Zisserman 2015).

The paper trains VGG-16 from scratch with BatchNorm after every
convolution and reports 15.47 -> 15.48 GFLOPs for VGG-16 -> SE-VGG-16. The
plain network here (`se=False`) is torchvision's `vgg16_bn`: 3x3
convolutions with biases, BatchNorm, ReLU, 2x2 max pools, then the
classifier of `keras.applications.VGG16` (flatten, two 4096-unit fully
connected layers, each followed by dropout 0.5 as in the original VGG).
Its 138,365,992 parameters are keras' VGG16's 138,357,544 plus the
BatchNorm scales and offsets.

Where the SE block goes (`se_position`):

- "block" (default): after the last convolution's activation of each of
  the five blocks, before the pool (5 SE blocks): 15.483 GFLOPs at 224,
  the paper's 15.48.
- "conv": after every convolution's activation (13 SE blocks): 15.498
  GFLOPs.

Layer names (a stable contract), blocks b = 1..5 and convolutions i from 1:

    block{b}_conv{i}, block{b}_bn{i}, block{b}_relu{i}
    block{b}_se ("block") or block{b}_conv{i}_se ("conv")
    block{b}_pool
    flatten, fc1, fc1_dropout, fc2, fc2_dropout, predictions   the top
    avg_pool / max_pool                                         without the top

"""

import keras
from keras import layers

from se_keras.applications import _common

# Convolutions per block and their width (VGG configuration D).
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
SE_POSITIONS = ("block", "conv")


def build_vgg(
    *,
    blocks=VGG16_BLOCKS,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="se_vgg",
    se=True,
    se_ratio=16,
    se_gate="sigmoid",
    se_squeeze="avg",
    se_position="block",
    dropout_rate=0.5,
    bn_epsilon=1e-5,
    preprocessing=None,
    include_preprocessing=False,
):
    """Builds an (SE-)VGG with BatchNorm.

    Args:
        blocks: (convolutions, width) per block; `VGG16_BLOCKS` by default.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: as in `keras.applications`;
            `weights` is None or a path to a `.weights.h5` file.
        se: False builds the plain VGG-BN from the same code.
        se_ratio, se_gate, se_squeeze: `SqueezeExcitation` options.
        se_position: "block" or "conv" (see the module docstring).
        dropout_rate: dropout after fc1 and fc2.
        bn_epsilon: BatchNorm epsilon (PyTorch's 1e-5).
        preprocessing: fields of the model's `se_keras.Preprocessing` record to
            override (a dict or a record); see `se_keras.preprocessing`.
        include_preprocessing: normalize inside the model, so that it takes
            RGB pixels in [0, 255].

    Returns:
        A `keras.Model`.

    Example:
    >>> from se_keras.applications.vgg import build_vgg
    >>> model = build_vgg(blocks=((1, 16), (1, 32)), include_top=False)
    """
    input_shape = _common.validate_unpublished(
        weights=weights, include_top=include_top, classes=classes,
        input_shape=input_shape, pooling=pooling,
        classifier_activation=classifier_activation,
    )
    _common.validate_se_arguments(se_ratio, se_gate, se_squeeze, se_position, SE_POSITIONS)
    se_block = _common.se_block(se, se_ratio, se_gate, se_squeeze)
    data_format = keras.config.image_data_format()

    img_input, x = _common.input_with_preprocessing(
        input_tensor, input_shape, weights=weights, default_size=224,
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )
    for b, (convs, width) in enumerate(blocks, 1):
        for i in range(1, convs + 1):
            x = _common.conv(x, width, 3, name=f"block{b}_conv{i}", use_bias=True)
            x = _common.batch_norm(x, bn_epsilon, f"block{b}_bn{i}")
            x = layers.ReLU(name=f"block{b}_relu{i}")(x)
            if se_position == "conv":
                x = se_block(x, f"block{b}_conv{i}_se")
        if se_position == "block":
            x = se_block(x, f"block{b}_se")
        x = layers.MaxPooling2D(2, data_format=data_format, name=f"block{b}_pool")(x)

    if include_top:
        x = layers.Flatten(data_format=data_format, name="flatten")(x)
        for fc in ("fc1", "fc2"):
            x = layers.Dense(4096, activation="relu", name=fc)(x)
            if dropout_rate:
                x = layers.Dropout(dropout_rate, name=f"{fc}_dropout")(x)
        # `_common.head` cannot add this classifier: it global-pools first,
        # and VGG's top flattens. Under mixed precision the softmax runs in
        # float32, as there.
        policy = keras.config.dtype_policy().name
        x = layers.Dense(
            classes, activation=classifier_activation,
            dtype="float32" if policy.startswith("mixed") else None, name="predictions",
        )(x)
    else:
        x = _common.head(
            x, include_top=False, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation,
        )
    return _common.finish_model(input_tensor, img_input, x, name=name, weights=weights)


def SEVGG16(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="se_vgg16",
    se=True,
    se_ratio=16,
    se_gate="sigmoid",
    se_squeeze="avg",
    se_position="block",
    dropout_rate=0.5,
    bn_epsilon=1e-5,
    preprocessing=None,
    include_preprocessing=False,
):
    """Instantiates the SE-VGG-16 (with BatchNorm) architecture.

    Reference: Hu et al., "Squeeze-and-Excitation Networks" (arXiv
    1709.01507), on VGG-16 (Simonyan & Zisserman 2015) with BatchNorm. With
    the defaults, an SE block (r = 16) after each of the five conv blocks:
    15.48 GFLOPs at 224x224 (the paper: 15.47 -> 15.48). No pretrained
    weights are published.

    Args:
        include_top: whether to include the three fully connected layers.
        weights: None (random initialization) or a `.weights.h5` path.
        input_tensor: optional Keras tensor to use as image input.
        input_shape: optional shape tuple, at least 32x32; defaults to
            (224, 224, 3) with the top (whose fc1 size depends on it).
        pooling: None, "avg" or "max": global pooling when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of the top layer.
        name: the model's name.
        se: False builds the plain VGG-16-BN from the same code.
        se_ratio: SE reduction ratio r (width C // r).
        se_gate: "sigmoid", "hard_sigmoid", "tanh" or "relu".
        se_squeeze: "avg" or "max" global pooling.
        se_position: "block" (after each block's last convolution) or
            "conv" (after every convolution).
        dropout_rate: dropout after fc1 and fc2.
        bn_epsilon: BatchNorm epsilon.
        preprocessing: fields of the model's `se_keras.Preprocessing` record to
            override (a dict or a record); see `se_keras.preprocessing`.
        include_preprocessing: normalize inside the model, so that it takes
            RGB pixels in [0, 255].

    Returns:
        A `keras.Model`.

    Example:
    >>> from se_keras.applications import SEVGG16
    >>> model = SEVGG16(include_top=False, pooling="avg", input_shape=(64, 64, 3))
    """
    return build_vgg(
        blocks=VGG16_BLOCKS, include_top=include_top, weights=weights,
        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
        classes=classes, classifier_activation=classifier_activation, name=name,
        se=se, se_ratio=se_ratio, se_gate=se_gate, se_squeeze=se_squeeze,
        se_position=se_position, dropout_rate=dropout_rate, bn_epsilon=bn_epsilon,
        preprocessing=preprocessing, include_preprocessing=include_preprocessing,
    )


SEVGG16.arch = "vgg16_bn"

# Public name -> builder (gathered in `se_keras.applications.MODELS`).
BUILDERS = {"SEVGG16": SEVGG16}
