"""SE-BN-Inception, SE-Inception-v3, SE-Inception-ResNet-v2: counts, keras parity, API."""

import keras
import numpy as np
import pytest

from se_keras.applications import inception
from se_keras.applications.inception import SEBNInception
from se_keras.applications.inception import SEInceptionResNetV2
from se_keras.applications.inception import SEInceptionV3
from se_keras.utils import count_flops
from se_keras.utils import count_params
from tests.applications import helpers

# BN-Inception's modules at 224x224 (Ioffe & Szegedy 2015, figure 5): input
# size, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool
# projection (0: the pool passes through), stride; modules 3a ... 5b.
FIGURE_5 = (
    (28, 64, 64, 64, 64, 96, 32, 1),
    (28, 64, 64, 96, 64, 96, 64, 1),
    (28, 0, 128, 160, 64, 96, 0, 2),
    (14, 224, 64, 96, 96, 128, 128, 1),
    (14, 192, 96, 128, 96, 128, 128, 1),
    (14, 160, 128, 160, 128, 160, 128, 1),
    (14, 96, 128, 192, 160, 192, 128, 1),
    (14, 0, 128, 192, 192, 256, 0, 2),
    (7, 352, 192, 320, 160, 224, 128, 1),
    (7, 352, 192, 320, 192, 224, 128, 1),
)
# Trainable parameters of the authors' Caffe BN-Inception as ported to
# PyTorch (Cadene's pretrainedmodels `bninception`; osmr/imgclsmob's
# pytorchcv/models/bninception.py asserts the same count).
PRETRAINEDMODELS_BN_INCEPTION_PARAMS = 11_295_240

# keras.applications.InceptionResNetV2(weights=None) at 299x299 (Keras
# 3.15.1): trainable parameters and multiply-adds, counted once by
# `se_keras.utils.count_params` and `count_flops` on keras' own model
# (building it here would cost 10-30 s). The Inception-v3 test below builds
# keras' model and compares it weight by weight and output by output.
KERAS_INCEPTION_RESNET_V2 = (55_813_192, 13_155_794_016)

# The paper's GFLOPs, plain -> SE (Hu et al., table 2).
PAPER_GFLOPS = {"bn_inception": (2.03, 2.04), "inception_resnet_v2": (11.75, 11.76)}

# The SE blocks' inputs at 299x299, (size, channels), in the layouts of
# keras' InceptionV3 (mixed0 ... mixed10) and InceptionResNetV2 (mixed_5b,
# 10 block35, mixed_6a, 20 block17, mixed_7a, 10 block8: the residual
# branches have their block's width).
INCEPTION_V3_SE_MAPS = (
    [(35, 256), (35, 288), (35, 288)] + [(17, 768)] * 5 + [(8, 1280)] + [(8, 2048)] * 2
)
INCEPTION_RESNET_V2_SE_MAPS = [(35, 320)] * 11 + [(17, 1088)] * 21 + [(8, 2080)] * 11


def _bn_inception_reference():
    """(parameters, multiply-adds, SE maps) of BN-Inception at 224x224, from figure 5 alone.

    Caffe's layout: every convolution has a bias and is followed by a
    BatchNorm with scale and shift; the classifier is a 1024 -> 1000 FC.
    """
    params = macs = 0

    def conv(size, kernel, inputs, outputs):
        nonlocal params, macs
        params += kernel * kernel * inputs * outputs + 3 * outputs
        macs += size * size * kernel * kernel * inputs * outputs

    conv(112, 7, 3, 64)  # conv1 7x7/2
    conv(56, 1, 64, 64)  # conv2 reduce
    conv(56, 3, 64, 192)  # conv2 3x3
    channels, maps = 192, []
    for size, n1x1, n3x3_red, n3x3, ndbl_red, ndbl, proj, stride in FIGURE_5:
        out = size // stride
        if n1x1:
            conv(size, 1, channels, n1x1)
        conv(size, 1, channels, n3x3_red)
        conv(out, 3, n3x3_red, n3x3)
        conv(size, 1, channels, ndbl_red)
        conv(size, 3, ndbl_red, ndbl)
        conv(out, 3, ndbl, ndbl)
        if proj:
            conv(size, 1, channels, proj)
        channels = n1x1 + n3x3 + ndbl + (proj or channels)
        maps.append((out, channels))
    params += channels * 1000 + 1000
    macs += channels * 1000
    return params, macs, maps


