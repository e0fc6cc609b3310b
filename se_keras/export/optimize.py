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

from se_keras.export.config_graph import _Graph
from se_keras.export.rewrites import _fold_batch_norms
from se_keras.export.rewrites import _fold_rescalings
from se_keras.export.rewrites import _project_se_layers

logger = logging.getLogger(__name__)


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
