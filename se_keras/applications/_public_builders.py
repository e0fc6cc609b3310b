"""How every family writes its public builders (`SEResNet50`, `SEMobileNet`, ...).

`public_builder` makes one function per model with an explicit
keras.applications-style signature: `include_top, weights, input_tensor,
input_shape, pooling, classes, classifier_activation, name` (positional or
keyword), then the family's options, then `**kwargs` where the family takes
architecture options that way. `inspect.signature` shows them all. The
function gets a per-builder Google-style docstring with an example, its
`__name__` / `__qualname__` / `__module__`, and `arch` (the architecture
row it builds, read by the catalog, the timm names and the command line).
"""

import collections
import inspect
import textwrap

from se_keras.applications import _se_positions

Option = collections.namedtuple("Option", ["name", "default", "doc"])
Option.__doc__ = "One argument of a public builder: its name, default and docstring line."

KERAS_ARGUMENTS = (
    "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "name",
)

_KERAS_DOCS = {
    "include_top": "whether to include the classifier on top.",
    "weights": "None (random initialization) or a `.weights.h5` path.",
    "input_tensor": "optional Keras tensor to use as image input.",
    "input_shape": "optional shape tuple, at least {min_size}x{min_size}; defaults to "
                   "({size}, {size}, 3) with the top.",
    "pooling": 'None, "avg" or "max": global pooling when `include_top=False`.',
    "classes": "number of classes.",
    "classifier_activation": "activation of the top layer.",
    "name": "the model's name.",
}


def se_options(family):
    """The SE options every family takes, in this order; `se_position` if `family` has one."""
    rows = [
        Option("se", True, "False builds the plain network from the same code."),
        Option("se_ratio", 16, "SE reduction ratio r (width C // r)."),
        Option("se_gate", "sigmoid", '"sigmoid", "hard_sigmoid", "tanh" or "relu".'),
        Option("se_squeeze", "avg", '"avg" or "max" global pooling.'),
    ]
    if family is not None:
        rows.append(Option("se_position", _se_positions.STANDARD, _se_positions.describe(family)))
    return rows


PREPROCESSING_OPTIONS = (
    Option("preprocessing", None, "fields of the model's `se_keras.Preprocessing` record to "
           "override (a dict or a record); see `se_keras.preprocessing`."),
    Option("include_preprocessing", False, "normalize inside the model, so that it takes RGB "
           "pixels in [0, 255]."),
)

_TEMPLATE = """{summary}

Reference: Hu et al., "Squeeze-and-Excitation Networks" (arXiv 1709.01507).
{description}

Args:
{args}

Returns:
    A `keras.Model`.

Example:
>>> from se_keras.applications import {func}
>>> model = {func}({example})
"""


def _arg_lines(options):
    return "\n".join(
        textwrap.fill(
            f"{o.name}: {o.doc}", width=76, initial_indent="    ", subsequent_indent="        ",
            break_long_words=False, break_on_hyphens=False,
        )
        for o in options
    )


def public_builder(
    func_name, *, arch, build, summary, description, example, name, weights=None,
    classes=1000, options=(), kwargs_doc=None, keras_docs=None, size=224, min_size=32,
):
    """A public builder `func_name(include_top=True, weights=..., ..., name=name, *options)`.

    Args:
        func_name: the function's name, e.g. "SEMobileNet".
        arch: the architecture it builds (`builder.arch`).
        build: called with every argument by keyword (`**kwargs` merged in);
            returns the model.
        summary: the docstring's first line.
        description: the paragraph after the reference.
        example: the arguments of the docstring's example call.
        name, weights, classes: the defaults of those keras arguments.
        options: the family's `Option` rows, after the keras arguments.
        kwargs_doc: takes `**kwargs` (documented by this line) if not None.
        keras_docs: docstring lines overriding the keras arguments' own.
        size, min_size: the default and smallest input size, for the docs.

    Returns:
        The builder function.

    Example:
    >>> f = public_builder("Tiny", arch="tiny", build=dict, summary="A model.",
    ...                    description="", example="", name="tiny")
    >>> f(classes=3)["classes"]
    3
    """
    defaults = dict(
        include_top=True, weights=weights, input_tensor=None, input_shape=None, pooling=None,
        classes=classes, classifier_activation="softmax", name=name,
    )
    docs = {**_KERAS_DOCS, **(keras_docs or {})}
    docs["input_shape"] = docs["input_shape"].format(size=size, min_size=min_size)
    arguments = [Option(k, defaults[k], docs[k]) for k in KERAS_ARGUMENTS] + list(options)
    parameters = [
        inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o.default)
        for o in arguments
    ]
    documented = list(arguments)
    if kwargs_doc is not None:
        parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
        documented.append(Option("**kwargs", None, kwargs_doc))
    signature = inspect.Signature(parameters)

    def builder(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{func_name}() {error}") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.update(values.pop("kwargs", {}))
        return build(**values)

    builder.__signature__ = signature
    builder.__name__ = builder.__qualname__ = func_name
    builder.__module__ = build.__module__
    builder.__doc__ = _TEMPLATE.format(
        summary=summary,
        description=description,
        args=_arg_lines(documented),
        func=func_name,
        example=example,
    )
    builder.arch = arch
    return builder
