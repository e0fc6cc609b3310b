"""SE-ResNet / SE-ResNeXt / SENet-154 builders: architecture, names, arguments."""

import functools
import pathlib

import keras
import numpy as np
import pytest

from se_keras.applications import resnet
from se_keras.layers import SqueezeExcitation
from se_keras.utils import count_params
from se_keras.weights.timm_converter import keras_targets
from tests.weights import checkpoint_generator as gen

# timm's parameter counts (timm.create_model(name).parameters(), timm 1.0).
TIMM_PARAMS = [
    ("SEResNet50", "timm", 28_088_024),
    ("SEResNet152D", "timm", 66_841_080),
    ("SEResNeXt26D", "timm", 16_809_512),
    ("SEResNeXt26T", "timm", 16_806_976),
    ("SEResNeXt50", "timm", 27_559_896),
    ("SEResNeXt101", "timm", 48_955_416),
    ("SEResNeXt101_32x8d", "timm", 93_569_048),
    ("SEResNeXt101_64x4d", "timm", 88_232_984),
    ("SENet154", "timm", 115_088_984),
    ("SEResNet18", "legacy", 11_778_592),
    ("SEResNet34", "legacy", 21_958_868),
    ("SEResNet50", "legacy", 28_088_024),
    ("SEResNet101", "legacy", 49_326_872),
    ("SEResNet152", "legacy", 66_821_848),
    ("SEResNeXt26", "legacy", 16_790_280),
    ("SEResNet18", "timm", 11_779_624),
    ("SEResNet34", "timm", 21_960_416),
]


@pytest.mark.parametrize("name,layout,expected", TIMM_PARAMS)
def test_parameter_counts_equal_timm(name, layout, expected):
    model = resnet.BUILDERS[name](weights=None, layout=layout)
    assert count_params(model) == expected


def test_plain_resnet50_matches_timm_resnet50():
    model = resnet.SEResNet50(weights=None, se=False)
    assert count_params(model) == 25_557_032
    assert not any(isinstance(layer, SqueezeExcitation) for layer in model.layers)
    # Same graph shape as torchvision-style ResNet-50: every tensor of timm's
    # resnet50 state dict has a Keras weight of the matching shape.
    fixture = pathlib.Path(__file__).parents[1] / "fixtures" / "timm" / "resnet50.npz"
    keys_shapes, _, _, _ = gen.load_fixture(fixture)
    timm_shapes = {k: s for k, s in keys_shapes if not k.endswith("num_batches_tracked")}
    targets = keras_targets(model, "timm")
    assert set(targets) == set(timm_shapes)
    for key, (variable, transform) in targets.items():
        dummy = np.zeros(timm_shapes[key], "float32")
        assert (transform(dummy) if transform else dummy).shape == tuple(variable.shape), key


SIZES = {name: 224 for name in resnet.BUILDERS} | {"SEResNet152D": 256}
# Saved to a .keras file and loaded back. Together they use every layer class
# of every builder (checked below), so the larger builders are not written
# to disk as well (SENet-154's 460 MB took 30 s and proved nothing more).
ROUND_TRIPS = {
    "SEResNet18": {"dropout_rate": 0.2},  # SENet-154's head dropout
    "SEResNet50": {},
    "SEResNeXt26T": {},  # deep stem, average-pool shortcuts, grouped convs
}


@pytest.mark.parametrize("name,kwargs", ROUND_TRIPS.items())
def test_keras_file_round_trip(name, kwargs, tmp_path):
    model = resnet.BUILDERS[name](weights=None, input_shape=(64, 64, 3), **kwargs)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))


@functools.lru_cache(maxsize=None)
def _round_tripped_layer_classes():
    classes = set()
    for name, kwargs in ROUND_TRIPS.items():
        model = resnet.BUILDERS[name](weights=None, input_shape=(64, 64, 3), **kwargs)
        classes |= {type(layer) for layer in model.layers}
    return classes


@pytest.mark.parametrize("name", list(resnet.BUILDERS))
def test_builds_and_runs_at_the_default_size(name):
    model = resnet.BUILDERS[name](weights=None)
    size = SIZES[name]
    assert model.input.shape == (None, size, size, 3)
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32")
    probs = np.asarray(model(x))
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    untested = {type(layer).__name__ for layer in model.layers} - {
        cls.__name__ for cls in _round_tripped_layer_classes()}
    assert not untested, f"add a builder using {untested} to ROUND_TRIPS"


# (builder, feature width, final map size of a 65x47 input). SEResNet18
# defaults to the legacy layout, whose ceil-mode stem pool gives 2x2 (as
# SENet-154's does; its odd-size output is checked against timm at 193 px
# in tests/weights/test_timm_converter.py).
POOLING_CASES = [
    ("SEResNet18", 512, (2, 2)),
    ("SEResNeXt26D", 2048, (3, 2)),
    ("SEResNet50", 2048, (3, 2)),
]


