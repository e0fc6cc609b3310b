"""An inference copy of a model: BatchNorm folded into convolutions, SE squeezed before projections.

`optimize_for_inference(model)` returns a new functional model that
computes the same function (to float rounding) faster, with public Keras
layers and se_keras' registered layers only, so it saves to `.keras` and
loads with `safe_mode=True`. The rewrites:

1. BatchNorm folding. At inference a BatchNormalization is a per-channel
   affine map, `y = x * a + c` with `a = gamma / sqrt(var + eps)` and
   `c = beta - mean * a`. Keras runs it as separate element-wise passes over
   the feature map, which TensorFlow's graph optimizer (Grappler) cannot
   merge into the preceding convolution. When the BatchNorm's input is the
   output of a `Conv1D/2D/3D`, `DepthwiseConv1D/2D` or `Dense` layer that
   nothing else reads, `a` is multiplied into that layer's kernel and `c`
   becomes its bias (computed in float64, then cast), and the BatchNorm
   disappears. The convolution then fuses with its bias and ReLU (and, in
   residual blocks without SE, with the addition) into one oneDNN kernel.

2. SE projection. In SE bottlenecks (SE-ResNet, SE-ResNeXt, SE-ResNet-164,
   SE-ShuffleNet, the residual SE of SE-Inception-ResNet-v2) the SE block
   gates the output of a 1x1, stride-1 convolution. The spatial mean
   commutes with that per-position affine map, `mean(x @ W + b) =
   mean(x) @ W + b`, and `(W, b)` composes with the SE block's first
   layer, so a `ProjectedSqueezeExcitation` squeezes the convolution's input
   (a quarter of the channels in a ResNet bottleneck) and needs no extra
   weights. Only average squeezes are rewritten (a maximum does not
   commute), and only where the convolution's input is narrower than its
   output (elsewhere the squeeze would read more, not less).

3. Constant scales. A `Rescaling(scale, offset=0)` after a convolution,
   directly or through a projected SE layer (Inception-ResNet-v2's residual
   scale), is folded into the convolution's kernel and bias.

Everything else is kept as it is, layer names included (a folded
convolution keeps its name, folded BatchNorm and Rescaling layers
disappear): the `ImagePreprocessing` layer and its record
(`se_keras.get_preprocessing` reads the same record from the copy), dropout
(identity at inference), pooling and the head. Every layer of the copy is
`trainable=False`: its BatchNorm statistics are baked into the kernels, so
fine-tune the original model, then optimize it again.

Example:
>>> from se_keras.applications import SEResNet50
>>> from se_keras.export.optimize import optimize_for_inference
>>> model = SEResNet50(weights=None)
>>> fast = optimize_for_inference(model)
>>> "stage1_block1_bn1" in [layer.name for layer in fast.layers]
False
"""

import collections
import copy
import dataclasses
import logging

import keras
import numpy as np

from se_keras.layers.projected_squeeze_excitation import ProjectedSqueezeExcitation
from se_keras.layers.squeeze_excitation import SqueezeExcitation

logger = logging.getLogger(__name__)

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


@dataclasses.dataclass
class OptimizationReport:
    """What `optimize_for_inference` did, layer by layer.

    Attributes:
        model: the model's name.
        folded: (BatchNormalization name, the layer it was folded into) pairs.
        projected_se: the SE layers replaced by `ProjectedSqueezeExcitation`
            (they keep their names).
        folded_rescaling: (Rescaling name, convolution name) pairs: constant
            scales folded into the convolution before them.
        kept_batch_norm: BatchNormalization name -> why it was not folded.
        kept_se: SE layer name -> why it was not projected.
        nested: the reports of the models nested in this one.
    """

    model: str
    folded: list = dataclasses.field(default_factory=list)
    projected_se: list = dataclasses.field(default_factory=list)
    folded_rescaling: list = dataclasses.field(default_factory=list)
    kept_batch_norm: dict = dataclasses.field(default_factory=dict)
    kept_se: dict = dataclasses.field(default_factory=dict)
    nested: list = dataclasses.field(default_factory=list)

    def _all(self):
        yield self
        for report in self.nested:
            yield from report._all()

    @property
    def num_folded(self):
        """BatchNorm layers folded, nested models included."""
        return sum(len(r.folded) for r in self._all())

    @property
    def num_projected_se(self):
        """SE layers projected, nested models included."""
        return sum(len(r.projected_se) for r in self._all())

    @property
    def num_folded_rescaling(self):
        """Rescaling layers folded, nested models included."""
        return sum(len(r.folded_rescaling) for r in self._all())

    def summary(self):
        """One line: the rewrites applied and what was left, with reasons.

        Example:
        >>> OptimizationReport("m", folded=[("bn", "conv")]).summary()
        'optimize_for_inference(m): BatchNormalization folded: 1; SE squeezes projected: 0'
        """
        kept_bn = collections.Counter(
            reason for r in self._all() for reason in r.kept_batch_norm.values()
        )
        kept_se = collections.Counter(reason for r in self._all() for reason in r.kept_se.values())
        text = (
            f"optimize_for_inference({self.model}): BatchNormalization folded: "
            f"{self.num_folded}; SE squeezes projected: {self.num_projected_se}"
        )
        if self.num_folded_rescaling:
            text += f"; Rescaling folded: {self.num_folded_rescaling}"
        if kept_bn:
            text += "; kept BatchNormalization: " + ", ".join(
                f"{n} ({reason})" for reason, n in kept_bn.most_common()
            )
        if kept_se:
            text += "; kept SE: " + ", ".join(
                f"{n} ({reason})" for reason, n in kept_se.most_common()
            )
        return text


