"""SE-MobileNet (v1) and SE-MobileNetV2: counts against the paper and keras, builder API."""

import keras
import numpy as np
import pytest

from se_keras.applications import mobilenet
from se_keras.layers import SqueezeExcitation
from se_keras.utils import count_flops
from se_keras.utils import count_params

# (builder, plain params, plain multiply-adds, SE params, SE multiply-adds)
# at 224x224 with the default SE options (r = 16, se_position="output").
COUNTS = {
    "SEMobileNet": (4_231_976, 568_740_352, 4_718_044, 574_639_104),
    "SEMobileNetV2": (3_504_872, 300_774_272, 3_534_885, 301_947_328),
}

# The paper (Hu et al., table 3): MobileNet 1.0 at 224, params and MFLOPs.
PAPER_MOBILENET = dict(params=(4.2e6, 4.7e6), flops=(569e6, 572e6))

KERAS_REFERENCES = {
    "SEMobileNet": keras.applications.MobileNet,
    "SEMobileNetV2": keras.applications.MobileNetV2,
}


@pytest.fixture(scope="module")
def models():
    """Each (builder, se) model at 224x224 with the top, built once for the module."""
    cache = {}

    def get(name, se=True):
        if (name, se) not in cache:
            cache[name, se] = mobilenet.BUILDERS[name](se=se)
        return cache[name, se]

    return get


def _se_layers(model):
    return [layer for layer in model.layers if isinstance(layer, SqueezeExcitation)]


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_and_flops_counts(models, name):
    plain_params, plain_flops, se_params, se_flops = COUNTS[name]
    plain, se = models(name, se=False), models(name)
    assert not _se_layers(plain)
    assert (count_params(plain), count_flops(plain)) == (plain_params, plain_flops)
    assert (count_params(se), count_flops(se)) == (se_params, se_flops)


def test_se_mobilenet_matches_the_paper():
    """SE (r = 16) on every depthwise-separable block's output gives 4.2M -> 4.7M."""
    plain_params, plain_flops, se_params, se_flops = COUNTS["SEMobileNet"]
    assert plain_params == pytest.approx(PAPER_MOBILENET["params"][0], rel=0.02)
    assert se_params == pytest.approx(PAPER_MOBILENET["params"][1], rel=0.02)
    assert plain_flops == pytest.approx(PAPER_MOBILENET["flops"][0], rel=0.02)
    assert se_flops == pytest.approx(PAPER_MOBILENET["flops"][1], rel=0.02)


def test_depthwise_placement_does_not_reproduce_the_paper():
    # SE after the depthwise convolutions gates each block's input
    # channels (fewer): 4.59M parameters, not the paper's 4.7M.
    model = mobilenet.SEMobileNet(se_position="depthwise")
    assert count_params(model) == 4_586_046
    assert count_params(model) < 0.98 * PAPER_MOBILENET["params"][1]
    assert model.get_layer("block1_se").input is model.get_layer("block1_dw_relu").output


@pytest.mark.parametrize("name", list(KERAS_REFERENCES))
def test_plain_network_has_keras_parameters(models, name):
    plain = models(name, se=False)
    reference = KERAS_REFERENCES[name](weights=None)
    assert count_params(plain) == count_params(reference) == COUNTS[name][0]
    assert count_flops(plain) == count_flops(reference)
    # keras' MobileNet classifies with a 1x1 convolution, ours with Dense;
    # everything before the head has the same weights in the same order.
    body = [tuple(w.shape) for w in plain.weights[:-2]]
    assert body == [tuple(w.shape) for w in reference.weights[:-2]]


def test_width_multiplier_follows_keras():
    # keras.applications.MobileNetV2(alpha=1.4, weights=None): 6,108,776
    # trainable parameters. Above alpha 1 the last convolution widens too.
    plain = mobilenet.SEMobileNetV2(se=False, alpha=1.4, input_shape=(96, 96, 3))
    assert count_params(plain) == 6_108_776
    assert plain.get_layer("top_conv").filters == 1792


