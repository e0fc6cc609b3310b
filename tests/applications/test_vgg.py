"""SE-VGG-16 with BatchNorm: counts against torchvision, keras and the paper; builder API."""

import keras
import numpy as np
import pytest

from se_keras.applications import vgg
from se_keras.utils import count_flops
from se_keras.utils import count_params
from tests.applications import helpers

# torchvision 0.29 `vgg16_bn()` at 224x224, counted under PyTorch with
# forward hooks (conv and linear multiply-adds): trainable parameters and
# multiply-adds. The independent reference for the plain network.
TORCHVISION_VGG16_BN = (138_365_992, 15_470_264_320)
# keras.applications.VGG16(weights=None): trainable parameters of the same
# network without BatchNorm (Keras 3.15.1, `se_keras.utils.count_params`).
KERAS_VGG16_PARAMS = 138_357_544
# VGG configuration D (Simonyan & Zisserman 2015, table 1): (convolutions,
# width) of each block.
CONFIG_D = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

# The paper (Hu et al., table 2): GFLOPs, VGG-16 -> SE-VGG-16.
PAPER_GFLOPS = (15.47, 15.48)
# SE-VGG-16's SE blocks at 224x224 (se_position="standard"): one on each
# block's last activation, before its pool. (size, channels).
SE_BLOCK_MAPS = [(224, 64), (112, 128), (56, 256), (28, 512), (14, 512)]


def test_plain_network_is_torchvision_vgg16_bn(models):
    plain = models(vgg.SEVGG16, se=False)
    assert not helpers.se_layers(plain)
    assert (count_params(plain), count_flops(plain)) == TORCHVISION_VGG16_BN
    # keras' VGG16 plus the scale and offset of each convolution's BatchNorm.
    batch_norm = sum(2 * width * convs for convs, width in CONFIG_D)
    assert count_params(plain) == KERAS_VGG16_PARAMS + batch_norm


def test_se_vgg16_against_the_paper(models):
    se = models(vgg.SEVGG16)
    # torchvision's network plus exactly the five SE blocks.
    se_params, se_macs = helpers.se_cost(SE_BLOCK_MAPS)
    plain_params, plain_macs = TORCHVISION_VGG16_BN
    assert (count_params(se), count_flops(se)) == (plain_params + se_params, plain_macs + se_macs)
    # The paper's GFLOPs, to within 2% and to its two decimals.
    gflops = (count_flops(models(vgg.SEVGG16, se=False)) / 1e9, count_flops(se) / 1e9)
    assert gflops == pytest.approx(PAPER_GFLOPS, rel=0.02)
    assert tuple(round(g, 2) for g in gflops) == PAPER_GFLOPS


def test_layer_names_and_se_placement(models):
    model = models(vgg.SEVGG16)
    assert [l.name for l in helpers.se_layers(model)] == [f"block{b}_se" for b in range(1, 6)]
    block = [l.name for l in model.layers if l.name.startswith("block1_")]
    assert block == [
        "block1_conv1", "block1_bn1", "block1_relu1", "block1_conv2", "block1_bn2",
        "block1_relu2", "block1_se", "block1_pool",
    ]
    assert [l.name for l in model.layers][-6:] == [
        "flatten", "fc1", "fc1_dropout", "fc2", "fc2_dropout", "predictions",
    ]
    assert model.get_layer("block5_se").input is model.get_layer("block5_relu3").output
    assert model.get_layer("block1_conv1").use_bias
    assert model.get_layer("block1_bn1").epsilon == 1e-5


def test_se_after_every_convolution():
    model = vgg.SEVGG16(
        include_top=False, input_shape=(32, 32, 3), se_position="inner", se_ratio=8,
        se_gate="tanh", se_squeeze="max",
    )
    se = helpers.assert_se_options(model, 13, ratio=8, gate="tanh", squeeze="max")
    assert [l.name for l in se][:3] == ["block1_conv1_se", "block1_conv2_se", "block2_conv1_se"]
    assert all(l.width == l.channels // 8 for l in se)


def test_forward(models):
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype("float32")
    probs = np.asarray(models(vgg.SEVGG16)(x))
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)


def test_keras_round_trip_and_weights_file(tmp_path):
    # Without the top: the fully connected layers would write 550 MB.
    model = vgg.SEVGG16(include_top=False, pooling="avg", input_shape=(32, 32, 3))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    features = np.asarray(model(x))
    assert features.shape == (2, 512)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(features, np.asarray(loaded(x)))
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    again = vgg.SEVGG16(
        include_top=False, pooling="avg", input_shape=(32, 32, 3), weights=str(weights)
    )
    np.testing.assert_array_equal(features, np.asarray(again(x)))


def test_include_top_false_pooling_shapes():
    helpers.assert_pooled(vgg.SEVGG16, "max", 512, input_shape=(96, 96, 3))
    helpers.assert_any_input_size(vgg.SEVGG16(include_top=False), (65, 47), (1, 2, 1, 512))


def test_input_tensor_and_mixed_precision_head():
    keras.config.set_dtype_policy("mixed_float16")
    model = helpers.build_on_input_tensor(vgg.SEVGG16, size=32)
    out = model(np.zeros((2, 32, 32, 3), "float32"))
    assert out.shape == (2, 5) and out.dtype == "float32"
    assert model.get_layer("block1_conv1").compute_dtype == "float16"
    # fc1 takes the flattened 1x1x512 map of a 32x32 input.
    assert model.get_layer("fc1").kernel.shape == (512, 4096)


BAD_ARGUMENTS = helpers.bad_arguments() + [
    (dict(se_position="pool"), r"Received: se_position='pool'"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vgg.SEVGG16(**kwargs)
