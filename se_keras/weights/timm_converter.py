"""timm checkpoints -> Keras SE-ResNet weights, tensor by tensor (keras-hub's converter shape).

Two key layouts exist (see `se_keras.applications.resnet`):

| Keras layer               | timm `resnet.py`            | timm `senet.py` (legacy_*)   |
|---------------------------|-----------------------------|------------------------------|
| stem_conv1 (7x7)          | conv1                       | layer0.conv1                 |
| stem_conv{1,2,3} (deep)   | conv1.{0,3,6}               | layer0.conv{1,2,3}           |
| stem_bn{i}                | conv1.{1,4} / bn1 (last)    | layer0.bn{i}                 |
| stage{s}_block{b}_conv{i} | layer{s}.{b-1}.conv{i}      | layer{s}.{b-1}.conv{i}       |
| stage{s}_block{b}_se      | layer{s}.{b-1}.se.fc{1,2}   | layer{s}.{b-1}.se_module.fc{1,2} |
| ..._down_conv / _down_bn  | downsample.{0,1}, avg: {1,2} | downsample.{0,1}            |
| predictions               | fc                          | last_linear                  |

Every tensor of the checkpoint must be used exactly once and every Keras
weight must be set: a leftover or a missing tensor is an error, as is a
shape that does not match. `num_batches_tracked` counters carry no weights,
and the classifier's tensors are dropped only when the model has no top.
"""

import re

import keras
import numpy as np

from se_keras.layers import SqueezeExcitation


class ConversionError(ValueError):
    """A checkpoint does not fit the Keras model it is converted into."""


def _stem_keys(layer_name, layout, deep):
    kind, index = re.fullmatch(r"stem_(conv|bn)(\d)", layer_name).groups()
    index = int(index)
    if layout == "legacy":
        return f"layer0.{kind}{index}"
    if not deep:
        return "conv1" if kind == "conv" else "bn1"
    if kind == "conv":
        return f"conv1.{3 * (index - 1)}"
    return "bn1" if index == 3 else f"conv1.{3 * (index - 1) + 1}"


def timm_prefix(layer_name, layout, deep_stem, avg_down):
    """The timm state-dict prefix of a Keras layer, or None for weightless layers.

    Example:
    >>> timm_prefix("stage2_block1_se", "legacy", deep_stem=False, avg_down=False)
    'layer2.0.se_module'
    """
    if layer_name.startswith("stem_"):
        return _stem_keys(layer_name, layout, deep_stem)
    if layer_name == "predictions":
        return "last_linear" if layout == "legacy" else "fc"
    match = re.fullmatch(r"stage(\d)_block(\d+)_(.+)", layer_name)
    if not match:
        return None
    stage, block, part = int(match.group(1)), int(match.group(2)) - 1, match.group(3)
    base = f"layer{stage}.{block}"
    if part == "se":
        return f"{base}.se_module" if layout == "legacy" else f"{base}.se"
    if part in ("down_conv", "down_bn"):
        index = 0 if part == "down_conv" else 1
        if avg_down and layout != "legacy":
            index += 1  # downsample.0 is the (weightless) pool or Identity
        return f"{base}.downsample.{index}"
    if re.fullmatch(r"(conv|bn)\d", part):
        return f"{base}.{part}"
    return None


def has_classifier(model):
    """True when the model ends in the "predictions" classifier (include_top=True).

    Example:
    >>> from se_keras.applications import SEResNet18
    >>> has_classifier(SEResNet18(weights=None, include_top=False))
    False
    """
    return any(layer.name == "predictions" for layer in model.layers)


def _conv_kernel(w):
    return np.transpose(w, (2, 3, 1, 0))  # (O, I/g, kh, kw) -> (kh, kw, I/g, O)


