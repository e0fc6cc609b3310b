"""SE networks as detection and segmentation backbones: a feature pyramid's inputs.

The SE paper uses SE-ResNet-50/101 as Faster R-CNN backbones on COCO (+2.4
and +2.0 AP). `feature_extractor(model)` turns any model of
`se_keras.applications` into the backbone that detection and segmentation
heads expect, the way timm's `features_only=True`, keras-hub's
`pyramid_outputs`, kimm's `feature_extractor=True` and ZeroModels'
`as_backbone=True` do: a functional model with the same input and the same
layer objects (so the same weights, pretrained or not) that returns a dict
of stage outputs keyed like keras-hub's, "P{k}" for output stride 2^k.

For each stride the feature is the *last* layer at that stride: the end of
the stage, after its SE block and its final ReLU where the network has them.
It is found from data, not per-family code:

1. The network's row of `FAMILIES` (the first whose marker layer the model
   has) gives a pattern of the layer names that may end a stage, from each
   module's naming contract (`stage{s}_block{b}_out`, `mixed{m}_se`, ...).
2. The graph gives each layer's output stride (the product of the strides
   of the layers on its way from the input, read from their configs, so
   models with an unknown input size work too) and whether the layer is a
   cut of the graph: a layer that every path from the input to the output
   goes through. Stage ends are cuts; a block's inner layers, an SE block
   on a branch (`se_position="pre"` or `"identity"`) and the layers that a
   projection shortcut skips are not.
3. Per stride, the last such layer in graph order is the feature.

The result for each family at 224x224 (any size gives the same layers;
CIFAR networks at 32x32 start at stride 1):

| family | keys | layers (default builders) | channels |
|---|---|---|---|
| resnet (SE-ResNet-50) | P1-P5 | stem_relu1, stage1..4 ends | 64, 256, 512, 1024, 2048 |
| cifar_resnet (SE-ResNet-20) | P0-P2 | stage1..3 ends (`final_relu` for pre-activation nets) | 16, 32, 64 |
| inception (SE-Inception-v3) | P1-P5 | stem_conv3, stem_conv5, mixed2, mixed7, mixed10 (with `_se`) | 64, 192, 288, 768, 2048 |
| mobilenet (SE-MobileNet v1) | P1-P5 | block1, block3, block5, block11, block13 | 64, 128, 256, 512, 1024 |
| shufflenet (SE-ShuffleNet, g=3) | P1-P5 | stem_relu, stem_pool, stage1..3 ends | 24, 24, 240, 480, 960 |
| vgg (SE-VGG-16) | P0-P5 | block1..5 ends, block5_pool | 64, 128, 256, 512, 512, 512 |

Only backend-neutral Keras is used: the extractor runs under the
TensorFlow, JAX and PyTorch backends.

Example:
>>> from se_keras.applications import SEResNet18, feature_extractor
>>> backbone = feature_extractor(SEResNet18(weights=None, include_top=False))
>>> sorted(backbone.output)
['P1', 'P2', 'P3', 'P4', 'P5']
"""

import collections
import math
import re

import keras

from se_keras import preprocessing as preprocessing_lib

Family = collections.namedtuple("Family", ["name", "marker", "stage_ends"])
Family.__doc__ = """One network family: how to recognize it and which layers may end a stage.

Attributes:
    name: the family (the module of `se_keras.applications` that builds it).
    marker: a regular expression that some layer name of the family's
        models matches in full (and no earlier row's models do).
    stage_ends: a regular expression matched in full by the names of the
        layers that can end a stage; the graph picks the last cut per stride.
"""

# Checked in this order; the first row whose marker matches is the family.
# ShuffleNet and CIFAR ResNets share ResNet's stage names, so their markers
# are layers that only they have (a strided unit's concatenation; stage 3
# without a stage 4 is implied by ResNet's row coming first).
FAMILIES = (
    Family("resnet", r"stage4_block1_add", r"stem_relu\d|stage\d+_block\d+_(out|se)"),
    Family(
        "shufflenet", r"stage\d+_block1_concat",
        r"stem_relu|stem_pool|stage\d+_block\d+_(out|se)",
    ),
    Family(
        "cifar_resnet", r"stage3_block1_add",
        # Pre-activation networks end their stages with the addition and the
        # whole network with final_bn/final_relu.
        r"stem_relu1|stage\d+_block\d+_(out|add|se)|final_relu",
    ),
    Family(
        "inception", r"inception_3a_output|mixed0|mixed_5b",
        r"conv1_7x7_s2_relu|conv2_3x3_relu|inception_\d[a-z]_(output|se)"  # BN-Inception
        r"|stem_conv\d_relu|mixed\d+(_se)?"  # Inception-v3
        r"|mixed_\d[a-z](_se)?|block(35|17|8)_\d+_(relu|add|se)|conv_7b_relu",  # -ResNet-v2
    ),
    Family(
        "mobilenet", r"block1_dw_conv",
        r"stem_relu|block\d+_(pw_relu|project_bn|add|se)|top_relu",
    ),
    Family("vgg", r"block1_conv1", r"block\d+_(relu\d+|conv\d+_se|se|pool)"),
)


