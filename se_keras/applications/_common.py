"""What every builder in `se_keras.applications` shares: argument validation
in keras.applications' order and wording, the input tensor, the head,
PyTorch-compatible padding, and the opening and ending of the four families
without public checkpoints (inception, mobilenet, shufflenet, vgg).

Validation order (as in `keras.applications.resnet`): weights, classes,
input shape, pooling, classifier activation. Every error ends with
"Received: arg=value".
"""

import os

import keras
from keras import layers

from se_keras import preprocessing as preprocessing_lib
from se_keras._validation import check_choice
from se_keras._validation import check_positive
from se_keras.layers import SqueezeExcitation
from se_keras.layers.squeeze_excitation import GATES as SE_GATES
from se_keras.layers.squeeze_excitation import SQUEEZES as SE_SQUEEZES

POOLINGS = (None, "avg", "max")


def channel_axis():
    return -1 if keras.config.image_data_format() == "channels_last" else 1


def is_pretrained(weights, known_tags):
    """True for ImageNet weights ("imagenet" or a tag), whose head has 1000 classes.

    A path may hold the user's own fine-tuned weights, so it is not held to
    the ImageNet rules (1000 classes, softmax, 3 channels).
    """
    return weights == "imagenet" or (isinstance(weights, str) and weights in known_tags)


def validate_data_format():
    """channels_first needs a GPU: TensorFlow's CPU convolutions are NHWC only."""
    data_format = keras.config.image_data_format()
    if data_format == "channels_first" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            raise ValueError(
                "The 'channels_first' data format needs a GPU with TensorFlow: "
                "its CPU convolutions support only channels_last (NHWC). Use "
                "keras.config.set_image_data_format('channels_last') on CPU. "
                f"Received: image_data_format={data_format!r}"
            )


def validate_weights(weights, known_tags):
    """`weights` is None, "imagenet" (if the model has any tags), a known tag or a file."""
    if weights is None or weights in known_tags or (weights == "imagenet" and known_tags):
        return
    if isinstance(weights, (str, os.PathLike)) and os.path.exists(weights):
        return
    tags = ", ".join(repr(t) for t in sorted(known_tags)) or "none"
    raise ValueError(
        "The `weights` argument should be either `None` (random "
        "initialization), `'imagenet'` (the best ImageNet-1k checkpoint), one "
        f"of this model's pretrained tags ({tags}), or the path to a weights "
        "file (.weights.h5, .safetensors or .pth) to be loaded. "
        f"Received: weights={weights!r}"
    )


def validate_classes(weights, known_tags, include_top, classes):
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"`classes` must be a positive integer. Received: classes={classes!r}"
        )
    if is_pretrained(weights, known_tags) and include_top and classes != 1000:
        raise ValueError(
            "If using ImageNet `weights` with `include_top=True`, `classes` "
            f"should be 1000. Received: classes={classes}"
        )


def obtain_input_shape(input_shape, default_size, min_size, pretrained, require_flatten):
    """keras.applications' input shape rules, for models that end in global pooling.

    One deliberate difference: with pretrained weights and `include_top=True`
    any static size is accepted, not only the default, because these models
    are fully convolutional and their published accuracies are measured at
    several sizes (timm evaluates at `test_input_size`).
    """
    channels_first = keras.config.image_data_format() == "channels_first"
    if input_shape is None:
        if require_flatten:
            return (3, default_size, default_size) if channels_first else (
                default_size, default_size, 3)
        return (3, None, None) if channels_first else (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be a tuple of three integers. "
            f"Received: input_shape={input_shape}"
        )
    channels = input_shape[0] if channels_first else input_shape[-1]
    spatial = input_shape[1:] if channels_first else input_shape[:2]
    if pretrained and channels != 3:
        raise ValueError(
            "The input must have 3 channels to load ImageNet weights. "
            f"Received: input_shape={input_shape}"
        )
    if channels is None:
        raise ValueError(
            "The number of input channels must be known. "
            f"Received: input_shape={input_shape}"
        )
    if any(s is not None and s < min_size for s in spatial):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}. "
            f"Received: input_shape={input_shape}"
        )
    if require_flatten and None in spatial:
        raise ValueError(
            "If `include_top` is True, you should specify a static "
            f"`input_shape`. Received: input_shape={input_shape}"
        )
    return input_shape


def validate_pooling(pooling):
    check_choice("pooling", pooling, POOLINGS)


def validate_classifier_activation(classifier_activation, pretrained, include_top):
    if not (include_top and pretrained):
        return
    if classifier_activation not in (None, "softmax"):
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the "
            "`classifier_activation` argument when using ImageNet weights, "
            "with `include_top=True`. "
            f"Received: classifier_activation={classifier_activation!r}"
        )