def keras_targets(model, layout):
    """{timm key: (keras variable, transform)} for every weight of `model`.

    Example:
    >>> from se_keras.applications import SEResNet18
    >>> "layer1.0.se_module.fc1.weight" in keras_targets(SEResNet18(weights=None), "legacy")
    True
    """
    names = {layer.name for layer in model.layers}
    deep_stem = "stem_conv2" in names
    avg_down = any(n.endswith("_down_pool") for n in names)
    targets = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = timm_prefix(layer.name, layout, deep_stem, avg_down)
        if prefix is None:
            raise ConversionError(
                f"Layer {layer.name!r} has weights but no timm counterpart; "
                "the model is not an SE-ResNet from se_keras.applications."
            )
        if isinstance(layer, SqueezeExcitation):
            targets[f"{prefix}.fc1.weight"] = (layer.reduce_kernel, lambda w: w[:, :, 0, 0].T)
            targets[f"{prefix}.fc2.weight"] = (layer.expand_kernel, lambda w: w[:, :, 0, 0].T)
            if layer.use_bias:
                targets[f"{prefix}.fc1.bias"] = (layer.reduce_bias, None)
                targets[f"{prefix}.fc2.bias"] = (layer.expand_bias, None)
        elif isinstance(layer, keras.layers.Conv2D):
            targets[f"{prefix}.weight"] = (layer.kernel, _conv_kernel)
            if layer.use_bias:
                targets[f"{prefix}.bias"] = (layer.bias, None)
        elif isinstance(layer, keras.layers.BatchNormalization):
            targets[f"{prefix}.weight"] = (layer.gamma, None)
            targets[f"{prefix}.bias"] = (layer.beta, None)
            targets[f"{prefix}.running_mean"] = (layer.moving_mean, None)
            targets[f"{prefix}.running_var"] = (layer.moving_variance, None)
        elif isinstance(layer, keras.layers.Dense):
            targets[f"{prefix}.weight"] = (layer.kernel, lambda w: w.T)
            targets[f"{prefix}.bias"] = (layer.bias, None)
        else:
            raise ConversionError(
                f"Cannot convert layer {layer.name!r} of type {type(layer).__name__}."
            )
    return targets


def convert_into(model, state_dict, layout):
    """Copies a timm state dict into `model`, checking every tensor.

    Args:
        model: a model from `se_keras.applications` (SE-ResNet family) built
            in the checkpoint's layout.
        state_dict: {key: numpy array} as read from the checkpoint.
        layout: "timm" (resnet.py keys) or "legacy" (senet.py keys).

    Raises:
        ConversionError: on a missing, unused or wrongly shaped tensor.

    Example:
    >>> from se_keras.weights.readers import read_checkpoint
    >>> convert_into(model, read_checkpoint("se_resnet50.pth"), "legacy")  # doctest: +SKIP
    """
    targets = keras_targets(model, layout)
    has_top = has_classifier(model)
    head = ("last_linear." if layout == "legacy" else "fc.")
    source = {
        k: v for k, v in state_dict.items()
        if not k.endswith("num_batches_tracked") and (has_top or not k.startswith(head))
    }
    missing = sorted(set(targets) - set(source))
    unused = sorted(set(source) - set(targets))
    if missing or unused:
        raise ConversionError(
            f"The checkpoint does not match the {layout!r} layout of "
            f"{model.name}: {len(missing)} tensors missing "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}), "
            f"{len(unused)} unused ({', '.join(unused[:5])}"
            f"{', ...' if len(unused) > 5 else ''})."
        )
    # Check every shape before assigning anything, so that a mismatch leaves
    # the model as it was.
    values = {}
    for key, (variable, transform) in targets.items():
        value = np.asarray(source[key], dtype="float32")
        if transform is not None:
            value = transform(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ConversionError(
                f"Shape mismatch for {key} -> {variable.path}: checkpoint "
                f"{tuple(value.shape)}, model {tuple(variable.shape)}."
            )
        values[key] = value
    for key, (variable, _) in targets.items():
        variable.assign(values[key])
