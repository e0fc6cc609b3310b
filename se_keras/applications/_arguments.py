"""The builders' argument checks, in keras.applications' order and wording.

Validation order (as in `keras.applications.resnet`): weights, classes,
input shape, pooling, classifier activation; then the family's own options;
then the SE options (ratio, gate, squeeze, position, stages). Every error
ends with "Received: arg=value". Deprecated argument values warn through
`warn_deprecated`, attributed to the user's call.
"""

import os
import sys
import warnings

import keras

from se_keras._validation import check_choice
from se_keras._validation import check_positive
from se_keras.layers.squeeze_excitation import GATES as SE_GATES
from se_keras.layers.squeeze_excitation import SQUEEZES as SE_SQUEEZES

POOLINGS = (None, "avg", "max")


def warn_deprecated(message):
    """A `DeprecationWarning` pointing at the first caller outside `se_keras.applications`.

    Builders reach their checks through a varying number of frames (public
    builder, family builder, helper), so a fixed `stacklevel` would blame
    library code instead of the call to change.

    Example:
    >>> warn_deprecated("`variant` is deprecated; use `layout`.")
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        "se_keras.applications"
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


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


def validate_keras_arguments(
    *, weights, include_top, classes, input_shape, pooling, classifier_activation,
    known_tags=None, default_size=224, min_size=32,
):
    """All of keras.applications' checks, in its order. Returns the input shape.

    Args:
        known_tags: the model's pretrained tags; None for a model without
            published weights, whose `weights` must be None or a
            `.weights.h5` file (`validate_file_weights`).
        default_size, min_size: the input size with the top, and the
            smallest one accepted.
        The others: the builder's keras.applications arguments.

    Returns:
        The input shape to build, as `obtain_input_shape` gives it.
    """
    if known_tags is None:
        validate_file_weights(weights)
        known_tags = ()
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


def validate_se_options(se_ratio, se_gate, se_squeeze):
    """Checks a builder's SE options under the builder's argument names.

    Example:
    >>> validate_se_options(16, "sigmoid", "avg")
    """
    check_positive("se_ratio", se_ratio)
    check_choice("se_gate", se_gate, SE_GATES)
    check_choice("se_squeeze", se_squeeze, SE_SQUEEZES)


def se_stage_set(se_stages, stage_count):
    """The stages (counted from 1) that get SE blocks: `se_stages`, or all for None.

    Example:
    >>> se_stage_set(None, 3)
    (1, 2, 3)
    """
    stages = tuple(range(1, stage_count + 1))
    chosen = stages if se_stages is None else tuple(se_stages)
    if not set(chosen) <= set(stages):
        raise ValueError(
            f"`se_stages` must be a subset of {stages}. Received: se_stages={se_stages!r}"
        )
    return chosen
