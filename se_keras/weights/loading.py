"""Loading weights into a built model: registry tags, Keras files, timm checkpoints.

This module never builds a model: the builders (`se_keras.applications`)
build one in the checkpoint's layout and hand it here, so the weights layer
sits below the models (keras-hub's cut). Mapping a timm model *name* to a
builder is `se_keras.applications.timm_names`.

A registry checkpoint is downloaded and verified once (`download.fetch`),
converted tensor by tensor (`timm_converter`), and the converted Keras
weights are cached as `<arch>.<tag>[_notop].weights.h5` beside it, so a
second call reads only that file. Every cache file is written under a
temporary name and renamed when complete.
"""

import warnings

from se_keras import preprocessing as preprocessing_lib
from se_keras._files import atomic_path
from se_keras.weights import download
from se_keras.weights.keras_files import load_keras_weights
from se_keras.weights.keras_files import WeightsFileError
from se_keras.weights.readers import read_checkpoint
from se_keras.weights.timm_converter import convert_into
from se_keras.weights.timm_converter import has_classifier

KERAS_SUFFIXES = (".weights.h5", ".h5")
TIMM_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def save_weights_atomically(model, path, record=None):
    """Writes `model.save_weights` to a temporary name, then renames it to `path`.

    The model's preprocessing record (or `record`) is written beside the
    weights (`x.preprocessing.json`), where the builders read it back when
    given `weights="x.weights.h5"`; a weights file alone does not say how
    its model was fed.

    Example:
    >>> save_weights_atomically(model, "model.weights.h5")  # doctest: +SKIP
    """
    if record is None:
        try:
            record = preprocessing_lib.get_preprocessing(model)
        except ValueError:
            record = None  # a model without a record: nothing to keep
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)
    if record is not None:
        preprocessing_lib.write_sidecar(path, record)


def converted_path(checkpoint, include_top=True):
    """Where the converted Keras weights of a registry checkpoint are cached.

    Named after the verified source file's hash, so that a file converted
    from another source (an older registry row) is never taken for it.

    Example:
    >>> from se_keras.weights import registry
    >>> converted_path(registry.get("seresnet50", "legacy_in1k")).name
    'seresnet50.legacy_in1k-ce0d4300.weights.h5'
    """
    source = checkpoint.sha256 or checkpoint.sha256_prefix
    source = f"-{source[:8]}" if source else ""
    suffix = "" if include_top else "_notop"
    return download.cache_dir() / f"{checkpoint.name}{source}{suffix}.weights.h5"


def _load_registered(model, checkpoint):
    converted = converted_path(checkpoint, has_classifier(model))
    if converted.exists():
        try:
            load_keras_weights(model, converted)
            return
        except WeightsFileError as error:
            # A converted file is derived data: rebuild it from the cached
            # (hash-checked) checkpoint, as a damaged download is fetched again.
            warnings.warn(f"{error} Converting the checkpoint again.", stacklevel=4)
            converted.unlink(missing_ok=True)

    def convert(path):
        # Converting is the tensor check: every tensor must land in the
        # model with the right shape before the download is trusted.
        convert_into(model, read_checkpoint(path), checkpoint.layout)

    download.fetch(checkpoint, check=convert)
    with atomic_path(converted, suffix=".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)


def load_weights(model, weights, checkpoint=None, layout="timm"):
    """Loads `weights` into an SE-ResNet family model built by se_keras.

    The weights' preprocessing is not set here: the builder puts it in the
    model's record (`se_keras.get_preprocessing`) before loading.

    Args:
        model: the model, built in the layout the weights need.
        weights: "imagenet", a registry tag, or a path to a `.weights.h5`
            file or a timm checkpoint (`.safetensors`, `.pth`).
        checkpoint: the `registry.Checkpoint` for "imagenet" or a tag
            (the builders resolve it).
        layout: the key layout of a timm checkpoint file, "timm" or
            "legacy" (the layout the model was built in).

    Example:
    >>> from se_keras.applications import SEResNet50
    >>> model = SEResNet50(weights=None)
    >>> load_weights(model, "seresnet50.safetensors")  # doctest: +SKIP
    """
    if checkpoint is not None:
        _load_registered(model, checkpoint)
        return
    path = str(weights)
    if path.endswith(KERAS_SUFFIXES):
        load_keras_weights(model, path)
    elif path.endswith(TIMM_SUFFIXES):
        convert_into(model, read_checkpoint(path), layout)
    else:
        raise ValueError(
            "A weights file must end in .weights.h5 (Keras) or .safetensors / "
            f".pth (timm). Received: weights={weights!r}"
        )
