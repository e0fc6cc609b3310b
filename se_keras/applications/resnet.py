"""SE-ResNet, SE-ResNeXt and SENet-154 (Hu et al., arXiv 1709.01507).

One generic builder, `build_resnet` (the graph, in `resnet_graph`), and
thin public variants. Every
architecture is a row of `ARCHITECTURES`; the two layouts of the public
checkpoints are the rows of `LAYOUTS`:

- "timm": timm's `resnet.py` models (seresnet*, seresnext*, senet154 and the
  gluon ports): stride on the 3x3 conv, stem max pool with padding 1, SE
  width `make_divisible(C / 16, 8)`.
- "legacy": the authors' Caffe models as ported by Cadene (timm's
  `legacy_*`): SE-ResNet bottlenecks put the stride on the first 1x1 conv,
  the stem max pool uses `ceil_mode=True`, SE width `C // 16`. This is the
  paper's own architecture.

Each public builder defaults to the layout of its best public checkpoint,
so `SEResNet50(weights=None)` has the same layout as
`SEResNet50(weights="imagenet")`.

Where the SE block goes (`se_position`, the vocabulary of
`se_keras.applications._se_positions`; the paper's integration ablation):

| value | where |
|---|---|
| "standard" (default) | on the residual branch, before the addition |
| "pre" | before the residual unit |
| "post" | after the addition and ReLU |
| "identity" | on the shortcut |

Layer names are a stable contract (the weight converter relies on them):
see `se_keras.applications.resnet_graph`.
"""

from se_keras._validation import check_choice
from se_keras.applications import _arguments
from se_keras.applications import _public_builders
from se_keras.applications.resnet_graph import BLOCKS  # noqa: F401 - part of this module's API
from se_keras.applications.resnet_graph import DOWNSAMPLES  # noqa: F401
from se_keras.applications.resnet_graph import SE_POSITIONS  # noqa: F401
from se_keras.applications.resnet_graph import STEMS  # noqa: F401
from se_keras.applications.resnet_graph import STRIDE_PLACES  # noqa: F401
from se_keras.applications.resnet_graph import build_resnet
from se_keras.weights import load_weights
from se_keras.weights import registry

# One row per architecture: what does not change between checkpoint layouts.
ARCHITECTURES = {
    "seresnet18": dict(block="basic", depths=(2, 2, 2, 2)),
    "seresnet34": dict(block="basic", depths=(3, 4, 6, 3)),
    "seresnet50": dict(block="bottleneck", depths=(3, 4, 6, 3)),
    "seresnet101": dict(block="bottleneck", depths=(3, 4, 23, 3)),
    "seresnet152": dict(block="bottleneck", depths=(3, 8, 36, 3)),
    "seresnet152d": dict(
        block="bottleneck", depths=(3, 8, 36, 3), stem="deep", stem_width=32,
        downsample="avg", default_size=256,
    ),
    "seresnext26_32x4d": dict(
        block="bottleneck", depths=(2, 2, 2, 2), cardinality=32, base_width=4
    ),
    "seresnext26d_32x4d": dict(
        block="bottleneck", depths=(2, 2, 2, 2), cardinality=32, base_width=4,
        stem="deep", stem_width=32, downsample="avg",
    ),
    "seresnext26t_32x4d": dict(
        block="bottleneck", depths=(2, 2, 2, 2), cardinality=32, base_width=4,
        stem="deep_tiered", stem_width=32, downsample="avg",
    ),
    "seresnext50_32x4d": dict(
        block="bottleneck", depths=(3, 4, 6, 3), cardinality=32, base_width=4
    ),
    "seresnext101_32x4d": dict(
        block="bottleneck", depths=(3, 4, 23, 3), cardinality=32, base_width=4
    ),
    "seresnext101_32x8d": dict(
        block="bottleneck", depths=(3, 4, 23, 3), cardinality=32, base_width=8
    ),
    "seresnext101_64x4d": dict(
        block="bottleneck", depths=(3, 4, 23, 3), cardinality=64, base_width=4
    ),
    "senet154": dict(
        block="bottleneck", depths=(3, 8, 36, 3), cardinality=64, base_width=4,
        stem="deep", stem_width=64, downsample="conv3x3", reduce_first=2,
        dropout_rate=0.2,
    ),
}

# The checkpoint layouts (see the module docstring).
LAYOUTS = {
    "timm": dict(stride_in="3x3", ceil_mode_pool=False, se_width_divisor=8),
    # stride_in is "1x1" only for plain SE-ResNet bottlenecks; the legacy
    # SE-ResNeXt and SENet-154 blocks stride in the 3x3 conv.
    "legacy": dict(stride_in="1x1", ceil_mode_pool=True, se_width_divisor=None),
}