def _feeds(model, source, target):
    """Whether layer `source`'s output is layer `target`'s input."""
    return model.get_layer(target).input is model.get_layer(source).output


def test_bn_inception_against_figure_5_and_the_paper(models):
    params, macs, maps = _bn_inception_reference()
    assert params == PRETRAINEDMODELS_BN_INCEPTION_PARAMS
    plain, se = models(SEBNInception, se=False), models(SEBNInception)
    assert not helpers.se_layers(plain)
    assert (count_params(plain), count_flops(plain)) == (params, macs)
    # Plus exactly the 10 SE blocks, one on each module's output.
    se_params, se_macs = helpers.se_cost(maps)
    assert (count_params(se), count_flops(se)) == (params + se_params, macs + se_macs)
    gflops = (count_flops(plain) / 1e9, count_flops(se) / 1e9)
    assert gflops == pytest.approx(PAPER_GFLOPS["bn_inception"], rel=0.02)


def test_plain_inception_v3_is_keras_applications(models):
    """se=False is keras' model: same weights in the same order, same outputs."""
    plain = models(SEInceptionV3, se=False)
    assert not helpers.se_layers(plain)
    reference = keras.applications.InceptionV3(weights=None)
    assert count_params(plain) == count_params(reference)
    assert count_flops(plain) == count_flops(reference)
    assert [w.shape for w in plain.weights] == [w.shape for w in reference.weights]
    reference.set_weights(plain.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, (1, 299, 299, 3)).astype("float32")
    np.testing.assert_allclose(plain(x), reference(x), rtol=1e-4, atol=1e-6)


def test_se_inception_v3_adds_its_se_blocks(models):
    # The paper has no SE-Inception-v3: keras' InceptionV3 (test above) plus
    # exactly the 11 SE blocks.
    plain, se = models(SEInceptionV3, se=False), models(SEInceptionV3)
    helpers.assert_adds_exactly_the_se_blocks(se, plain, INCEPTION_V3_SE_MAPS)


def test_inception_resnet_v2_against_keras_and_the_paper(models):
    plain, se = models(SEInceptionResNetV2, se=False), models(SEInceptionResNetV2)
    assert not helpers.se_layers(plain)
    plain_counts = (count_params(plain), count_flops(plain))
    assert plain_counts == KERAS_INCEPTION_RESNET_V2
    # keras' network plus exactly the 43 SE blocks.
    se_params, se_macs = helpers.se_cost(INCEPTION_RESNET_V2_SE_MAPS)
    se_counts = (count_params(se), count_flops(se))
    assert se_counts == (plain_counts[0] + se_params, plain_counts[1] + se_macs)
    # The paper's re-implementation is not this network at 299x299: its
    # 11.75 G is 10.7% below; only the SE overhead (its 11.75 -> 11.76,
    # under 0.3%) can be compared.
    paper_plain, _ = PAPER_GFLOPS["inception_resnet_v2"]
    assert plain_counts[1] / 1e9 / paper_plain == pytest.approx(1.12, abs=0.01)
    assert (se_counts[1] - plain_counts[1]) / plain_counts[1] < 0.003


# (builder, SE layer names) for the contract of the module docstring.
SE_NAMES = {
    SEBNInception: [f"inception_{m}_se" for m in inception.BN_INCEPTION_MODULES],
    SEInceptionV3: [f"mixed{m}_se" for m in range(11)],
    SEInceptionResNetV2: (
        ["mixed_5b_se"] + [f"block35_{i}_se" for i in range(1, 11)] + ["mixed_6a_se"]
        + [f"block17_{i}_se" for i in range(1, 21)] + ["mixed_7a_se"]
        + [f"block8_{i}_se" for i in range(1, 11)]
    ),
}


@pytest.mark.parametrize("builder", list(SE_NAMES), ids=lambda b: b.__name__)
def test_layer_names_are_a_stable_contract(models, builder):
    model = models(builder)
    assert [layer.name for layer in helpers.se_layers(model)] == SE_NAMES[builder]
    assert [layer.name for layer in model.layers][-2:] == ["avg_pool", "predictions"]
    # se=False drops the SE layers and renames nothing.
    plain_names = {layer.name for layer in models(builder, se=False).layers}
    assert plain_names == {layer.name for layer in model.layers} - set(SE_NAMES[builder])


