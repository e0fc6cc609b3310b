"""Keras weights files (`.weights.h5`) read with errors that name the file.

h5py reports a truncated or empty file with a traceback about HDF5
superblocks or missing datasets. A user needs to hear which file is broken
and that the file (not the code) is the problem.
"""

import os


class WeightsFileError(ValueError):
    """A weights file cannot be read into the model (truncated, empty or foreign)."""


def load_keras_weights(model, path):
    """`model.load_weights(path)`; a broken or mismatched file raises `WeightsFileError`.

    Args:
        model: the Keras model.
        path: a `.weights.h5` file.

    Raises:
        WeightsFileError: naming the file, its size and the cause.

    Example:
    >>> load_keras_weights(model, "model.weights.h5")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsFileError(f"No such weights file. Received: weights={path!r}")
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        size = os.path.getsize(path)
        raise WeightsFileError(
            f"Cannot load the weights file {path} ({size} bytes) into {model.name}: "
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}. A "
            "truncated, empty or foreign file must be written again; weights of another "
            f"architecture need the matching builder. Received: weights={path!r}"
        ) from error