def layout_options(arch, layout):
    """The architecture options of `LAYOUTS[layout]` for one architecture.

    Example:
    >>> layout_options("seresnext50_32x4d", "legacy")["stride_in"]
    '3x3'
    """
    check_choice("layout", layout, tuple(LAYOUTS))
    options = dict(LAYOUTS[layout])
    row = ARCHITECTURES[arch]
    if layout == "legacy" and (
        row["block"] == "basic" or row.get("cardinality", 1) > 1
    ):
        options["stride_in"] = "3x3"
    if layout == "legacy" and row["block"] == "basic":
        # timm's legacy SEResNetBlock (seresnet18/34) applies a ReLU after
        # bn2, before the SE block; its weights were trained that way.
        options["branch_relu"] = True
    return options


# Builder options that pretrained weights do not depend on.
_OPTIONS_KEEPING_WEIGHTS = {
    "include_top", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "dropout_rate", "preprocessing", "include_preprocessing",
}


def resolve_layout(arch, weights=None, layout=None):
    """The checkpoint layout a builder call builds: `layout`, else the weights', else the default.

    A training run records it, so that the run's model is rebuilt in the
    layout it was trained in even when it is rebuilt without its weights.

    Example:
    >>> resolve_layout("seresnext50_32x4d", "legacy_in1k")
    'legacy'
    """
    checkpoint = _registered(arch, weights)
    if checkpoint is not None and layout is not None and layout != checkpoint.layout:
        raise ValueError(
            f"The weights {checkpoint.name!r} need layout="
            f"{checkpoint.layout!r}. Received: layout={layout!r}"
        )
    if layout is None:
        layout = checkpoint.layout if checkpoint else registry.default_layout(arch)
    check_choice("layout", layout, tuple(LAYOUTS))
    return layout


def _registered(arch, weights):
    """The registry row `weights` names ("imagenet" or a tag), or None for a file or None."""
    if isinstance(weights, str) and weights in registry.tags_for(arch) | {"imagenet"}:
        return registry.get(arch, weights)
    return None


def layout_argument(layout, variant):
    """`layout`, or the value of its deprecated old name `variant` (warns; both differing is an error).

    Example:
    >>> layout_argument("legacy", None)
    'legacy'
    """
    if variant is None:
        return layout
    _arguments.warn_deprecated(
        "The `variant` argument is deprecated and will be removed in 0.2; use `layout`."
    )
    if layout is not None and layout != variant:
        raise ValueError(
            "`variant` is the old name of `layout`; pass one of them. "
            f"Received: layout={layout!r}, variant={variant!r}"
        )
    return variant


def _public(arch, *, weights, layout, variant, name, **kwargs):
    """Builds `arch` in the layout its weights need, then loads the weights."""
    layout = resolve_layout(arch, weights, layout_argument(layout, variant))
    checkpoint = _registered(arch, weights)
    if checkpoint is not None:
        changed = sorted(set(kwargs) - _OPTIONS_KEEPING_WEIGHTS)
        if changed:
            # Options such as se_gate or stride_in keep every weight's shape,
            # so the weights would load into a different network and give
            # wrong predictions without any error.
            raise ValueError(
                "Architecture options change the network the pretrained weights "
                "were trained for; use them with weights=None or your own weights "
                f"file. Received: {', '.join(f'{k}={kwargs[k]!r}' for k in changed)}"
            )
    row = dict(ARCHITECTURES[arch])
    if checkpoint is not None:
        row["default_size"] = checkpoint.input_size
    options = {**row, **layout_options(arch, layout), **kwargs}
    if checkpoint is not None:
        options["weights_preprocessing"] = checkpoint.preprocessing_record()
    model = build_resnet(
        weights=weights, known_tags=registry.tags_for(arch), name=name, **options
    )
    if weights is not None:
        load_weights(model, weights, checkpoint=checkpoint, layout=layout)
    return model


# Deprecated names (removed in 0.2): "variant" was this module's word for
# the checkpoint layout, but timm uses it for a model name.
VARIANTS = LAYOUTS
variant_options = layout_options
resolve_variant = resolve_layout


_KERAS_DOCS = {
    "weights": 'None (random initialization), "imagenet" (the best ImageNet-1k '
               "checkpoint), a pretrained tag ({tags}), or a path to a `.weights.h5` "
               "file or a timm checkpoint (`.safetensors` or `.pth`).",
    "input_shape": "optional shape tuple; at least 32x32 with 3 channels for pretrained "
                   "weights. Defaults to ({size}, {size}, 3) with the top.",
    "classes": "number of classes, 1000 with pretrained weights and the top.",
    "classifier_activation": 'activation of the top layer; None or "softmax" with '
                             "pretrained weights.",
}

_OPTIONS = (
    _public_builders.Option(
        "layout", None, '"timm" or "legacy" checkpoint layout; None follows `weights`.'
    ),
    _public_builders.Option(
        "variant", None, "deprecated old name of `layout` (removed in 0.2)."
    ),
)

