"""Loading weights into SE-ResNet models: registry tags, Keras files, timm checkpoints.

A registry checkpoint is downloaded and verified once (`download.fetch`),
converted tensor by tensor (`timm_converter`), and the converted Keras
weights are cached as `<arch>.<tag>[_notop].weights.h5` beside it, so a
second call reads only that file. Every cache file is written under a
temporary name and renamed when complete.
"""

import os
import re
import warnings

from se_keras._files import atomic_path
from se_keras.weights import download
from se_keras.weights import registry
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
    from se_keras import preprocessing as preprocessing_lib

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
        convert_into(model, read_checkpoint(path), checkpoint.variant)

    download.fetch(checkpoint, check=convert)
    with atomic_path(converted, suffix=".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)


def load_weights(model, weights, checkpoint=None, variant="timm"):
    """Loads `weights` into an SE-ResNet family model built by se_keras.

    The weights' preprocessing is not set here: the builder puts it in the
    model's record (`se_keras.get_preprocessing`) before loading.

    Args:
        model: the model, built in the layout the weights need.
        weights: "imagenet", a registry tag, or a path to a `.weights.h5`
            file or a timm checkpoint (`.safetensors`, `.pth`).
        checkpoint: the `registry.Checkpoint` for "imagenet" or a tag
            (the builders resolve it).
        variant: the key layout of a timm checkpoint file, "timm" or
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
        convert_into(model, read_checkpoint(path), variant)
    else:
        raise ValueError(
            "A weights file must end in .weights.h5 (Keras) or .safetensors / "
            f".pth (timm). Received: weights={weights!r}"
        )


def _builder_for_arch(arch, timm_name):
    from se_keras.applications import resnet

    for builder in resnet.BUILDERS.values():
        if builder.arch == arch:
            return builder
    known = ", ".join(sorted(resnet.ARCHITECTURES))
    raise ValueError(
        f"No se_keras builder for this timm architecture; known: {known} (and "
        f"their plain twins without 'se'). Received: timm_name={timm_name!r}"
    )


def parse_timm_name(timm_name):
    """Maps a timm model name to (architecture, variant, has SE).

    "seresnet50.a1_in1k" -> ("seresnet50", "timm", True);
    "legacy_seresnet50" -> ("seresnet50", "legacy", True);
    "resnet50" -> ("seresnet50", "timm", False): a plain timm ResNet loads
    into the `se=False` twin of the SE builder. timm's deprecated "gluon_"
    names map to their resnet.py architecture.

    Example:
    >>> parse_timm_name("legacy_seresnext50_32x4d.in1k")
    ('seresnext50_32x4d', 'legacy', True)
    """
    from se_keras.applications import resnet

    name = re.sub(r"^gluon_", "", timm_name.split(".", 1)[0])
    variant = "timm"
    if name.startswith("legacy_"):
        name, variant = name[len("legacy_"):], "legacy"
    if name not in resnet.ARCHITECTURES and f"se{name}" in resnet.ARCHITECTURES:
        return f"se{name}", variant, False
    return name, variant, True


def from_timm(timm_name, checkpoint_path, **builder_kwargs):
    """Builds the Keras model of a timm architecture and loads a timm checkpoint into it.

    Args:
        timm_name: timm's model name, with or without a tag
            ("seresnet50", "legacy_seresnet50.in1k", "senet154.gluon_in1k").
        checkpoint_path: a `.safetensors` or `.pth` file in that model's
            key layout.
        **builder_kwargs: passed to the builder (`include_top`,
            `classifier_activation`, `input_shape`, ...).

    Returns:
        The `keras.Model` with the checkpoint's weights. Its preprocessing
        record (`se_keras.get_preprocessing`) is the registry row's that
        `timm_name` means (timm's own eval settings for it, e.g. bilinear
        for most legacy models), with the file as the weights' origin;
        ImageNet defaults for a name without a registry row.

    Example:
    >>> model = from_timm("legacy_seresnet50", "se_resnet50-ce0d4300.pth")  # doctest: +SKIP
    """
    arch, variant, se = parse_timm_name(timm_name)
    builder = _builder_for_arch(arch, timm_name)
    if not os.path.exists(checkpoint_path):
        raise ValueError(
            f"Checkpoint file not found. Received: checkpoint_path={str(checkpoint_path)!r}"
        )
    kwargs = {"variant": variant, **builder_kwargs}
    if not se:
        kwargs["se"] = False
    row = registry.for_timm_name(timm_name) if se else None
    if row is not None:
        from se_keras.preprocessing import overrides_of

        record = row.preprocessing_record().to_dict()
        record.pop("size")  # the model's own input size decides
        kwargs["preprocessing"] = {**record, "weights": str(checkpoint_path),
                                   **overrides_of(kwargs.get("preprocessing"))}
    return builder(weights=str(checkpoint_path), **kwargs)