def validate_common(
    *,
    weights,
    known_tags,
    include_top,
    classes,
    input_shape,
    default_size,
    min_size,
    pooling,
    classifier_activation,
):
    """All of keras.applications' checks, in its order. Returns the input shape."""
    validate_data_format()
    validate_weights(weights, known_tags)
    validate_classes(weights, known_tags, include_top, classes)
    pretrained = is_pretrained(weights, known_tags)
    shape = obtain_input_shape(
        input_shape, default_size, min_size, pretrained, require_flatten=include_top
    )
    validate_pooling(pooling)
    validate_classifier_activation(classifier_activation, pretrained, include_top)
    return shape


def make_input(input_tensor, input_shape):
    """The model's input layer, wrapping `input_tensor` if one is given."""
    if input_tensor is None:
        return keras.Input(shape=input_shape, name="input_layer")
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape, name="input_layer")
    return input_tensor


def weights_preprocessing(weights, default_size, crop_pct=0.875):
    """The record that weights imply before any override: for None or a weights file.

    A file's record is read from its sidecar (`x.preprocessing.json`, which
    `se_keras.weights.loading.save_weights_atomically` and `se-keras convert`
    write); without one, the defaults (ImageNet mean and std, bilinear)
    with the file as the origin.
    (Registry checkpoints bring their own row's record; see resnet.py.)
    """
    base = preprocessing_lib.Preprocessing(size=default_size, crop_pct=crop_pct)
    if weights is None:
        return base
    return preprocessing_lib.read_sidecar(weights) or base.replace(weights=os.fspath(weights))


def preprocessing_record(*, input_shape, base, preprocessing=None, include_preprocessing=False):
    """The model's `Preprocessing`: `base` (the weights'), the model's size, then the user's.

    Args:
        input_shape: the model's input shape (3-tuple, either data format).
        base: the record the weights imply (`weights_preprocessing` or a
            registry row's).
        preprocessing: None, a `Preprocessing` or a dict of fields that
            override `base` (e.g. {"crop_pct": 1.0} for a model fine-tuned
            without a crop, or a saved record to rebuild a model exactly).
        include_preprocessing: normalize inside the model.

    Returns:
        A `Preprocessing`.
    """
    channels_first = keras.config.image_data_format() == "channels_first"
    spatial = tuple(input_shape[1:] if channels_first else input_shape[:2])
    static = spatial[0] if spatial[0] is not None and spatial[0] == spatial[1] else None
    record = base.replace(size=static) if static is not None else base
    record = record.replace(**preprocessing_lib.overrides_of(preprocessing))
    preprocessing_lib.check_size(record, static)
    if include_preprocessing:
        record = record.replace(normalize_in_model=True)
    return record


def apply_preprocessing(img_input, record):
    """The `ImagePreprocessing` layer ("preprocessing") that every builder puts first."""
    return preprocessing_lib.ImagePreprocessing(
        record, data_format=keras.config.image_data_format(), name=preprocessing_lib.LAYER_NAME
    )(img_input)


def input_with_preprocessing(
    input_tensor, input_shape, *, weights, default_size, preprocessing=None,
    include_preprocessing=False, crop_pct=0.875,
):
    """The model's input and its `ImagePreprocessing` layer, for weights None or a file.

    Returns:
        `(img_input, x)`: the input tensor and the preprocessing layer's output.
    """
    record = preprocessing_record(
        input_shape=input_shape,
        base=weights_preprocessing(weights, default_size, crop_pct),
        preprocessing=preprocessing,
        include_preprocessing=include_preprocessing,
    )
    img_input = make_input(input_tensor, input_shape)
    return img_input, apply_preprocessing(img_input, record)


def model_inputs(input_tensor, img_input):
    """What `keras.Model` takes as inputs (the graph's sources for an `input_tensor`)."""
    if input_tensor is None:
        return img_input
    return keras.utils.get_source_inputs(input_tensor)


def head(x, *, include_top, pooling, classes, classifier_activation, dropout_rate=0.0):
    """Global pooling and the classifier, keras.applications' layer names.

    Under a mixed precision policy the classifier runs in float32, so that
    the softmax and the loss are computed in full precision.
    """
    data_format = keras.config.image_data_format()
    if include_top:
        x = layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="dropout")(x)
        policy = keras.config.dtype_policy().name
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            dtype="float32" if policy.startswith("mixed") else None,
            name="predictions",
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    return x


def conv(x, filters, kernel_size, strides=1, groups=1, name=None, use_bias=False):
    """A convolution padded like PyTorch's `padding=kernel_size // 2`.

    Strided convolutions get an explicit symmetric ZeroPadding2D and "valid"
    padding: TensorFlow's "same" pads more on the bottom/right for stride 2,
    which shifts every window and breaks converted weights. At stride 1 an
    odd kernel pads symmetrically under "same", so no extra layer is needed.
    """
    data_format = keras.config.image_data_format()
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(
            kernel_size // 2, data_format=data_format, name=f"{name}_pad"
        )(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=use_bias,
        data_format=data_format,
        name=name,
    )(x)


