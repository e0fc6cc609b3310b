"""The rewrite rules of `optimize_for_inference`, layer by layer, on the config graph.

BatchNorm folding, SE projection and constant-scale folding (see
se_keras.export.optimize for what each computes and why it is exact): for
each, the conditions under which it applies (a reason string when it does
not) and the new weights, computed in float64 and cast when set.
"""

import copy

import keras
import numpy as np

from se_keras.export.config_graph import _history
from se_keras.export.config_graph import _keras_tensors
from se_keras.layers.projected_squeeze_excitation import ProjectedSqueezeExcitation
from se_keras.layers.squeeze_excitation import SqueezeExcitation

# Layers whose output a BatchNorm can be folded into, by kernel layout:
# "conv": (*kernel_size, in / groups, out); "depthwise": (*kernel_size, in,
# multiplier), output channel c * multiplier + m; "dense": (in, units).
_FOLD_TARGETS = {
    "Conv1D": "conv",
    "Conv2D": "conv",
    "Conv3D": "conv",
    "DepthwiseConv1D": "depthwise",
    "DepthwiseConv2D": "depthwise",
    "Dense": "dense",
}
_SE_CLASS = "SqueezeExcitation"


# The folding arithmetic (float64).


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), "float64")


def _bn_affine(bn):
    """(scale, shift) of an inference BatchNorm: y = x * scale + shift, float64."""
    scale = 1.0 / np.sqrt(_numpy(bn.moving_variance) + float(bn.epsilon))
    if bn.gamma is not None:
        scale = scale * _numpy(bn.gamma)
    shift = -_numpy(bn.moving_mean) * scale
    if bn.beta is not None:
        shift = shift + _numpy(bn.beta)
    return scale, shift


def _folded_weights(layer, bn):
    """[kernel, bias] of `layer` with `bn` folded in, float64."""
    scale, shift = _bn_affine(bn)
    kernel = _numpy(layer.kernel)
    kind = _FOLD_TARGETS[layer.__class__.__name__]
    if kind == "depthwise":
        # (..., in, multiplier): output channel c * multiplier + m.
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale  # the last axis is the output channel
    bias = _numpy(layer.bias) if layer.bias is not None else np.zeros_like(shift)
    return [kernel, bias * scale + shift]


def _current_weights(name, originals, weights):
    """[kernel, bias] of layer `name` as rewritten so far (float64; a zero bias if none)."""
    if name in weights:
        return weights[name]
    layer = originals[name]
    kernel = _numpy(layer.kernel)
    if layer.bias is not None:
        return [kernel, _numpy(layer.bias)]
    depthwise = _FOLD_TARGETS[layer.__class__.__name__] == "depthwise"
    channels = kernel.shape[-2] * kernel.shape[-1] if depthwise else kernel.shape[-1]
    return [kernel, np.zeros(channels)]


def _projection(kernel, groups):
    """The (C_in, C_out) matrix of a 1x1 convolution kernel (*ones, C_in / groups, C_out)."""
    per_group_in, channels_out = kernel.shape[-2:]
    kernel = kernel.reshape(per_group_in, channels_out)
    if groups == 1:
        return kernel
    per_group_out = channels_out // groups
    matrix = np.zeros((per_group_in * groups, channels_out), kernel.dtype)
    for g in range(groups):
        rows = slice(g * per_group_in, (g + 1) * per_group_in)
        cols = slice(g * per_group_out, (g + 1) * per_group_out)
        matrix[rows, cols] = kernel[:, cols]
    return matrix


# The rewrites, on the config.


def _is_linear(config):
    return config.get("activation") in (None, "linear")


def _has_quantized_policy(config):
    # Quantized layers (int8, int4, float8, GPTQ) hold other weights than a
    # float kernel; leave them alone.
    dtype = config.get("dtype")
    if isinstance(dtype, dict):
        if dtype.get("class_name", "DTypePolicy") != "DTypePolicy":
            return True
        dtype = dtype.get("config", {}).get("name", "")
    return isinstance(dtype, str) and any(q in dtype for q in ("int8", "int4", "float8", "gptq"))


def _channel_axis_ok(bn_config, producer_config, rank):
    axis = bn_config["axis"]
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return False
        axis = axis[0]
    axis = axis % rank if rank else axis
    if producer_config.get("data_format", "channels_last") == "channels_first":
        return axis == 1
    return axis == rank - 1


