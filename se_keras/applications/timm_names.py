"""timm model names -> se_keras builders: `parse_timm_name` and `from_timm`.

This sits above both the builders and the weights package (keras-hub's
cut: converters import models, models never import converters): it picks
the builder for a timm name and lets the builder load the checkpoint.
"""

import os
import re

from se_keras.applications import resnet
from se_keras.preprocessing import overrides_of
from se_keras.weights import registry


def parse_timm_name(timm_name):
    """Maps a timm model name to (architecture, layout, has SE).

    "seresnet50.a1_in1k" -> ("seresnet50", "timm", True);
    "legacy_seresnet50" -> ("seresnet50", "legacy", True);
    "resnet50" -> ("seresnet50", "timm", False): a plain timm ResNet loads
    into the `se=False` twin of the SE builder. timm's deprecated "gluon_"
    names map to their resnet.py architecture.

    Example:
    >>> parse_timm_name("legacy_seresnext50_32x4d.in1k")
    ('seresnext50_32x4d', 'legacy', True)
    """
    name = re.sub(r"^gluon_", "", timm_name.split(".", 1)[0])
    layout = "timm"
    if name.startswith("legacy_"):
        name, layout = name[len("legacy_"):], "legacy"
    if name not in resnet.ARCHITECTURES and f"se{name}" in resnet.ARCHITECTURES:
        return f"se{name}", layout, False
    return name, layout, True


def builder_for_timm_name(timm_name):
    """The se_keras builder of a timm model name.

    Example:
    >>> builder_for_timm_name("legacy_seresnet50").__name__
    'SEResNet50'
    """
    arch = parse_timm_name(timm_name)[0]
    for builder in resnet.BUILDERS.values():
        if builder.arch == arch:
            return builder
    known = ", ".join(sorted(resnet.ARCHITECTURES))
    raise ValueError(
        f"No se_keras builder for this timm architecture; known: {known} (and "
        f"their plain twins without 'se'). Received: timm_name={timm_name!r}"
    )


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
    _, layout, se = parse_timm_name(timm_name)
    builder = builder_for_timm_name(timm_name)
    if not os.path.exists(checkpoint_path):
        raise ValueError(
            f"Checkpoint file not found. Received: checkpoint_path={str(checkpoint_path)!r}"
        )
    kwargs = {"layout": layout, **builder_kwargs}
    if not se:
        kwargs["se"] = False
    row = registry.for_timm_name(timm_name) if se else None
    if row is not None:
        record = row.preprocessing_record().to_dict()
        record.pop("size")  # the model's own input size decides
        kwargs["preprocessing"] = {**record, "weights": str(checkpoint_path),
                                   **overrides_of(kwargs.get("preprocessing"))}
    return builder(weights=str(checkpoint_path), **kwargs)