@pytest.mark.parametrize("name,width,final", POOLING_CASES)
def test_include_top_false_pooling_shapes(name, width, final):
    builder = resnet.BUILDERS[name]
    expected = {None: (None, 3, 3, width), "avg": (None, width), "max": (None, width)}
    for pooling, shape in expected.items():
        model = builder(weights=None, include_top=False, pooling=pooling, input_shape=(96, 96, 3))
        assert model.output.shape == shape
    # Any spatial size without the top.
    model = builder(weights=None, include_top=False)
    assert model.input.shape == (None, None, None, 3)
    assert model(np.zeros((1, 65, 47, 3), "float32")).shape == (1, *final, width)


def test_input_tensor():
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    model = resnet.SEResNet18(weights=None, input_tensor=x, classes=5)
    assert model.inputs[0] is inputs
    assert model(np.zeros((2, 64, 64, 3), "float32")).shape == (2, 5)


def test_layer_names_are_a_stable_contract():
    model = resnet.SEResNet50(weights=None, layout="legacy")
    names = [layer.name for layer in model.layers]
    assert names == [layer.name for layer in resnet.SEResNet50(weights=None, layout="legacy").layers]
    block = [n for n in names if n.startswith("stage2_block1_")]
    assert block == [
        "stage2_block1_conv1", "stage2_block1_bn1", "stage2_block1_relu1",
        "stage2_block1_conv2", "stage2_block1_bn2", "stage2_block1_relu2",
        "stage2_block1_conv3", "stage2_block1_down_conv", "stage2_block1_bn3",
        "stage2_block1_down_bn", "stage2_block1_se", "stage2_block1_add",
        "stage2_block1_out",
    ]
    assert names[:8] == [
        "input_layer", "preprocessing", "stem_conv1_pad", "stem_conv1", "stem_bn1", "stem_relu1",
        "stem_pool_pad", "stem_pool",
    ]
    assert names[-2:] == ["avg_pool", "predictions"]
    se_names = [layer.name for layer in model.layers if isinstance(layer, SqueezeExcitation)]
    assert se_names == [
        f"stage{s}_block{b}_se" for s, depth in enumerate((3, 4, 6, 3), 1)
        for b in range(1, depth + 1)
    ]
    deep = {layer.name for layer in resnet.SENet154(weights=None, include_top=False).layers}
    assert {"stem_conv3", "stem_bn3", "stage2_block1_down_conv_pad",
            "stage3_block36_se"} <= deep
    avg = {layer.name for layer in resnet.SEResNeXt26D(weights=None, include_top=False).layers}
    assert {"stage2_block1_down_pool", "stage1_block1_down_conv"} <= avg
    assert "stage1_block1_down_pool" not in avg  # stride 1: no pool, as in timm


def _se_layers(model):
    return [layer for layer in model.layers if isinstance(layer, SqueezeExcitation)]


def test_se_options_reach_every_block():
    model = resnet.SEResNet18(
        weights=None, include_top=False, se_ratio=4, se_gate="hard_sigmoid",
        se_squeeze="max", se_stages=(2, 4),
    )
    se = _se_layers(model)
    assert [layer.name for layer in se] == [
        "stage2_block1_se", "stage2_block2_se", "stage4_block1_se", "stage4_block2_se"
    ]
    assert all(l.gate == "hard_sigmoid" and l.squeeze == "max" and l.ratio == 4 for l in se)
    assert [l.width for l in se] == [32, 32, 128, 128]


def test_se_positions():
    counts = {}
    for position in resnet.SE_POSITIONS:
        model = resnet.SEResNet50(weights=None, include_top=False, se_position=position)
        counts[position] = count_params(model)
        se = _se_layers(model)
        assert len(se) == 16
        inbound = model.get_layer("stage1_block1_se").input
        producer = next(layer.name for layer in model.layers if layer.output is inbound)
        assert producer == {
            "pre": "stem_pool", "identity": "stage1_block1_down_bn",
            "post": "stage1_block1_out", "standard": "stage1_block1_bn3",
        }[position]
    # Standard, post and identity gate the block's output channels; pre gates
    # its input channels (fewer in each stage's first block).
    assert counts["standard"] == counts["post"] == counts["identity"] == 28_088_024 - 2048 * 1000 - 1000
    assert counts["pre"] < counts["standard"]


def test_legacy_and_timm_layouts_differ_where_timm_says():
    legacy = resnet.SEResNet50(weights=None, layout="legacy", include_top=False)
    timm = resnet.SEResNet50(weights=None, layout="timm", include_top=False)
    assert legacy.get_layer("stage2_block1_conv1").strides == (2, 2)
    assert legacy.get_layer("stage2_block1_conv2").strides == (1, 1)
    assert timm.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert timm.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert legacy.get_layer("stem_pool_pad").padding == ((0, 1), (0, 1))
    assert timm.get_layer("stem_pool_pad").padding == ((1, 1), (1, 1))
    # The legacy ResNeXt strides in the 3x3 conv like timm.
    legacy_x = resnet.SEResNeXt50(weights=None, layout="legacy", include_top=False)
    assert legacy_x.get_layer("stage2_block1_conv2").strides == (2, 2)
    # SE widths: timm rounds C/16 to a multiple of 8, legacy floors.
    assert resnet.SEResNet18(weights=None, layout="timm").get_layer("stage1_block1_se").width == 8
    assert resnet.SEResNet18(weights=None, layout="legacy").get_layer("stage1_block1_se").width == 4


