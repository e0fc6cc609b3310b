"""Precision: the float32 copy of a mixed precision model that exports serve.

A model trained under a mixed precision policy keeps float16 (or bfloat16)
compute in its config; CPU serving is slow and less robust in float16, so
the SavedModel and TFLite exports serve a float32 copy unless told to keep
the model's dtype.
"""

import numpy as np

_LOW_PRECISION = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def _float32_config(config):
    """A copy of a Keras config with every low-precision dtype policy set to float32."""
    if isinstance(config, list):
        return [_float32_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        name = config.get("config", {}).get("name")
        if name in _LOW_PRECISION:
            return {**config, "config": {**config["config"], "name": "float32"}}
        return config
    return {
        k: ("float32" if k == "dtype" and v in _LOW_PRECISION else _float32_config(v))
        for k, v in config.items()
    }


def _is_low_precision(model):
    return any(
        layer.dtype_policy.name in _LOW_PRECISION or layer.compute_dtype != "float32"
        for layer in model.layers
        if layer.__class__.__name__ != "InputLayer"
    )


def float32_model(model):
    """The model itself if it computes in float32, else a float32 clone with its weights.

    The clone is rebuilt from the model's config with every dtype policy
    set to float32, and the weights are copied (cast) one by one.

    Args:
        model: a Keras model that can be rebuilt from its config.

    Returns:
        `model`, or a float32 `keras.Model` of the same class.

    Raises:
        ValueError: if the config cannot be rebuilt or the copy's weights
            differ in shape from the model's.

    Example:
    >>> import keras
    >>> from se_keras.applications import SEResNet20
    >>> keras.config.set_dtype_policy("mixed_float16")
    >>> mixed = SEResNet20()
    >>> keras.config.set_dtype_policy("float32")
    >>> float32_model(mixed).layers[1].compute_dtype
    'float32'
    """
    import keras

    if not _is_low_precision(model):
        return model
    config = _float32_config(model.get_config())
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = type(model).from_config(config)
    except Exception as error:
        raise ValueError(
            "Could not rebuild a float32 copy of the model from its config "
            f"({error}); pass keep_dtype=True to export it as it is. "
            f"Received: model={model.name!r}"
        ) from error
    finally:
        keras.config.set_dtype_policy(previous)
    if [tuple(w.shape) for w in clone.weights] != [tuple(w.shape) for w in model.weights]:
        raise ValueError(
            "The float32 copy of the model has different weights than the model. "
            f"Received: model={model.name!r}"
        )
    for target, source in zip(clone.weights, model.weights):
        target.assign(np.asarray(keras.ops.convert_to_numpy(source), dtype=target.dtype))
    return clone