def batch_norm(x, epsilon, name):
    # momentum 0.9 in Keras is PyTorch's momentum 0.1.
    return layers.BatchNormalization(
        axis=channel_axis(), epsilon=epsilon, momentum=0.9, name=name
    )(x)


def max_pool_3x3_s2(x, ceil_mode, name):
    """PyTorch's stem max pool, after a ReLU (so zero padding equals -inf padding).

    `ceil_mode=False`: `MaxPool2d(3, 2, padding=1)` (timm, torchvision).
    `ceil_mode=True`: `MaxPool2d(3, 2, ceil_mode=True)` (the Caffe-derived
    legacy models): no left padding, and a last window that may hang over the
    bottom/right edge. Padding one zero at the end and pooling "valid" gives
    exactly ceil((H - 3) / 2) + 1 outputs for every H.
    """
    data_format = keras.config.image_data_format()
    padding = ((0, 1), (0, 1)) if ceil_mode else 1
    x = layers.ZeroPadding2D(padding, data_format=data_format, name=f"{name}_pad")(x)
    return layers.MaxPooling2D(3, strides=2, data_format=data_format, name=name)(x)


# Helpers of the builders without public checkpoints (Inception, MobileNet,
# ShuffleNet, VGG).

def validate_file_weights(weights):
    """`weights` is None or a weights file: for models with no public checkpoint.

    Checked first, like keras.applications' weights check, so that
    "imagenet" fails with a clear message instead of a missing-file error
    after the model is built.
    """
    if weights is None:
        return
    if (
        isinstance(weights, (str, os.PathLike))
        and os.fspath(weights) != "imagenet"
        and os.path.isfile(weights)
    ):
        return
    raise ValueError(
        "The `weights` argument should be either `None` (random "
        "initialization) or the path to a `.weights.h5` file to be loaded: "
        "no pretrained weights are published for this model. "
        f"Received: weights={weights!r}"
    )


def validate_se_options(se_ratio, se_gate, se_squeeze):
    """Checks a builder's SE options under the builder's argument names.

    Example:
    >>> validate_se_options(16, "sigmoid", "avg")
    """
    check_positive("se_ratio", se_ratio)
    check_choice("se_gate", se_gate, SE_GATES)
    check_choice("se_squeeze", se_squeeze, SE_SQUEEZES)


def squeeze_excitation(x, *, ratio, gate, squeeze, name):
    """A `SqueezeExcitation` layer (the paper's C // r width) applied to `x`."""
    return SqueezeExcitation(
        ratio=ratio,
        gate=gate,
        squeeze=squeeze,
        data_format=keras.config.image_data_format(),
        name=name,
    )(x)


def depthwise_conv(x, kernel_size, strides=1, name=None, depth_multiplier=1):
    """A bias-free depthwise convolution padded like PyTorch, as `conv` is."""
    data_format = keras.config.image_data_format()
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(
            kernel_size // 2, data_format=data_format, name=f"{name}_pad"
        )(x)
        padding = "valid"
    return layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding=padding,
        depth_multiplier=depth_multiplier,
        use_bias=False,
        data_format=data_format,
        name=name,
    )(x)


# The opening and ending of the builders without public checkpoints.


def validate_unpublished(
    *, weights, include_top, classes, input_shape, pooling, classifier_activation,
    default_size=224, min_size=32,
):
    """keras.applications' checks, in its order, for a model without published weights.

    `weights` must be None or a `.weights.h5` file (`validate_file_weights`);
    then classes, input shape, pooling and classifier activation.

    Returns:
        The input shape to build, as `obtain_input_shape` gives it.
    """
    validate_file_weights(weights)
    return validate_common(
        weights=weights, known_tags=(), include_top=include_top, classes=classes,
        input_shape=input_shape, default_size=default_size, min_size=min_size,
        pooling=pooling, classifier_activation=classifier_activation,
    )


def validate_se_arguments(se_ratio, se_gate, se_squeeze, se_position, positions):
    """The SE options, after the family's own checks: ratio, gate, squeeze, then position."""
    validate_se_options(se_ratio, se_gate, se_squeeze)
    check_choice("se_position", se_position, positions)


def se_block(se, se_ratio, se_gate, se_squeeze):
    """`block(x, name)`: a `SqueezeExcitation` layer `name` on `x`, or `x` itself if not `se`."""

    def block(x, name):
        if not se:
            return x
        return squeeze_excitation(
            x, ratio=se_ratio, gate=se_gate, squeeze=se_squeeze, name=name
        )

    return block


def finish_model(input_tensor, img_input, outputs, *, name, weights):
    """The functional model, with `weights` (None or a `.weights.h5` path) loaded."""
    model = keras.Model(model_inputs(input_tensor, img_input), outputs, name=name)
    if weights is not None:
        from se_keras.weights.keras_files import load_keras_weights

        load_keras_weights(model, weights)
    return model
