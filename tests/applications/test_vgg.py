"""SE-VGG-16 with BatchNorm: counts against the paper and torchvision, builder API."""

import keras
import numpy as np
import pytest

from se_keras.applications import vgg
from se_keras.layers import SqueezeExcitation
from se_keras.utils import count_flops
from se_keras.utils import count_params

# At 224x224: trainable parameters and multiply-adds.
PLAIN = (138_365_992, 15_470_264_320)
SE_BLOCK = (138_443_844, 15_482_583_552)

# torchvision 0.29 `vgg16_bn()`, counted under PyTorch with forward hooks
# (conv and linear multiply-adds): an independent reference.
TORCHVISION_VGG16_BN = (138_365_992, 15_470_264_320)
# keras.applications.VGG16(weights=None): the same network without BatchNorm.
KERAS_VGG16_PARAMS = 138_357_544

# The paper (Hu et al., table 2): GFLOPs, VGG-16 -> SE-VGG-16.
PAPER_GFLOPS = (15.47, 15.48)


@pytest.fixture(scope="module")
def models():
    return {se: vgg.SEVGG16(se=se) for se in (False, True)}


def _se_layers(model):
    return [layer for layer in model.layers if isinstance(layer, SqueezeExcitation)]


def test_parameter_and_flops_counts(models):
    plain, se = models[False], models[True]
    assert not _se_layers(plain)
    assert (count_params(plain), count_flops(plain)) == PLAIN == TORCHVISION_VGG16_BN
    assert (count_params(se), count_flops(se)) == SE_BLOCK
    batch_norm = sum(2 * width * convs for convs, width in vgg.VGG16_BLOCKS)
    assert PLAIN[0] - batch_norm == KERAS_VGG16_PARAMS


def test_against_the_paper():
    assert PLAIN[1] / 1e9 == pytest.approx(PAPER_GFLOPS[0], rel=0.02)
    assert SE_BLOCK[1] / 1e9 == pytest.approx(PAPER_GFLOPS[1], rel=0.02)
    assert round(PLAIN[1] / 1e9, 2) == PAPER_GFLOPS[0]
    assert round(SE_BLOCK[1] / 1e9, 2) == PAPER_GFLOPS[1]


def test_layer_names_and_se_placement(models):
    model = models[True]
    assert [l.name for l in _se_layers(model)] == [f"block{b}_se" for b in range(1, 6)]
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
        include_top=False, input_shape=(32, 32, 3), se_position="conv", se_ratio=8,
        se_gate="tanh", se_squeeze="max",
    )
    se = _se_layers(model)
    assert [l.name for l in se][:3] == ["block1_conv1_se", "block1_conv2_se", "block2_conv1_se"]
    assert len(se) == 13
    assert all(l.gate == "tanh" and l.squeeze == "max" and l.width == l.channels // 8 for l in se)


def test_forward(models):
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype("float32")
    probs = np.asarray(models[True](x))
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
    model = vgg.SEVGG16(include_top=False, pooling="max", input_shape=(96, 96, 3))
    assert model.output.shape == (None, 512)
    model = vgg.SEVGG16(include_top=False)
    assert model.input.shape == (None, None, None, 3)
    assert model(np.zeros((1, 65, 47, 3), "float32")).shape == (1, 2, 1, 512)


def test_input_tensor_and_mixed_precision_head():
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    model = vgg.SEVGG16(input_tensor=x, classes=5)
    assert model.inputs[0] is inputs
    out = model(np.zeros((2, 32, 32, 3), "float32"))
    assert out.shape == (2, 5) and out.dtype == "float32"
    assert model.get_layer("block1_conv1").compute_dtype == "float16"
    # fc1 takes the flattened 1x1x512 map of a 32x32 input.
    assert model.get_layer("fc1").kernel.shape == (512, 4096)


BAD_ARGUMENTS = [
    (dict(weights="imagenet"), r"Received: weights='imagenet'"),
    (dict(classes=0), r"Received: classes=0"),
    (dict(input_shape=(16, 16, 3)), r"at least 32x32.*Received: input_shape=\(16, 16, 3\)"),
    (dict(input_shape=(None, None, 3)), r"static.*Received: input_shape=\(None, None, 3\)"),
    (dict(include_top=False, pooling="median"), r"Received: pooling='median'"),
    (dict(se_ratio=0), r"Received: se_ratio=0"),
    (dict(se_gate="softmax"), r"Received: se_gate='softmax'"),
    (dict(se_position="pool"), r"Received: se_position='pool'"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vgg.SEVGG16(**kwargs)