def _fold_reason(graph, bn_name, originals):
    """None if `bn_name` can be folded into its producer, else why not."""
    tensor = graph.single_input(bn_name)
    if tensor is None:
        return "not a single call on one tensor"
    kwargs = graph.layers[bn_name]["inbound_nodes"][0]["kwargs"]
    if any(k != "mask" and v not in (None, False) for k, v in kwargs.items()):
        return "called with training or other arguments"
    producer_name, node, index = _history(tensor)
    producer = graph.layers.get(producer_name)
    if producer is None or producer["class_name"] not in _FOLD_TARGETS:
        return "its input is not a convolution or Dense output"
    if len(producer["inbound_nodes"]) != 1 or (node, index) != (0, 0):
        return "its producer is shared"
    if graph.readers[(producer_name, 0, 0)] != [bn_name]:
        return "its producer's output is also read elsewhere"
    config = producer["config"]
    if not _is_linear(config):
        return "its producer has an activation"
    if _has_quantized_policy(config) or config.get("lora_rank"):
        return "its producer is quantized or has LoRA weights"
    if _has_quantized_policy(graph.layers[bn_name]["config"]):
        return "quantized"
    rank = len(tensor["config"]["shape"])
    if not _channel_axis_ok(graph.layers[bn_name]["config"], config, rank):
        return "it normalizes another axis than the channels"
    layer = originals[producer_name]
    if getattr(layer, "kernel", None) is None:
        return "its producer has no kernel"
    return None


def _fold_batch_norms(graph, originals, weights, report):
    for bn_name, layer_config in list(graph.layers.items()):
        if layer_config["class_name"] != "BatchNormalization":
            continue
        if not isinstance(originals.get(bn_name), keras.layers.BatchNormalization):
            report.kept_batch_norm[bn_name] = "not a keras BatchNormalization"
            continue
        reason = _fold_reason(graph, bn_name, originals)
        if reason:
            report.kept_batch_norm[bn_name] = reason
            continue
        tensor = graph.single_input(bn_name)
        producer_name = _history(tensor)[0]
        producer = graph.layers[producer_name]
        weights[producer_name] = _folded_weights(originals[producer_name], originals[bn_name])
        producer["config"]["use_bias"] = True
        producer.pop("build_config", None)
        graph.remove(bn_name)
        report.folded.append((bn_name, producer_name))


def _projection_reason(graph, se_name, originals):
    """None if the SE layer `se_name` can take its squeeze before its 1x1 producer."""
    se = originals.get(se_name)
    if not isinstance(se, SqueezeExcitation) or type(se) is not SqueezeExcitation:
        return "not a SqueezeExcitation"
    if se.squeeze != "avg":
        return "max squeeze (does not commute with the projection)"
    tensor = graph.single_input(se_name)
    if tensor is None:
        return "not a single call on one tensor"
    conv_name, node, index = _history(tensor)
    conv = graph.layers.get(conv_name)
    if conv is None or conv["class_name"] not in ("Conv1D", "Conv2D", "Conv3D"):
        return "its input is not a 1x1 convolution's output"
    config = conv["config"]
    if any(k != 1 for k in config["kernel_size"]) or any(s != 1 for s in config["strides"]):
        return "its input is not a 1x1, stride-1 convolution's output"
    if len(conv["inbound_nodes"]) != 1 or (node, index) != (0, 0):
        return "its convolution is shared"
    if graph.readers[(conv_name, 0, 0)] != [se_name]:
        return "its convolution's output is also read elsewhere"
    if not _is_linear(config) or _has_quantized_policy(config) or config.get("lora_rank"):
        return "its convolution has an activation or a quantized kernel"
    if config.get("data_format", "channels_last") != se.data_format:
        return "its convolution has another data format"
    source = graph.single_input(conv_name)
    if source is None:
        return "its convolution is not a single call on one tensor"
    layer = originals[conv_name]
    channels_in = layer.kernel.shape[-2] * config.get("groups", 1)
    channels_out = layer.kernel.shape[-1]
    if channels_in >= channels_out:
        return "the convolution's input is not narrower than its output"
    return None


