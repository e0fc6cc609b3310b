"""One `se_position` vocabulary for every family, its deprecated former names, and
the one way the public builders are written."""

import inspect
import re

import pytest

from se_keras.applications import _se_positions
from se_keras.applications import MODELS
from se_keras.applications import SEInceptionResNetV2
from se_keras.applications import SEMobileNetV2
from se_keras.applications import SEShuffleNet
from se_keras.applications import SEVGG16
from se_keras.applications.vgg import build_vgg
from tests.applications import helpers

VOCABULARY = {"standard", "post", "pre", "identity", "inner"}

# family -> {former name: the value it now is}.
FORMER = {
    "resnet": {},
    "inception": {"residual": "standard", "output": "post"},
    "mobilenet": {"output": "standard", "depthwise": "inner"},
    "shufflenet": {"residual": "standard", "output": "post"},
    "vgg": {"block": "standard", "conv": "inner"},
}


def test_every_family_speaks_the_one_vocabulary():
    assert set(_se_positions.FAMILIES) == set(FORMER)
    for family, table in _se_positions.FAMILIES.items():
        assert set(table.positions) <= VOCABULARY
        assert table.positions[0] == "standard"
        assert table.former == FORMER[family]
        assert set(table.docs) == set(table.positions)


@pytest.mark.parametrize("family, old, new", [
    (family, old, new) for family, table in FORMER.items() for old, new in table.items()
])
def test_former_names_warn_and_resolve(family, old, new):
    with pytest.warns(DeprecationWarning, match=rf"se_position={old!r}.*se_position={new!r}"):
        assert _se_positions.resolve(family, old) == new


@pytest.mark.parametrize("family, value", [
    ("resnet", "inner"), ("mobilenet", "pre"), ("shufflenet", "identity"),
    ("vgg", "post"), ("inception", "inner"), ("vgg", ["block"]),
])
def test_other_values_are_rejected(family, value):
    with pytest.raises(ValueError, match=re.escape(f"Received: se_position={value!r}")):
        _se_positions.resolve(family, value)


def _se_inputs(model):
    """SE layer name -> the name of the layer it takes its input from."""
    producers = {id(l.output): l.name for l in model.layers}
    return {l.name: producers[id(l.input)] for l in helpers.se_layers(model)}


@pytest.mark.parametrize("builder, kwargs, old, new", [
    (SEMobileNetV2, dict(alpha=0.35), "depthwise", "inner"),
    (SEShuffleNet, dict(scale=0.25), "output", "post"),
    (SEVGG16, dict(), "block", "standard"),
], ids=lambda v: getattr(v, "__name__", None))
def test_former_names_build_the_same_model(builder, kwargs, old, new):
    kwargs = dict(include_top=False, input_shape=(32, 32, 3), **kwargs)
    with pytest.warns(DeprecationWarning, match=rf"use se_position={new!r}") as record:
        before = builder(se_position=old, **kwargs)
    # The warning names the caller's line, not the library's.
    assert [w.filename for w in record if "se_position" in str(w.message)] == [__file__]
    after = builder(se_position=new, **kwargs)
    assert [l.name for l in before.layers] == [l.name for l in after.layers]
    assert _se_inputs(before) == _se_inputs(after)


def test_inception_resnet_v2_output_is_post():
    with pytest.warns(DeprecationWarning, match="se_position='post'"):
        model = SEInceptionResNetV2(
            include_top=False, input_shape=(75, 75, 3), se_position="output"
        )
    assert model.get_layer("block35_1_se").input is model.get_layer("block35_1_relu").output


def test_generic_builders_accept_former_names():
    with pytest.warns(DeprecationWarning, match="se_position='inner'"):
        model = build_vgg(blocks=((1, 8), (1, 8)), include_top=False, se_position="conv")
    assert [l.name for l in helpers.se_layers(model)] == ["block1_conv1_se", "block2_conv1_se"]


@pytest.mark.parametrize("name", list(MODELS))
def test_public_builders_are_written_one_way(name):
    builder = MODELS[name]
    parameters = list(inspect.signature(builder).parameters)
    assert parameters[:8] == [
        "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
        "classifier_activation", "name",
    ]
    assert builder.__name__ == builder.__qualname__ == name
    assert builder.__module__.startswith("se_keras.applications.")
    assert isinstance(builder.arch, str)
    assert f">>> model = {name}(" in builder.__doc__
    for parameter in parameters:
        assert f"    {parameter}: " in builder.__doc__ or parameter == "kwargs"
    if "kwargs" not in parameters:
        with pytest.raises(TypeError, match=rf"{name}\(\) got an unexpected keyword"):
            builder(no_such_argument=1)
