"""SE-MobileNet (v1) and SE-MobileNetV2: counts against keras and the paper, builder API."""

import keras
import numpy as np
import pytest

from se_keras.applications import mobilenet
from se_keras.applications.mobilenet import SEMobileNet
from se_keras.applications.mobilenet import SEMobileNetV2
from se_keras.utils import count_flops
from se_keras.utils import count_params
from tests.applications import helpers

# The paper (Hu et al., table 3): MobileNet 1.0 at 224 -> SE-MobileNet,
# parameters and MFLOPs (multiply-adds).
PAPER_MOBILENET = dict(params=(4.2e6, 4.7e6), flops=(569e6, 572e6))

KERAS_REFERENCES = {
    SEMobileNet: keras.applications.MobileNet,
    SEMobileNetV2: keras.applications.MobileNetV2,
}

# The inputs of the SE blocks at 224x224, (size, channels), from the
# networks' tables (Howard et al. 2017, table 1; Sandler et al. 2018, table 2).
# v1, se_position="standard": each depthwise-separable block's pointwise output.
V1_OUTPUT_MAPS = (
    [(112, 64), (56, 128), (56, 128), (28, 256), (28, 256)] + [(14, 512)] * 6 + [(7, 1024)] * 2
)
# v1, se_position="inner": each block's depthwise output (its input width).
V1_DEPTHWISE_MAPS = (
    [(112, 32), (56, 64), (56, 128), (28, 128), (28, 256), (14, 256)] + [(14, 512)] * 5
    + [(7, 512), (7, 1024)]
)
# v2, se_position="standard": each inverted residual block's linear projection.
V2_OUTPUT_MAPS = (
    [(112, 16)] + [(56, 24)] * 2 + [(28, 32)] * 3 + [(14, 64)] * 4 + [(14, 96)] * 3
    + [(7, 160)] * 3 + [(7, 320)]
)


@pytest.mark.parametrize("builder", list(KERAS_REFERENCES), ids=lambda b: b.__name__)
def test_plain_network_has_keras_counts(models, builder):
    plain = models(builder, se=False)
    assert not helpers.se_layers(plain)
    reference = KERAS_REFERENCES[builder](weights=None)
    assert count_params(plain) == count_params(reference)
    assert count_flops(plain) == count_flops(reference)
    # keras' MobileNet classifies with a 1x1 convolution, ours with Dense;
    # everything before the head has the same weights in the same order.
    body = [tuple(w.shape) for w in plain.weights[:-2]]
    assert body == [tuple(w.shape) for w in reference.weights[:-2]]


def test_se_mobilenet_matches_the_paper(models):
    """SE (r = 16) on every depthwise-separable block's output gives 4.2M -> 4.7M."""
    plain, se = models(SEMobileNet, se=False), models(SEMobileNet)
    # keras' MobileNet (test above) plus exactly the 13 SE blocks.
    params, flops = helpers.assert_adds_exactly_the_se_blocks(se, plain, V1_OUTPUT_MAPS)
    assert params == pytest.approx(PAPER_MOBILENET["params"], rel=0.02)
    assert flops == pytest.approx(PAPER_MOBILENET["flops"], rel=0.02)


def test_depthwise_placement_does_not_reproduce_the_paper(models):
    # SE after the depthwise convolutions gates each block's input
    # channels (fewer): 4.59M parameters, not the paper's 4.7M.
    plain = models(SEMobileNet, se=False)
    model = models(SEMobileNet, se_position="inner")
    params, _ = helpers.assert_adds_exactly_the_se_blocks(model, plain, V1_DEPTHWISE_MAPS)
    assert params[1] < 0.98 * PAPER_MOBILENET["params"][1]
    assert model.get_layer("block1_se").input is model.get_layer("block1_dw_relu").output


def test_se_mobilenet_v2_adds_its_se_blocks(models):
    # The paper has no SE-MobileNetV2: keras' MobileNetV2 (test above) plus
    # exactly the 17 SE blocks.
    plain, se = models(SEMobileNetV2, se=False), models(SEMobileNetV2)
    helpers.assert_adds_exactly_the_se_blocks(se, plain, V2_OUTPUT_MAPS)