def test_default_layout_follows_the_best_checkpoint():
    assert resnet.SEResNet50(weights=None).get_layer("stage2_block1_conv2").strides == (2, 2)
    assert resnet.SEResNet101(weights=None, include_top=False).get_layer(
        "stage2_block1_conv1").strides == (2, 2)
    # SENet-154's best checkpoint is the legacy port (81.32 vs gluon 81.26).
    senet = resnet.SENet154(weights=None, include_top=False)
    assert senet.get_layer("stem_pool_pad").padding == ((0, 1), (0, 1))


def test_include_preprocessing_takes_raw_pixels():
    from se_keras.applications import preprocess_input

    raw = resnet.SEResNet18(weights=None, include_preprocessing=True, input_shape=(64, 64, 3))
    plain = resnet.SEResNet18(weights=None, input_shape=(64, 64, 3))
    plain.set_weights(raw.get_weights())
    assert raw.layers[1].name == "preprocessing"
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(raw(x)), np.asarray(plain(preprocess_input(x))), rtol=1e-5, atol=1e-6
    )


def test_bn_epsilon_and_momentum_are_pytorch_compatible():
    model = resnet.SEResNet18(weights=None, include_top=False)
    bn = model.get_layer("stage1_block1_bn1")
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9


def test_mixed_precision_head_is_float32():
    keras.config.set_dtype_policy("mixed_float16")
    model = resnet.SEResNet18(weights=None, classes=7, input_shape=(64, 64, 3))
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    assert out.dtype == "float32"
    assert model.get_layer("stage1_block1_conv1").compute_dtype == "float16"


def test_channels_first_on_cpu_is_a_clear_error():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="Received: image_data_format='channels_first'"):
            resnet.SEResNet18(weights=None, input_shape=(3, 64, 64))
    finally:
        keras.config.set_image_data_format("channels_last")


BAD_ARGUMENTS = [
    (dict(weights="foo"), r"Received: weights='foo'"),
    (dict(weights="imagenet", classes=10), r"Received: classes=10"),
    (dict(weights="legacy_in1k", classes=10), r"Received: classes=10"),
    (dict(classes=0), r"Received: classes=0"),
    (dict(weights=None, input_shape=(16, 16, 3)), r"at least 32x32.*Received: input_shape=\(16, 16, 3\)"),
    (dict(weights="imagenet", input_shape=(64, 64, 1)), r"3 channels.*Received: input_shape=\(64, 64, 1\)"),
    (dict(weights=None, input_shape=(64, 64)), r"three integers.*Received: input_shape=\(64, 64\)"),
    (dict(weights=None, input_shape=(None, None, 3)), r"static.*Received: input_shape=\(None, None, 3\)"),
    (dict(weights=None, include_top=False, pooling="median"), r"Received: pooling='median'"),
    (dict(weights="imagenet", classifier_activation="relu"), r"Received: classifier_activation='relu'"),
    (dict(weights=None, layout="caffe"), r"Received: layout='caffe'"),
    (dict(weights="legacy_in1k", layout="timm"), r"need layout='legacy'.*Received: layout='timm'"),
    (dict(weights=None, se_position="middle"), r"Received: se_position='middle'"),
    (dict(weights=None, se_stages=(0, 5)), r"Received: se_stages=\(0, 5\)"),
    (dict(weights=None, se_ratio=0), r"Received: se_ratio=0"),
    (dict(weights=None, stride_in="7x7"), r"Received: stride_in='7x7'"),
    (dict(weights=None, se_gate="softmax"), r"Received: se_gate='softmax'"),
    (dict(weights=None, se=False, se_squeeze="median"), r"Received: se_squeeze='median'"),
    (dict(weights="imagenet", se_gate="tanh"), r"pretrained weights.*Received: se_gate='tanh'"),
    (dict(weights="a1_in1k", stride_in="1x1", bn_epsilon=1e-3),
     r"Received: bn_epsilon=0.001, stride_in='1x1'"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet.SEResNet50(**kwargs)


def test_variant_is_a_deprecated_alias_of_layout():
    with pytest.warns(DeprecationWarning, match="use `layout`"):
        old = resnet.SEResNet18(weights=None, variant="legacy", input_shape=(64, 64, 3))
    new = resnet.SEResNet18(weights=None, layout="legacy", input_shape=(64, 64, 3))
    assert [layer.name for layer in old.layers] == [layer.name for layer in new.layers]
    assert old.get_layer("stage1_block1_se").width == 4  # the legacy C // 16 rule
    with pytest.raises(ValueError, match=r"Received: layout='timm', variant='legacy'"):
        resnet.SEResNet18(weights=None, layout="timm", variant="legacy")
