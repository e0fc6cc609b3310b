"""Argument checks shared by every module, with keras.applications' error wording.

Every error names the argument and the value received: "... Received: arg=value".
"""


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices`.

    Example:
    >>> check_choice("pooling", "avg", (None, "avg", "max"))
    """
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}"
        )


def check_positive(name, value, allow_none=False, integer=False):
    """Raises ValueError unless `value` is a positive number (an int if `integer`).

    Example:
    >>> check_positive("ratio", 16)
    """
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        allowed = "a positive integer" if integer else "a positive number"
        raise ValueError(
            f"`{name}` must be {allowed}{' or None' if allow_none else ''}. "
            f"Received: {name}={value!r}"
        )


def require_tensorflow_backend(what):
    """Raises unless Keras runs on TensorFlow: for the parts only TensorFlow does.

    The layers, builders and weights run on every Keras backend; training
    (tf.data, tf.distribute), run checkpoints (tf.train.Checkpoint), the
    SavedModel export and the benchmark need TensorFlow's.

    Example:
    >>> require_tensorflow_backend("se-keras train")  # with KERAS_BACKEND=tensorflow
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{what} needs Keras' TensorFlow backend (tf.data, tf.distribute, tf.train "
            "checkpoints, SavedModel); run it with KERAS_BACKEND=tensorflow. The layers, "
            "builders and weights work on every backend. "
            f"Received: KERAS_BACKEND={backend!r}"
        )