def test_layer_names_are_a_stable_contract(models):
    v1 = models("SEMobileNet")
    names = [layer.name for layer in v1.layers]
    assert names[:12] == [
        "input_layer", "stem_conv_pad", "stem_conv", "stem_bn", "stem_relu",
        "block1_dw_conv", "block1_dw_bn", "block1_dw_relu",
        "block1_pw_conv", "block1_pw_bn", "block1_pw_relu", "block1_se",
    ]
    assert [l.name for l in _se_layers(v1)] == [f"block{b}_se" for b in range(1, 14)]
    assert names[-3:] == ["avg_pool", "dropout", "predictions"]
    v2 = models("SEMobileNetV2")
    assert [l.name for l in _se_layers(v2)] == [f"block{b}_se" for b in range(1, 18)]
    block = [l.name for l in v2.layers if l.name.startswith("block3_")]
    assert block == [
        "block3_expand_conv", "block3_expand_bn", "block3_expand_relu",
        "block3_dw_conv", "block3_dw_bn", "block3_dw_relu",
        "block3_project_conv", "block3_project_bn", "block3_se", "block3_add",
    ]
    # SE on the residual branch, before the addition.
    assert v2.get_layer("block3_se").input is v2.get_layer("block3_project_bn").output
    assert v2.get_layer("top_relu").output.shape == (None, 7, 7, 1280)


@pytest.mark.parametrize("name", list(COUNTS))
def test_forward(models, name):
    model = models(name)
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    probs = np.asarray(model(x))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_round_trip(tmp_path):
    # MobileNetV2 has every layer type of v1 and more (Add).
    model = mobilenet.SEMobileNetV2(input_shape=(64, 64, 3), classes=7, alpha=0.5)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    probs = np.asarray(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(probs, np.asarray(loaded(x)))


def test_include_top_false_pooling_shapes():
    model = mobilenet.SEMobileNetV2(include_top=False, pooling="avg", input_shape=(96, 96, 3))
    assert model.output.shape == (None, 1280)
    # Any size without the top.
    model = mobilenet.SEMobileNet(include_top=False, pooling="max")
    assert model.input.shape == (None, None, None, 3)
    assert model(np.zeros((1, 65, 47, 3), "float32")).shape == (1, 1024)


def test_input_tensor_and_se_options():
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    model = mobilenet.SEMobileNetV2(
        input_tensor=x, classes=5, se_ratio=4, se_gate="tanh", se_squeeze="max",
        se_position="depthwise",
    )
    assert model.inputs[0] is inputs
    assert model.output.shape == (None, 5)
    se = _se_layers(model)
    assert len(se) == 17
    assert all(l.gate == "tanh" and l.squeeze == "max" and l.ratio == 4 for l in se)
    # In the expanded space: block2 expands 16 channels 6 times.
    assert model.get_layer("block2_se").channels == 96
    assert model.get_layer("block2_se").width == 24


BAD_ARGUMENTS = [
    (dict(weights="imagenet"), r"Received: weights='imagenet'"),
    (dict(classes=0), r"Received: classes=0"),
    (dict(input_shape=(16, 16, 3)), r"at least 32x32.*Received: input_shape=\(16, 16, 3\)"),
    (dict(input_shape=(64, 64)), r"three integers.*Received: input_shape=\(64, 64\)"),
    (dict(input_shape=(None, None, 3)), r"static.*Received: input_shape=\(None, None, 3\)"),
    (dict(include_top=False, pooling="median"), r"Received: pooling='median'"),
    (dict(alpha=0), r"Received: alpha=0"),
    (dict(se_ratio=-1), r"Received: se_ratio=-1"),
    (dict(se_gate="swish"), r"Received: se_gate='swish'"),
    (dict(se_position="pre"), r"Received: se_position='pre'"),
]


@pytest.mark.parametrize("name", list(COUNTS))
@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mobilenet.BUILDERS[name](**kwargs)


def test_depth_multiplier_is_v1_only():
    with pytest.raises(ValueError, match=r"Received: depth_multiplier=2"):
        mobilenet.build_mobilenet(version=2, depth_multiplier=2)
    model = mobilenet.SEMobileNet(depth_multiplier=2, include_top=False, input_shape=(32, 32, 3))
    assert model.get_layer("block1_dw_conv").output.shape[-1] == 64
