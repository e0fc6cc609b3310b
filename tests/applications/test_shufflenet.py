"""SE-ShuffleNet v1: counts against Megvii's code and the paper, ChannelShuffle, builder API."""

import keras
import numpy as np
import pytest

from se_keras.applications import shufflenet
from se_keras.applications.shufflenet import ChannelShuffle
from se_keras.applications.shufflenet import SEShuffleNet
from se_keras.utils import count_flops
from se_keras.utils import count_params
from tests.applications import helpers

# Megvii's official ShuffleNetV1 1.0x (github.com/megvii-model/ShuffleNet-Series)
# at 224x224, run under PyTorch with forward hooks counting conv and linear
# multiply-adds: {groups: (trainable parameters, multiply-adds)}. Its
# classifier has no bias (1000 parameters fewer than keras' Dense).
MEGVII = {3: (1_864_728, 137_460_672), 8: (2_433_768, 138_365_952)}

# The paper (Hu et al., table 3): ShuffleNet 1x (g = 3) -> SE-ShuffleNet,
# parameters and MFLOPs (multiply-adds).
PAPER = dict(params=(1.8e6, 2.4e6), flops=(140e6, 142e6))

# SE-ShuffleNet 1x (g = 3) at 224x224: an SE block on each unit's residual
# branch, (size, channels). Stage widths 240, 480, 960 (Zhang et al., table
# 1); a stage's strided first unit concatenates its input, so its branch
# has the stage width less the input's (24 from the stem).
SE_MAPS = (
    [(28, 240 - 24)] + [(28, 240)] * 3 + [(14, 480 - 240)] + [(14, 480)] * 7
    + [(7, 960 - 480)] + [(7, 960)] * 3
)


@pytest.mark.parametrize("groups", sorted(MEGVII))
def test_plain_network_matches_megvii(models, groups):
    model = models(SEShuffleNet, se=False, groups=groups)
    assert not helpers.se_layers(model)
    params, macs = MEGVII[groups]
    assert count_params(model) - 1000 == params
    assert count_flops(model) == macs


def test_se_shufflenet_against_the_paper(models):
    plain, se = models(SEShuffleNet, se=False), models(SEShuffleNet)
    # Megvii's network (test above) plus exactly the 16 SE blocks.
    params, flops = helpers.assert_adds_exactly_the_se_blocks(se, plain, SE_MAPS)
    assert flops == pytest.approx(PAPER["flops"], rel=0.02)
    # The parameters are 3.5-3.7% above the paper's one-decimal figures,
    # which are these counts truncated (1.87M -> 1.8M, 2.48M -> 2.4M); the
    # SE blocks' share matches to 4%.
    assert [int(p / 1e5) / 10 for p in params] == [1.8, 2.4]
    assert params[1] - params[0] == pytest.approx(
        PAPER["params"][1] - PAPER["params"][0], rel=0.04
    )


def test_stage_widths_follow_the_paper():
    assert shufflenet.stage_widths(3, 1.0) == (240, 480, 960)
    assert shufflenet.stage_widths(8, 1.0) == (384, 768, 1536)
    assert shufflenet.stage_widths(3, 0.5) == (120, 240, 480)
    assert shufflenet.stage_widths(3, 0.25) == (60, 120, 240)