def optimize_for_inference(
    model, *, project_se=True, fold=True, return_report=False, verbose=False
):
    """A faster inference copy of `model` that computes the same function.

    See the module docstring for the rewrites. The copy is a new functional
    model (the original is not changed) with the same inputs, outputs, name
    and layer names, except that folded BatchNorm layers are gone and the
    SE layers that get a projected squeeze become
    `ProjectedSqueezeExcitation` layers of the same name. Dtype policies are
    kept: for a float32 inference graph of a mixed precision model, call
    `se_keras.export.float32_model` first, then this. Every layer of the
    copy has `trainable=False` (its BatchNorm statistics are baked in);
    fine-tune the original and optimize again.

    Args:
        model: a functional or `Sequential` Keras model (models nested in
            it as layers are optimized too). A model built with
            `se_keras.applications` or loaded from a `.keras` file; any
            other Keras model works as well.
        project_se: rewrite the SE layers that follow a 1x1 convolution
            (see `ProjectedSqueezeExcitation`).
        fold: fold BatchNorm layers (and constant `Rescaling` layers) into the
            convolution or Dense layer before them.
        return_report: also return an `OptimizationReport`.
        verbose: print the report's one-line summary (it is always logged
            at INFO level on the `se_keras.export.optimize` logger).

    Returns:
        The optimized `keras.Model`, or `(model, report)` with
        `return_report=True`.

    Raises:
        ValueError: for a subclassed model (its graph cannot be read from
            its config), a `Sequential` model that is not built, or a model
            whose config cannot be rebuilt.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> model = SEResNet20(weights=None)
    >>> fast, report = optimize_for_inference(model, return_report=True)
    >>> report.num_folded, len(fast.layers) < len(model.layers)
    (21, True)
    """
    optimized, report = _optimize(model, project_se=project_se, fold=fold)
    logger.info(report.summary())
    if verbose:
        print(report.summary())
    return (optimized, report) if return_report else optimized


# The functional graph, read from the model's config.


def _keras_tensors(obj):
    """The serialized Keras tensors in a node's args/kwargs, in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            yield obj
            return
        for value in obj.values():
            yield from _keras_tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _keras_tensors(value)


def _history(tensor):
    return tuple(tensor["config"]["keras_history"])


def _output_histories(config):
    outputs = config["output_layers"]
    if outputs and isinstance(outputs[0], str):
        return [tuple(outputs)]
    return [tuple(o) for o in outputs]


class _Graph:
    """Layer configs by name and who reads each (layer, node, tensor) output."""

    def __init__(self, config):
        self.config = config
        self.layers = {layer["name"]: layer for layer in config["layers"]}
        self.readers = collections.defaultdict(list)
        for layer in config["layers"]:
            for node in layer["inbound_nodes"]:
                for tensor in _keras_tensors(node):
                    self.readers[_history(tensor)].append(layer["name"])
        for history in _output_histories(config):
            self.readers[history].append(None)  # None: a model output

    def single_input(self, name):
        """The one input tensor of `name`'s one call, or None."""
        nodes = self.layers[name]["inbound_nodes"]
        if len(nodes) != 1:
            return None
        tensors = list(_keras_tensors(nodes[0]["args"]))
        kwarg_tensors = list(_keras_tensors(nodes[0]["kwargs"]))
        if len(tensors) != 1 or kwarg_tensors or len(nodes[0]["args"]) != 1:
            return None
        return tensors[0]

    def remove(self, name):
        """Removes the single-input layer `name`; its readers read its input instead."""
        tensor = self.single_input(name)
        old, new = (name, 0, 0), _history(tensor)

        def replace(obj):
            # A live config holds tuples as well as lists: rebuild, never mutate in place.
            if isinstance(obj, dict):
                if obj.get("class_name") == "__keras_tensor__":
                    if _history(obj) == old:
                        return {**obj, "config": {**obj["config"], "keras_history": list(new)}}
                    return obj
                return {key: replace(value) for key, value in obj.items()}
            if isinstance(obj, (list, tuple)):
                return type(obj)(replace(value) for value in obj)
            return obj

        readers = self.readers.pop(old, [])
        for reader in set(readers) - {None}:
            self.layers[reader]["inbound_nodes"] = replace(self.layers[reader]["inbound_nodes"])
        if None in readers:
            outputs = self.config["output_layers"]
            if outputs and isinstance(outputs[0], str):
                self.config["output_layers"] = list(new)
            else:
                self.config["output_layers"] = [
                    list(new) if tuple(o) == old else o for o in outputs
                ]
        self.readers[new] = [r for r in self.readers[new] if r != name] + readers
        self.config["layers"] = [c for c in self.config["layers"] if c["name"] != name]
        del self.layers[name]