def _not_supported(model, why):
    return ValueError(
        f"`feature_extractor` takes a model built by se_keras.applications: {why}. "
        f"Received: model={getattr(model, 'name', model)!r}"
    )


def _check_model(model):
    """The model's preprocessing layer; raises for anything se_keras did not build."""
    if not isinstance(model, keras.Model):
        raise _not_supported(model, "a functional keras.Model is needed")
    # Subclassed models have no graph: no `inputs` to build an extractor on.
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if not inputs or len(inputs) != 1:
        raise _not_supported(model, "a functional model with one image input is needed")
    record = [
        layer for layer in model.layers
        if isinstance(layer, preprocessing_lib.ImagePreprocessing)
        and layer.name == preprocessing_lib.LAYER_NAME
    ]
    if not record:
        raise _not_supported(
            model, "it has no `ImagePreprocessing` layer named 'preprocessing'"
        )
    return record[0]


def _family(model):
    names = [layer.name for layer in model.layers]
    for family in FAMILIES:
        if any(re.fullmatch(family.marker, name) for name in names):
            return family
    raise _not_supported(
        model, f"its layer names match none of the families {[f.name for f in FAMILIES]}"
    )


def _own_stride(layer):
    """The factor by which `layer` divides the spatial size (1 if it has no strides)."""
    strides = getattr(layer, "strides", None)
    if isinstance(strides, int):
        return strides
    if isinstance(strides, (tuple, list)) and strides:
        return max(int(s) for s in strides)
    return 1


def _graph(model):
    """(layers in graph order, {layer name: producer layer names}).

    A functional model's layers are in topological order (Keras sorts them by
    depth); this is checked, since the choice of the last layer relies on it.
    """
    layers = list(model.layers)
    producer = {}
    for layer in layers:
        for tensor in keras.tree.flatten(layer.output):
            producer[id(tensor)] = layer.name
    position = {layer.name: i for i, layer in enumerate(layers)}
    inbound = {}
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            inbound[layer.name] = []
            continue
        # `layer.input` is the tensors of the layer's first call: the model's.
        sources = [producer.get(id(t)) for t in keras.tree.flatten(layer.input)]
        if None in sources or any(position[s] >= position[layer.name] for s in sources):
            raise _not_supported(model, f"its graph could not be walked at layer {layer.name!r}")
        inbound[layer.name] = sources
    return layers, inbound


def feature_info(model):
    """The feature pyramid of `model`: for each key, its layer, stride and channels.

    Args:
        model: a model built by `se_keras.applications` (with or without its
            top), or one loaded from a `.keras` file of such a model.

    Returns:
        A list of dicts with the keys "key" ("P{k}"), "layer" (the layer's
        name), "stride" (2^k) and "channels", by increasing stride (timm's
        `feature_info`, keras-hub's pyramid keys).

    Raises:
        ValueError: for a model not built by `se_keras.applications`.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> [(f["key"], f["layer"], f["channels"]) for f in feature_info(SEResNet20(weights=None))]
    [('P0', 'stage1_block3_out', 16), ('P1', 'stage2_block3_out', 32), ('P2', 'stage3_block3_out', 64)]
    """
    record_layer = _check_model(model)
    family = _family(model)
    layers, inbound = _graph(model)
    position = {layer.name: i for i, layer in enumerate(layers)}

    stride = {}
    for layer in layers:
        incoming = max((stride[s] for s in inbound[layer.name]), default=1)
        stride[layer.name] = incoming * _own_stride(layer)

    # A layer is a cut (every input-to-output path goes through it) iff no
    # edge jumps over it in topological order: none from an earlier layer to
    # a later one.
    reach, cuts = 0, set()
    successors = collections.defaultdict(list)
    for name, sources in inbound.items():
        for source in sources:
            successors[source].append(position[name])
    for i, layer in enumerate(layers):
        if reach <= i:
            cuts.add(layer.name)
        reach = max([reach, *successors[layer.name]])

    channel_axis = -1 if record_layer.data_format == "channels_last" else 1
    last = {}
    for layer in layers:
        output = layer.output
        if (
            layer.name in cuts
            and re.fullmatch(family.stage_ends, layer.name)
            and not isinstance(output, (list, tuple, dict))
            and len(output.shape) == 4  # the head's pooled and dense outputs are not maps
        ):
            last[stride[layer.name]] = layer
    info = []
    for value in sorted(last):
        k = int(round(math.log2(value)))
        if 2**k != value:  # every stride here is a power of two; guard the keys anyway
            raise _not_supported(model, f"layer {last[value].name!r} has stride {value}")
        info.append(dict(
            key=f"P{k}", layer=last[value].name, stride=value,
            channels=last[value].output.shape[channel_axis],
        ))
    if not info:
        raise _not_supported(model, f"no stage of the {family.name} family was found")
    return info


