"""The FLOPs counter against the paper's GFLOPs table (multiply-adds, 224x224).

The paper's models are the Caffe models, which stride in the first 1x1
conv of a ResNet bottleneck: the "legacy" layout. (timm's stride-on-3x3
seresnet50 counts 4.09 G, as an independent count of timm's model does.)
"""

import keras
import pytest

from se_keras.applications import resnet
from se_keras.layers import SqueezeExcitation
from se_keras.utils import count_flops
from se_keras.utils import count_params
from se_keras.utils import flops_by_layer

# (builder, plain GFLOPs, SE GFLOPs) from the paper's table 2.
PAPER = [
    ("SEResNet50", 3.86, 3.87),
    ("SEResNet101", 7.58, 7.60),
    ("SEResNet152", 11.30, 11.32),
    ("SEResNeXt50", 4.24, 4.25),
    ("SEResNeXt101", 7.99, 8.00),
]


@pytest.mark.parametrize("name,plain,with_se", PAPER)
def test_resnet_flops_match_the_paper(name, plain, with_se):
    for se, expected in ((False, plain), (True, with_se)):
        model = resnet.BUILDERS[name](weights=None, layout="legacy", se=se)
        gflops = count_flops(model) / 1e9
        assert abs(gflops - expected) <= 0.01 * expected, (se, gflops)


def test_timm_layout_costs_more():
    gflops = count_flops(resnet.SEResNet50(weights=None, layout="timm")) / 1e9
    assert abs(gflops - 4.09) <= 0.01 * 4.09  # an independent count of timm seresnet50


def test_counts_by_hand():
    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv")(inputs)  # 8*8*9*16*32
    x = keras.layers.Conv2D(32, 3, strides=2, groups=4, padding="same", name="group")(x)  # 4*4*9*8*32
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)  # 4*4*9*32
    x = SqueezeExcitation(ratio=8, name="se")(x)  # 2*16*32 + 2*32*4
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10, name="fc")(x)  # 32*10
    model = keras.Model(inputs, x)
    assert flops_by_layer(model) == {
        "conv": 8 * 8 * 9 * 16 * 32,
        "group": 4 * 4 * 9 * 8 * 32,
        "dw": 4 * 4 * 9 * 32,
        "se": 2 * 16 * 32 + 2 * 32 * 4,
        "fc": 320,
    }
    assert count_params(model) == (9 * 16 * 32 + 32) + (9 * 8 * 32 + 32) + (9 * 32 + 32) + (
        32 * 4 + 4 + 4 * 32 + 32) + 330


def test_dynamic_size_is_refused():
    model = resnet.SEResNet18(weights=None, include_top=False)
    with pytest.raises(ValueError, match=r"static input size.*Received: model with input shape \(None, None, None, 3\)"):
        count_flops(model)