def _project_se_layers(graph, originals, weights, report):
    for se_name, layer_config in list(graph.layers.items()):
        if layer_config.get("class_name") != _SE_CLASS:
            continue
        reason = _projection_reason(graph, se_name, originals)
        if reason:
            report.kept_se[se_name] = reason
            continue
        se = originals[se_name]
        tensor = graph.single_input(se_name)
        conv_name = _history(tensor)[0]
        conv = graph.layers[conv_name]
        source = copy.deepcopy(graph.single_input(conv_name))
        kernel, bias = _current_weights(conv_name, originals, weights)
        # The projection composed with the SE block's first layer (module
        # docstring of ProjectedSqueezeExcitation), in float64.
        projection = _projection(kernel, conv["config"].get("groups", 1))
        reduce_kernel = _numpy(se.reduce_kernel)
        reduce_bias = _numpy(se.reduce_bias) if se.reduce_bias is not None else 0.0
        expand_bias = (
            _numpy(se.expand_bias) if se.expand_bias is not None else np.zeros(se.channels)
        )
        config = se.get_config()
        config.pop("squeeze")
        # A projection with a bias needs MLP biases even if the SE had none.
        config.update(reduced_channels=se.width, use_bias=True)
        layer_config["class_name"] = ProjectedSqueezeExcitation.__name__
        layer_config["module"] = ProjectedSqueezeExcitation.__module__
        layer_config["registered_name"] = keras.saving.get_registered_name(
            ProjectedSqueezeExcitation
        )
        layer_config["config"] = ProjectedSqueezeExcitation.from_config(config).get_config()
        layer_config.pop("build_config", None)
        layer_config["inbound_nodes"] = [
            {"args": [[source, copy.deepcopy(tensor)]], "kwargs": {}}
        ]
        weights[se_name] = [
            projection @ reduce_kernel,
            bias @ reduce_kernel + reduce_bias,
            _numpy(se.expand_kernel),
            expand_bias,
        ]
        graph.readers[_history(source)].append(se_name)
        report.projected_se.append(se_name)


def _linear_producer(graph, name, reader):
    """The layer whose output `name` reads, if a linear conv/Dense read by `reader` only."""
    tensor = graph.single_input(name)
    if tensor is None:
        return None
    producer, node, index = _history(tensor)
    config = graph.layers.get(producer)
    if (
        config is None
        or config["class_name"] not in _FOLD_TARGETS
        or len(config["inbound_nodes"]) != 1
        or (node, index) != (0, 0)
        or graph.readers[(producer, 0, 0)] != [reader]
        or not _is_linear(config["config"])
        or _has_quantized_policy(config["config"])
        or config["config"].get("lora_rank")
    ):
        return None
    return producer


def _projected_producer(graph, se_name, reader):
    """The convolution whose output the projected SE layer `se_name` scales (read by it only)."""
    se = graph.layers.get(se_name)
    if (
        se is None
        or se["class_name"] != ProjectedSqueezeExcitation.__name__
        or graph.readers[(se_name, 0, 0)] != [reader]
        or len(se["inbound_nodes"]) != 1
    ):
        return None
    target = list(_keras_tensors(se["inbound_nodes"][0]["args"]))[1]
    conv_name = _history(target)[0]
    config = graph.layers.get(conv_name)
    if (
        config is None
        or config["class_name"] not in _FOLD_TARGETS
        or graph.readers[(conv_name, 0, 0)] != [se_name]
        or not _is_linear(config["config"])
        or _has_quantized_policy(config["config"])
    ):
        return None
    return conv_name


def _fold_rescalings(graph, originals, weights, report):
    """Folds `Rescaling(scale, offset=0)` into the convolution before it.

    Inception-ResNet-v2 scales each residual branch (`x + 0.17 * r`): the
    convolution's kernel and bias absorb the scale, directly or through a
    projected SE layer, which is linear in its target. A plain
    `SqueezeExcitation` in between is not (its gate reads the scaled map).
    """
    for name, layer_config in list(graph.layers.items()):
        if layer_config["class_name"] != "Rescaling":
            continue
        config = layer_config["config"]
        scale, offset = config.get("scale"), config.get("offset", 0.0)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or offset not in (0, 0.0):
            continue
        tensor = graph.single_input(name)
        if tensor is None or layer_config["inbound_nodes"][0]["kwargs"]:
            continue
        conv_name = _linear_producer(graph, name, name) or _projected_producer(
            graph, _history(tensor)[0], name
        )
        if conv_name is None:
            continue
        kernel, bias = _current_weights(conv_name, originals, weights)
        weights[conv_name] = [kernel * float(scale), bias * float(scale)]
        conv = graph.layers[conv_name]
        conv["config"]["use_bias"] = True
        conv.pop("build_config", None)
        graph.remove(name)
        report.folded_rescaling.append((name, conv_name))