def feature_extractor(model, levels=None, name=None):
    """A backbone: `model`'s stage outputs as a dict keyed "P{k}" (output stride 2^k).

    The extractor is a functional model with `model`'s input and the same
    layer objects: it shares the weights (pretrained or trained), keeps the
    `ImagePreprocessing` record layer (so `se_keras.get_preprocessing` gives
    the same record and feeding is unchanged), and saves to and loads from
    `.keras` files with `safe_mode=True`. A classifier top, if any, is left
    out. For each stride the feature is the end of the stage, after its SE
    block and final ReLU (see the module docstring for how it is found and
    for each family's keys: CIFAR networks give P0-P2, VGG P0-P5, the
    others P1-P5).

    Args:
        model: a model built by `se_keras.applications`, with or without
            its top, or such a model loaded from a `.keras` file.
        levels: the keys to keep (e.g. ("P3", "P4", "P5") for RetinaNet);
            None keeps all.
        name: the extractor's name; defaults to `model.name + "_features"`.

    Returns:
        A `keras.Model` whose output is a dict of "P{k}" -> feature map.

    Raises:
        ValueError: for a model that se_keras did not build, or an unknown
            level.

    Example:
    >>> import numpy as np
    >>> from se_keras.applications import SEResNet18, feature_extractor
    >>> model = SEResNet18(weights=None, include_top=False, input_shape=(64, 64, 3))
    >>> features = feature_extractor(model, levels=("P3", "P4", "P5"))
    >>> {k: tuple(v.shape) for k, v in features(np.zeros((1, 64, 64, 3))).items()}
    {'P3': (1, 8, 8, 128), 'P4': (1, 4, 4, 256), 'P5': (1, 2, 2, 512)}
    """
    info = {row["key"]: row for row in feature_info(model)}
    if levels is None:
        keys = list(info)
    else:
        keys = [levels] if isinstance(levels, str) else list(levels)
        unknown = [key for key in keys if key not in info]
        if unknown or not keys:
            raise ValueError(
                f"`levels` must be a non-empty subset of this model's keys {list(info)}. "
                f"Received: levels={levels!r}"
            )
        keys = sorted(set(keys), key=list(info).index)
    outputs = {key: model.get_layer(info[key]["layer"]).output for key in keys}
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_features")


def backbone(model_name, levels=None, **kwargs):
    """Builds the named model without its top and returns its `feature_extractor`.

    A shorthand for `feature_extractor(get_builder(model_name)(include_top=False,
    **kwargs), levels)`.

    Args:
        model_name: a builder's name, a key of `se_keras.applications.MODELS`
            ("SEResNet50", ...).
        levels: the keys to keep; None keeps all.
        **kwargs: the builder's arguments (`weights`, `input_shape`, SE
            options, ...); `include_top` and `pooling` are not taken.

    Returns:
        A `keras.Model` whose output is a dict of "P{k}" -> feature map.

    Example:
    >>> from se_keras.applications.backbones import backbone
    >>> sorted(backbone("SEResNet20", input_shape=(32, 32, 3)).output)
    ['P0', 'P1', 'P2']
    """
    from se_keras.applications.catalog import get_builder

    for key in ("include_top", "pooling"):
        if kwargs.get(key):
            raise ValueError(
                f"A backbone has no top and no global pooling. Received: {key}={kwargs[key]!r}"
            )
        kwargs.pop(key, None)
    model = get_builder(model_name)(include_top=False, **kwargs)
    return feature_extractor(model, levels=levels)