def test_layer_names_and_unit_layout(models):
    model = models(SEShuffleNet)
    names = [layer.name for layer in model.layers]
    assert names[:8] == [
        "input_layer", "preprocessing", "stem_conv_pad", "stem_conv", "stem_bn", "stem_relu",
        "stem_pool_pad", "stem_pool",
    ]
    assert [l.name for l in helpers.se_layers(model)] == [
        f"stage{s}_block{b}_se" for s, depth in enumerate((4, 8, 4), 1)
        for b in range(1, depth + 1)
    ]
    unit = [n for n in names if n.startswith("stage2_block2_")]
    assert unit == [
        "stage2_block2_conv1", "stage2_block2_bn1", "stage2_block2_relu1",
        "stage2_block2_shuffle", "stage2_block2_conv2", "stage2_block2_bn2",
        "stage2_block2_conv3", "stage2_block2_bn3", "stage2_block2_se",
        "stage2_block2_add", "stage2_block2_out",
    ]
    # The first unit: ungrouped first 1x1 convolution, branch of 240 - 24
    # channels concatenated with the average-pooled input.
    assert model.get_layer("stage1_block1_conv1").groups == 1
    assert model.get_layer("stage1_block2_conv1").groups == 3
    assert model.get_layer("stage1_block1_se").channels == 216
    assert model.get_layer("stage1_block1_concat").output.shape == (None, 28, 28, 240)
    assert model.get_layer("stage1_block1_se").input is model.get_layer("stage1_block1_bn3").output
    assert model.get_layer("stage3_block4_out").output.shape == (None, 7, 7, 960)


def test_channel_shuffle_matches_the_paper():
    """Reshape channels to (g, n), transpose, flatten: channel g_i * n + j -> j * g + g_i."""
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 12)).astype("float32")
    expected = x.reshape(2, 3, 5, 3, 4).transpose(0, 1, 2, 4, 3).reshape(2, 3, 5, 12)
    np.testing.assert_array_equal(ChannelShuffle(3)(x), expected)
    channels_first = ChannelShuffle(3, data_format="channels_first")
    np.testing.assert_array_equal(
        channels_first(np.moveaxis(x, -1, 1)), np.moveaxis(expected, -1, 1)
    )
    # Unknown spatial size in a functional model, and config round trip.
    inputs = keras.Input((None, None, 12))
    model = keras.Model(inputs, ChannelShuffle(4, name="shuffle")(inputs))
    assert model(x).shape == x.shape
    layer = ChannelShuffle.from_config(model.get_layer("shuffle").get_config())
    assert (layer.groups, layer.data_format) == (4, "channels_last")
    with pytest.raises(ValueError, match=r"Received: groups=0"):
        ChannelShuffle(0)
    with pytest.raises(ValueError, match=r"divisible by groups=5"):
        ChannelShuffle(5)(x)


def test_forward(models):
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    probs = np.asarray(models(SEShuffleNet)(x))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_round_trip_with_safe_mode(tmp_path):
    # Small: every eager call of a grouped convolution compiles it with XLA
    # on TensorFlow's CPU, so each forward pass here costs seconds.
    model = SEShuffleNet(scale=0.5, input_shape=(64, 64, 3), classes=7)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    probs = np.asarray(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("stage1_block2_shuffle"), ChannelShuffle)
    np.testing.assert_array_equal(probs, np.asarray(loaded(x)))


def test_include_top_false_pooling_shapes():
    helpers.assert_pooled(SEShuffleNet, "avg", 960, input_shape=(96, 96, 3))
    # Any size without the top, through the channel shuffles.
    model = SEShuffleNet(include_top=False, groups=8, scale=0.5)
    helpers.assert_any_input_size(model, (65, 47), (1, 3, 2, 768))


def test_input_tensor_and_se_options():
    model = helpers.build_on_input_tensor(
        SEShuffleNet, se_ratio=8, se_gate="relu", se_squeeze="max", se_position="post"
    )
    helpers.assert_se_options(model, 16, ratio=8, gate="relu", squeeze="max")
    # After the unit's ReLU, on all of the concatenated channels.
    assert model.get_layer("stage1_block1_se").input is model.get_layer("stage1_block1_out").output
    assert model.get_layer("stage1_block1_se").width == 240 // 8


BAD_ARGUMENTS = helpers.bad_arguments() + [
    (dict(groups=5), r"Received: groups=5"),
    (dict(scale=0), r"Received: scale=0"),
    (dict(se_position="identity"), r"Received: se_position='identity'"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SEShuffleNet(**kwargs)