_KWARGS_DOC = (
    "architecture, SE and preprocessing options of "
    "`se_keras.applications.resnet.build_resnet`: `se=False` for the plain network, "
    "`se_ratio`, `se_gate`, `se_squeeze`, `se_stages`, `se_position` (\"standard\", "
    "\"pre\", \"post\" or \"identity\"; see `se_keras.applications.resnet`), `stride_in`, "
    "`bn_epsilon`, ...; `include_preprocessing` puts the weights' "
    "normalization in the model (its `ImagePreprocessing` layer), so it takes RGB "
    "pixels in [0, 255] (otherwise apply `preprocess_input` yourself); `preprocessing` "
    "overrides fields of the model's `se_keras.Preprocessing` record (a dict or a "
    "record; by default the weights' own, read with `se_keras.get_preprocessing(model)`)."
)


def _builder(func_name, arch, title, default_name, extra=""):
    rows = registry.checkpoints_for(arch)
    size = rows[0].input_size if rows else 224
    tags = ", ".join(repr(c.tag) for c in rows) or "none published"
    keras_docs = {k: v.format(tags=tags, size=size) for k, v in _KERAS_DOCS.items()}
    return _public_builders.public_builder(
        func_name,
        arch=arch,
        build=lambda **kwargs: _public(arch, **kwargs),
        summary=f"Instantiates the {title} architecture.",
        description=(
            (f"{extra}\n" if extra else "")
            + f"The default layout follows the best public checkpoint "
            f"({registry.default_layout(arch)}); pass\n"
            '`layout="timm"` or `layout="legacy"` for the other (see\n'
            "`se_keras.applications.resnet`)."
        ),
        example="weights=None, input_shape=(64, 64, 3), include_top=False",
        name=default_name,
        weights="imagenet",
        size=size,
        keras_docs=keras_docs,
        options=_OPTIONS,
        kwargs_doc=_KWARGS_DOC,
    )


SEResNet18 = _builder("SEResNet18", "seresnet18", "SE-ResNet-18", "se_resnet18")
SEResNet34 = _builder("SEResNet34", "seresnet34", "SE-ResNet-34", "se_resnet34")
SEResNet50 = _builder("SEResNet50", "seresnet50", "SE-ResNet-50", "se_resnet50")
SEResNet101 = _builder("SEResNet101", "seresnet101", "SE-ResNet-101", "se_resnet101")
SEResNet152 = _builder("SEResNet152", "seresnet152", "SE-ResNet-152", "se_resnet152")
SEResNet152D = _builder(
    "SEResNet152D", "seresnet152d", "SE-ResNet-152-D", "se_resnet152d",
    "The 'D' variant: deep 3x3 stem (32, 32, 64) and average-pool downsampling.",
)
SEResNeXt26 = _builder(
    "SEResNeXt26", "seresnext26_32x4d", "SE-ResNeXt-26 (32x4d)", "se_resnext26_32x4d"
)
SEResNeXt26D = _builder(
    "SEResNeXt26D", "seresnext26d_32x4d", "SE-ResNeXt-26-D (32x4d)", "se_resnext26d_32x4d",
    "The 'D' variant: deep 3x3 stem (32, 32, 64) and average-pool downsampling.",
)
SEResNeXt26T = _builder(
    "SEResNeXt26T", "seresnext26t_32x4d", "SE-ResNeXt-26-T (32x4d)", "se_resnext26t_32x4d",
    "The 'T' variant: tiered deep stem (24, 32, 64) and average-pool downsampling.",
)
SEResNeXt50 = _builder(
    "SEResNeXt50", "seresnext50_32x4d", "SE-ResNeXt-50 (32x4d)", "se_resnext50_32x4d"
)
SEResNeXt101 = _builder(
    "SEResNeXt101", "seresnext101_32x4d", "SE-ResNeXt-101 (32x4d)", "se_resnext101_32x4d"
)
SEResNeXt101_32x8d = _builder(
    "SEResNeXt101_32x8d", "seresnext101_32x8d", "SE-ResNeXt-101 (32x8d)",
    "se_resnext101_32x8d",
)
SEResNeXt101_64x4d = _builder(
    "SEResNeXt101_64x4d", "seresnext101_64x4d", "SE-ResNeXt-101 (64x4d)",
    "se_resnext101_64x4d",
)
SENet154 = _builder(
    "SENet154", "senet154", "SENet-154", "senet154",
    "SE-ResNeXt-152 (64x4d) with a deep stem, halved first convs, 3x3 "
    "downsampling shortcuts and dropout 0.2: the paper's ILSVRC 2017 winner.",
)

BUILDERS = {
    f.__name__: f
    for f in (
        SEResNet18, SEResNet34, SEResNet50, SEResNet101, SEResNet152, SEResNet152D,
        SEResNeXt26, SEResNeXt26D, SEResNeXt26T, SEResNeXt50, SEResNeXt101,
        SEResNeXt101_32x8d, SEResNeXt101_64x4d, SENet154,
    )
}