# The folding arithmetic (float64).


def _bn_affine(bn):
    """(scale, shift) of an inference BatchNorm: y = x * scale + shift, float64."""
    variance = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), "float64")
    mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), "float64")
    scale = 1.0 / np.sqrt(variance + float(bn.epsilon))
    if bn.gamma is not None:
        scale = scale * np.asarray(keras.ops.convert_to_numpy(bn.gamma), "float64")
    shift = -mean * scale
    if bn.beta is not None:
        shift = shift + np.asarray(keras.ops.convert_to_numpy(bn.beta), "float64")
    return scale, shift


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), "float64")


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


# Building the copy.


def _functional(model):
    """`model` as a functional model (Sequential models are converted)."""
    if isinstance(model, keras.Sequential):
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError) as error:
            raise ValueError(
                "optimize_for_inference needs a built model with known inputs; build the "
                "Sequential model with a keras.Input first. "
                f"Received: model={model.name!r}"
            ) from error
        # Single tensors, not lists of one: the copy is then called like the model.
        return keras.Model(
            inputs[0] if len(inputs) == 1 else inputs,
            outputs[0] if len(outputs) == 1 else outputs,
            name=model.name,
        )
    config = model.get_config() if hasattr(model, "get_config") else None
    if not isinstance(config, dict) or not {"layers", "input_layers", "output_layers"} <= set(
        config
    ):
        raise ValueError(
            "optimize_for_inference rewrites functional and Sequential Keras models (it reads "
            "their graph from their config); a subclassed model has no such config. "
            f"Received: model={getattr(model, 'name', model)!r} ({type(model).__name__})"
        )
    return model


def _optimize(model, *, project_se, fold):
    source = _functional(model)
    config = copy.deepcopy(source.get_config())
    originals = {layer.name: layer for layer in source.layers}
    report = OptimizationReport(model=model.name)
    graph = _Graph(config)
    weights = {}  # layer name -> new weights (float64; cast when set)
    nested = {}  # layer name -> optimized nested model
    for layer_config in config["layers"]:
        layer = originals.get(layer_config["name"])
        if isinstance(layer, keras.Model):
            sub, sub_report = _optimize(layer, project_se=project_se, fold=fold)
            serialized = keras.saving.serialize_keras_object(sub)
            for key in ("module", "class_name", "config", "registered_name"):
                layer_config[key] = serialized[key]
            layer_config.pop("build_config", None)
            nested[layer.name] = sub
            report.nested.append(sub_report)
    if fold:
        _fold_batch_norms(graph, originals, weights, report)
    if project_se:
        _project_se_layers(graph, originals, weights, report)
    if fold:
        # After the SE rewrite: a scale after a projected SE layer goes into
        # the convolution but not into the SE layer's (unscaled) projection.
        _fold_rescalings(graph, originals, weights, report)
    try:
        optimized = keras.Model.from_config(config)
    except Exception as error:  # Keras raises many types here; say which model failed.
        raise ValueError(
            f"Could not rebuild the optimized copy of the model from its config ({error}). "
            f"Received: model={model.name!r}"
        ) from error
    for layer in optimized.layers:
        if layer.name in nested:
            layer.set_weights(nested[layer.name].get_weights())
        elif layer.name in weights:
            layer.set_weights([
                np.asarray(w, dtype=v.dtype) for w, v in zip(weights[layer.name], layer.weights)
            ])
        elif layer.weights:
            layer.set_weights(originals[layer.name].get_weights())
    optimized.trainable = False
    return optimized, report
