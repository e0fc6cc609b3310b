"""CIFAR SE-ResNets and SE-WRN: depth rules, parameter counts, arguments."""

import keras
import numpy as np
import pytest

from se_keras.applications import cifar_resnet
from se_keras.layers import SqueezeExcitation
from se_keras.utils import count_params

# Parameter counts of the plain networks in their papers (He et al. 2016a/b,
# Zagoruyko & Komodakis 2016): 0.27M, 0.46M, 0.85M, 1.7M, 1.7M, 11.0M.
PAPER_PARAMS = {
    "SEResNet20": 0.27e6, "SEResNet32": 0.46e6, "SEResNet56": 0.85e6,
    "SEResNet110": 1.7e6, "SEResNet164": 1.7e6, "SEWideResNet16_8": 11.0e6,
}
SE_BLOCKS = {
    "SEResNet20": 9, "SEResNet32": 15, "SEResNet56": 27, "SEResNet110": 54,
    "SEResNet164": 54, "SEWideResNet16_8": 6,
}


@pytest.mark.parametrize("name", list(cifar_resnet.BUILDERS))
def test_builds_counts_runs_and_round_trips(name, tmp_path):
    builder = cifar_resnet.BUILDERS[name]
    plain = builder(se=False)
    # Within 2.5%: option-B projection shortcuts add a little to option A.
    assert abs(count_params(plain) - PAPER_PARAMS[name]) <= 0.025 * PAPER_PARAMS[name]
    model = builder()
    assert len([l for l in model.layers if isinstance(l, SqueezeExcitation)]) == SE_BLOCKS[name]
    assert model.input.shape == (None, 32, 32, 3)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x))
    assert y.shape == (2, 10)
    # One save/load per distinct code path (post-activation basic,
    # pre-activation bottleneck, pre-activation wide basic).
    if name in ("SEResNet20", "SEResNet164", "SEWideResNet16_8"):
        path = tmp_path / "m.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        np.testing.assert_array_equal(y, np.asarray(loaded(x)))


def test_pooling_input_tensor_and_classes():
    model = cifar_resnet.SEResNet20(include_top=False, pooling="max", input_shape=(40, 40, 3))
    assert model.output.shape == (None, 64)
    inputs = keras.Input((32, 32, 3))
    model = cifar_resnet.SEResNet20(input_tensor=inputs, classes=100)
    assert model.inputs[0] is inputs and model.output.shape == (None, 100)
    assert cifar_resnet.SEResNet164(include_top=False).output.shape == (None, None, None, 256)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(weights="imagenet"), "Received: weights='imagenet'"),
        (dict(input_shape=(4, 4, 3)), r"at least 8x8.*Received: input_shape=\(4, 4, 3\)"),
        (dict(pooling="sum", include_top=False), "Received: pooling='sum'"),
        (dict(se_stages=(4,)), r"Received: se_stages=\(4,\)"),
        (dict(depth=21), "Received: depth=21"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        if "depth" in kwargs:
            cifar_resnet.build_cifar_resnet(block="basic", preact=False, **kwargs)
        else:
            cifar_resnet.SEResNet20(**kwargs)