def test_width_multiplier_follows_keras():
    # keras.applications.MobileNetV2(alpha=1.4, weights=None,
    # input_shape=(96, 96, 3)) has 6,108,776 trainable parameters (Keras
    # 3.15.1, `count_params`). Above alpha 1 the last convolution widens too.
    plain = SEMobileNetV2(se=False, alpha=1.4, input_shape=(96, 96, 3))
    assert count_params(plain) == 6_108_776
    assert plain.get_layer("top_conv").filters == 1792


def test_layer_names_are_a_stable_contract(models):
    v1 = models(SEMobileNet)
    names = [layer.name for layer in v1.layers]
    assert names[:13] == [
        "input_layer", "preprocessing", "stem_conv_pad", "stem_conv", "stem_bn", "stem_relu",
        "block1_dw_conv", "block1_dw_bn", "block1_dw_relu",
        "block1_pw_conv", "block1_pw_bn", "block1_pw_relu", "block1_se",
    ]
    assert [l.name for l in helpers.se_layers(v1)] == [f"block{b}_se" for b in range(1, 14)]
    assert names[-3:] == ["avg_pool", "dropout", "predictions"]
    v2 = models(SEMobileNetV2)
    assert [l.name for l in helpers.se_layers(v2)] == [f"block{b}_se" for b in range(1, 18)]
    block = [l.name for l in v2.layers if l.name.startswith("block3_")]
    assert block == [
        "block3_expand_conv", "block3_expand_bn", "block3_expand_relu",
        "block3_dw_conv", "block3_dw_bn", "block3_dw_relu",
        "block3_project_conv", "block3_project_bn", "block3_se", "block3_add",
    ]
    # SE on the residual branch, before the addition.
    assert v2.get_layer("block3_se").input is v2.get_layer("block3_project_bn").output
    assert v2.get_layer("top_relu").output.shape == (None, 7, 7, 1280)


@pytest.mark.parametrize("builder", [SEMobileNet, SEMobileNetV2], ids=lambda b: b.__name__)
def test_forward(models, builder):
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    probs = np.asarray(models(builder)(x))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_round_trip(tmp_path):
    # MobileNetV2 has every layer type of v1 and more (Add).
    model = SEMobileNetV2(input_shape=(64, 64, 3), classes=7, alpha=0.5)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    probs = np.asarray(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(probs, np.asarray(loaded(x)))


def test_include_top_false_pooling_shapes():
    helpers.assert_pooled(SEMobileNetV2, "avg", 1280, input_shape=(96, 96, 3))
    # Any size without the top.
    model = helpers.assert_pooled(SEMobileNet, "max", 1024)
    helpers.assert_any_input_size(model, (65, 47), (1, 1024))


def test_input_tensor_and_se_options():
    model = helpers.build_on_input_tensor(
        SEMobileNetV2, se_ratio=4, se_gate="tanh", se_squeeze="max", se_position="inner"
    )
    helpers.assert_se_options(model, 17, ratio=4, gate="tanh", squeeze="max")
    # In the expanded space: block2 expands 16 channels 6 times.
    assert model.get_layer("block2_se").channels == 96
    assert model.get_layer("block2_se").width == 24


BAD_ARGUMENTS = helpers.bad_arguments() + [
    (dict(alpha=0), r"Received: alpha=0"),
    (dict(se_ratio=-1), r"Received: se_ratio=-1"),
    (dict(se_gate="swish"), r"Received: se_gate='swish'"),
    (dict(se_position="pre"), r"Received: se_position='pre'"),
]


@pytest.mark.parametrize("builder", [SEMobileNet, SEMobileNetV2], ids=lambda b: b.__name__)
@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


def test_depth_multiplier_is_v1_only():
    with pytest.raises(ValueError, match=r"Received: depth_multiplier=2"):
        mobilenet.build_mobilenet(version=2, depth_multiplier=2)
    model = SEMobileNet(depth_multiplier=2, include_top=False, input_shape=(32, 32, 3))
    assert model.get_layer("block1_dw_conv").output.shape[-1] == 64