def test_bn_inception_layout(models):
    model = models(SEBNInception)
    names = [layer.name for layer in model.layers]
    assert names[:5] == ["input_layer", "preprocessing", "conv1_7x7_s2_pad", "conv1_7x7_s2",
                         "conv1_7x7_s2_bn"]
    # Caffe's ceil-mode pools: 112 -> 56 -> 28, and the stride-2 modules.
    assert model.get_layer("pool1_3x3_s2").output.shape[1:3] == (56, 56)
    assert model.get_layer("inception_3c_output").output.shape == (None, 14, 14, 576)
    assert model.get_layer("inception_4e_output").output.shape == (None, 7, 7, 1056)
    assert model.get_layer("inception_5b_output").output.shape == (None, 7, 7, 1024)
    # SE on the module output, feeding the next module.
    assert _feeds(model, "inception_3a_output", "inception_3a_se")
    assert _feeds(model, "inception_3a_se", "inception_3b_1x1")
    conv = model.get_layer("inception_3a_1x1")
    bn = model.get_layer("inception_3a_1x1_bn")
    assert conv.use_bias and bn.scale and bn.epsilon == 1e-5


def test_inception_resnet_v2_se_on_the_residual_branch(models):
    model = models(SEInceptionResNetV2)
    se = model.get_layer("block17_3_se")
    assert _feeds(model, "block17_3_conv", "block17_3_se")
    assert _feeds(model, "block17_3_se", "block17_3_scale")
    assert _feeds(model, "mixed_6a", "mixed_6a_se")
    assert model.get_layer("block17_3_scale").scale == pytest.approx(0.1)
    assert se.width == 1088 // 16
    # keras' last block: scale 1, no activation.
    names = {layer.name for layer in model.layers}
    assert "block8_10_relu" not in names and "block8_9_relu" in names
    assert model.get_layer("block8_10_scale").scale == 1.0


def test_bn_inception_forward_and_keras_round_trip(models, tmp_path):
    # One round trip per module: Inception-v3's and Inception-ResNet-v2's
    # layers (Conv2D, BatchNormalization, pools, Concatenate, Rescaling,
    # Add, SqueezeExcitation) are all covered here or by the other
    # families' round trips, and reloading those two takes 20-60 s.
    model = models(SEBNInception)
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    probs = np.asarray(model(x))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(probs, np.asarray(loaded(x)))


def test_inception_resnet_v2_forward(models):
    model = models(SEInceptionResNetV2)
    assert model.input.shape == (None, 299, 299, 3)
    probs = np.asarray(model(np.zeros((1, 299, 299, 3), "float32")))
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)


def test_include_top_false_pooling_shapes():
    # Without the top: any size from the minimum up, odd sizes included
    # (where Caffe's ceil-mode pools in 3c and 4e would not match the
    # strided convolutions): 97x47 -> 3x2.
    model = helpers.assert_pooled(SEBNInception, "max", 1024)
    features = keras.Model(model.input, [model.get_layer("inception_5b_se").output, model.output])
    helpers.assert_any_input_size(features, (97, 47), [(1, 3, 2, 1024), (1, 1024)])


def test_input_tensor_and_se_options():
    model = helpers.build_on_input_tensor(
        SEBNInception, se_ratio=8, se_gate="hard_sigmoid", se_squeeze="max"
    )
    se = helpers.assert_se_options(model, 10, ratio=8, gate="hard_sigmoid", squeeze="max")
    assert se[0].width == 256 // 8


# The smallest input sizes (keras': 75 for Inception-v3 and -ResNet-v2).
MIN_SIZES = {SEBNInception: 32, SEInceptionV3: 75, SEInceptionResNetV2: 75}
BAD_ARGUMENTS = [
    (builder, kwargs, message)
    for builder, min_size in MIN_SIZES.items()
    for kwargs, message in helpers.bad_arguments(min_size)
] + [
    (SEInceptionV3, dict(input_shape=(64, 64, 3)),
     r"at least 75x75.*Received: input_shape=\(64, 64, 3\)"),
]


@pytest.mark.parametrize(
    "builder,kwargs,message", BAD_ARGUMENTS, ids=lambda v: getattr(v, "__name__", None)
)
def test_bad_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


def test_build_inception_checks_the_architecture():
    with pytest.raises(ValueError, match=r"Received: arch='googlenet'"):
        inception.build_inception(arch="googlenet")
