"""The two ends of every builder's functional model.

The opening: the input layer (wrapping a user's `input_tensor`), the
model's `se_keras.Preprocessing` record (the weights', then the model's
size, then the user's overrides) and the `ImagePreprocessing` layer
("preprocessing") that every model puts first. The ending: the
`keras.Model` over the graph's sources, with its weights loaded through
`se_keras.weights.load_weights`.
"""

import os

import keras

from se_keras import preprocessing as preprocessing_lib
from se_keras.weights import load_weights


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


def open_model(input_tensor, input_shape, record):
    """The model's input and its `ImagePreprocessing` layer ("preprocessing") for `record`.

    Returns:
        `(img_input, x)`: the input tensor and the preprocessing layer's output.
    """
    img_input = make_input(input_tensor, input_shape)
    x = preprocessing_lib.ImagePreprocessing(
        record, data_format=keras.config.image_data_format(), name=preprocessing_lib.LAYER_NAME
    )(img_input)
    return img_input, x


def input_with_preprocessing(
    input_tensor, input_shape, *, weights, default_size, preprocessing=None,
    include_preprocessing=False, crop_pct=0.875,
):
    """`open_model` with the record of `weights` (None or a file) and the user's overrides."""
    record = preprocessing_record(
        input_shape=input_shape,
        base=weights_preprocessing(weights, default_size, crop_pct),
        preprocessing=preprocessing,
        include_preprocessing=include_preprocessing,
    )
    return open_model(input_tensor, input_shape, record)


def model_inputs(input_tensor, img_input):
    """What `keras.Model` takes as inputs (the graph's sources for an `input_tensor`)."""
    if input_tensor is None:
        return img_input
    return keras.utils.get_source_inputs(input_tensor)


def finish_model(input_tensor, img_input, outputs, *, name, weights=None, **load_options):
    """The functional model, with `weights` loaded unless None.

    Args:
        input_tensor, img_input: the builder's `input_tensor` and the input
            `open_model` returned.
        outputs: the graph's output.
        name: the model's name.
        weights: None, or what `se_keras.weights.load_weights` takes (a
            `.weights.h5` path, a registry tag, a timm checkpoint).
        **load_options: passed to `load_weights` (`checkpoint`, `layout`).
    """
    model = keras.Model(model_inputs(input_tensor, img_input), outputs, name=name)
    if weights is not None:
        load_weights(model, weights, **load_options)
    return model
