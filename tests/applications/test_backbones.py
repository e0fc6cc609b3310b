"""`se_keras.applications.feature_extractor`: SE networks as detection/segmentation backbones.

One small model per family (weights=None, 32-64 px) plus SE-ResNet-50 at
64 px: the keys, layers, strides and channels of each pyramid, equality
with the full model's intermediate tensors, shared weights, the `.keras`
round trip, the preprocessing record, the errors, and a smoke run of
applications/segment_digits_fpn.py.
"""

import importlib.util
import json
import math
import pathlib

import keras
import numpy as np
import pytest

import se_keras
from se_keras.applications import SEBNInception
from se_keras.applications import SEInceptionV3
from se_keras.applications import SEMobileNet
from se_keras.applications import SEMobileNetV2
from se_keras.applications import SEResNet18
from se_keras.applications import SEResNet20
from se_keras.applications import SEResNet50
from se_keras.applications import SEResNet164
from se_keras.applications import SEShuffleNet
from se_keras.applications import SEVGG16
from se_keras.applications import feature_extractor
from se_keras.applications import backbones

REPO = pathlib.Path(__file__).resolve().parents[2]

# (builder, input size, {key: (layer, channels)}): the README's table.
PYRAMIDS = {
    "resnet": (SEResNet18, 64, {
        "P1": ("stem_relu1", 64), "P2": ("stage1_block2_out", 64),
        "P3": ("stage2_block2_out", 128), "P4": ("stage3_block2_out", 256),
        "P5": ("stage4_block2_out", 512),
    }),
    "resnet50": (SEResNet50, 64, {
        "P1": ("stem_relu1", 64), "P2": ("stage1_block3_out", 256),
        "P3": ("stage2_block4_out", 512), "P4": ("stage3_block6_out", 1024),
        "P5": ("stage4_block3_out", 2048),
    }),
    "cifar_resnet": (SEResNet20, 32, {
        "P0": ("stage1_block3_out", 16), "P1": ("stage2_block3_out", 32),
        "P2": ("stage3_block3_out", 64),
    }),
    "inception": (SEBNInception, 64, {
        "P1": ("conv1_7x7_s2_relu", 64), "P2": ("conv2_3x3_relu", 192),
        "P3": ("inception_3b_se", 320), "P4": ("inception_4d_se", 608),
        "P5": ("inception_5b_se", 1024),
    }),
    "mobilenet": (SEMobileNetV2, 64, {
        "P1": ("block1_se", 16), "P2": ("block3_add", 24), "P3": ("block6_add", 32),
        "P4": ("block13_add", 96), "P5": ("top_relu", 1280),
    }),
    "shufflenet": (SEShuffleNet, 64, {
        "P1": ("stem_relu", 24), "P2": ("stem_pool", 24), "P3": ("stage1_block4_out", 240),
        "P4": ("stage2_block8_out", 480), "P5": ("stage3_block4_out", 960),
    }),
    "vgg": (SEVGG16, 64, {
        "P0": ("block1_se", 64), "P1": ("block2_se", 128), "P2": ("block3_se", 256),
        "P3": ("block4_se", 512), "P4": ("block5_se", 512), "P5": ("block5_pool", 512),
    }),
}


def _model(models, family, **kwargs):
    builder, size, _ = PYRAMIDS[family]
    return models(builder, weights=None, include_top=False, input_shape=(size, size, 3), **kwargs)


def _images(size, count=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (count, size, size, 3)).astype("float32")


@pytest.mark.parametrize("family", list(PYRAMIDS))
def test_keys_layers_strides_and_channels(models, family):
    """Each key P{k} is the stage end at stride 2^k, by the spatial sizes of real outputs."""
    _, size, expected = PYRAMIDS[family]
    model = _model(models, family)
    info = backbones.feature_info(model)
    assert [row["key"] for row in info] == list(expected)
    assert {row["key"]: (row["layer"], row["channels"]) for row in info} == expected

    extractor = feature_extractor(model)
    assert list(extractor.output) == list(expected)
    outputs = extractor.predict(_images(size), verbose=0)
    for key, (_, channels) in expected.items():
        stride = 2 ** int(key[1:])
        assert outputs[key].shape == (2, size // stride, size // stride, channels), key
        assert size / outputs[key].shape[1] == stride


@pytest.mark.parametrize("family", list(PYRAMIDS))
def test_features_equal_the_models_intermediate_tensors(models, family):
    """The extractor computes exactly the full model's stage outputs, with the same layers."""
    _, size, expected = PYRAMIDS[family]
    model = _model(models, family)
    extractor = feature_extractor(model)
    names = [layer for layer, _ in expected.values()]
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    x = _images(size, seed=1)
    features = extractor.predict(x, verbose=0)
    for key, reference in zip(expected, probe.predict(x, verbose=0)):
        np.testing.assert_allclose(features[key], reference, rtol=1e-6, atol=1e-6)
    # The same layer objects, so the same weights (pretrained ones included).
    for name in names:
        assert extractor.get_layer(name) is model.get_layer(name)
    assert extractor.layers[1] is model.get_layer("preprocessing")
    assert {id(w) for w in extractor.weights} <= {id(w) for w in model.weights}


def test_a_model_with_its_top_gives_the_same_backbone(models):
    """A classifier's head (pooling, dense) is left out; the weights are the classifier's."""
    with_top = models(SEResNet18, weights=None, input_shape=(64, 64, 3), classes=10)
    without = _model(models, "resnet")
    assert backbones.feature_info(with_top) == backbones.feature_info(without)
    extractor = feature_extractor(with_top)
    assert all(len(t.shape) == 4 for t in extractor.output.values())
    assert "predictions" not in [layer.name for layer in extractor.layers]
    assert extractor.get_layer("stage4_block2_conv2") is with_top.get_layer("stage4_block2_conv2")


@pytest.mark.parametrize("kwargs, ends", [
    # SE after the addition and ReLU: the SE layer ends the block.
    (dict(se_position="post"), "stage1_block2_se"),
    # SE before the unit or on the shortcut: off the main path, the ReLU ends it.
    (dict(se_position="pre"), "stage1_block2_out"),
    (dict(se_position="identity"), "stage1_block2_out"),
    (dict(se=False), "stage1_block2_out"),
])
def test_the_stage_end_follows_the_se_position(models, kwargs, ends):
    model = _model(models, "resnet", **kwargs)
    assert {row["key"]: row["layer"] for row in backbones.feature_info(model)}["P2"] == ends


@pytest.mark.parametrize("builder, kwargs, expected", [
    # "valid" strided convolutions: 75 px gives 35, 15, 7, 3, 1, nominally strides 2-32.
    (SEInceptionV3, dict(input_shape=(75, 75, 3)),
     ["stem_conv3_relu", "stem_conv5_relu", "mixed2_se", "mixed7_se", "mixed10_se"]),
    (SEMobileNet, dict(input_shape=(64, 64, 3), se_position="inner"),
     ["block1_pw_relu", "block3_pw_relu", "block5_pw_relu", "block11_pw_relu",
      "block13_pw_relu"]),
    # Pre-activation: stages end at the addition, the network at final_relu.
    (SEResNet164, dict(), ["stage1_block18_add", "stage2_block18_add", "final_relu"]),
    # An unknown input size: strides come from the layers, not the shapes.
    (SEResNet50, dict(), ["stem_relu1", "stage1_block3_out", "stage2_block4_out",
                          "stage3_block6_out", "stage4_block3_out"]),
])
def test_other_layouts(models, builder, kwargs, expected):
    info = backbones.feature_info(models(builder, weights=None, include_top=False, **kwargs))
    assert [row["layer"] for row in info] == expected
    assert [row["stride"] for row in info] == [2 ** int(row["key"][1:]) for row in info]


def test_keras_round_trip_with_safe_mode(models, tmp_path):
    """The dict outputs and the record survive a `.keras` file loaded with safe_mode=True."""
    model = models(SEResNet20, weights=None, include_top=False, input_shape=(32, 32, 3),
                   include_preprocessing=True)
    extractor = feature_extractor(model)
    path = tmp_path / "backbone.keras"
    extractor.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _images(32, seed=2) * 255.0
    expected, actual = extractor.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert isinstance(actual, dict) and list(actual) == ["P0", "P1", "P2"]
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6)
    assert se_keras.get_preprocessing(loaded) == se_keras.get_preprocessing(model)
    # A loaded extractor (or full model) is an se_keras model too.
    assert list(feature_extractor(loaded).output) == ["P0", "P1", "P2"]


def test_the_preprocessing_record_is_kept(models):
    model = models(SEResNet20, weights=None, include_top=False, input_shape=(32, 32, 3),
                   include_preprocessing=True, preprocessing={"interpolation": "bicubic"})
    extractor = feature_extractor(model)
    record = se_keras.get_preprocessing(extractor)
    assert record == se_keras.get_preprocessing(model)
    assert record.normalize_in_model and record.interpolation == "bicubic"
    assert extractor.layers[1].name == "preprocessing"


def test_levels_name_and_backbone_shorthand(models):
    model = _model(models, "resnet")
    extractor = feature_extractor(model, levels=("P5", "P3", "P4"), name="retina")
    assert list(extractor.output) == ["P3", "P4", "P5"]
    assert extractor.name == "retina"
    assert feature_extractor(model).name == f"{model.name}_features"
    with pytest.raises(ValueError, match=r"keys \['P1', 'P2', 'P3', 'P4', 'P5'\].*"
                                         r"Received: levels=\('P6',\)"):
        feature_extractor(model, levels=("P6",))
    built = backbones.backbone("SEResNet20", input_shape=(32, 32, 3), levels="P2")
    assert list(built.output) == ["P2"] and built.output["P2"].shape == (None, 8, 8, 64)
    with pytest.raises(ValueError, match=r"Received: include_top=True"):
        backbones.backbone("SEResNet20", include_top=True)


def test_models_not_from_se_keras_are_refused():
    inputs = keras.Input((32, 32, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2, name="conv")(inputs),
                        name="plain")
    with pytest.raises(ValueError, match=r"no `ImagePreprocessing`.*Received: model='plain'"):
        feature_extractor(plain)
    # A record alone does not make a known architecture.
    wrapped = se_keras.attach_preprocessing(plain, se_keras.Preprocessing(size=32))
    with pytest.raises(ValueError, match=r"match none of the families.*Received: model='plain'"):
        feature_extractor(wrapped)
    with pytest.raises(ValueError, match=r"functional keras.Model.*Received: model='SEResNet50'"):
        feature_extractor("SEResNet50")


def test_no_backend_specific_code():
    """Backend-neutral Keras only: no TensorFlow import, no private Keras API, no Lambda."""
    source = pathlib.Path(backbones.__file__).read_text()
    for banned in ("tensorflow", "keras.src", "Lambda"):
        assert banned not in source
    example = (REPO / "applications" / "segment_digits_fpn.py").read_text()
    for banned in ("import tensorflow", "keras.src", "Lambda"):
        assert banned not in example


@pytest.fixture(scope="module")
def segment_example():
    spec = importlib.util.spec_from_file_location(
        "segment_digits_fpn", REPO / "applications" / "segment_digits_fpn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segment_example_data_labels_come_from_the_ink(segment_example):
    ink, labels, train, held_out = segment_example.load_digit_scans()
    assert len(ink) == 1797 and len(held_out) == 364 and not set(train) & set(held_out)
    images, masks = segment_example.make_canvases(
        ink, labels, held_out, 8, size=32, digits=(2, 3), digit_size=(10, 15),
        threshold=0.3, seed=0)
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.uint8
    assert masks.shape == (8, 32, 32) and masks.max() <= 10
    # Digit pixels are dark ink, background pixels are paper-white or faint.
    assert images[..., 0][masks > 0].max() < 255 * (1 - 0.3) + 1
    assert np.all(images[..., 0][masks == 0] >= 255 * (1 - 0.3) - 1)
    for mask in masks:  # 2-3 digits, so 1-3 classes besides the background
        assert 1 <= len(set(np.unique(mask)) - {0}) <= 3


def test_segment_example_fpn_on_an_imagenet_backbone(segment_example):
    backbone = feature_extractor(SEResNet18(weights=None, include_top=False,
                                            input_shape=(64, 64, 3)))
    model = segment_example.build_fpn_segmenter(backbone, image_size=64, num_classes=11,
                                                channels=16)
    assert model.output.shape == (None, 64, 64, 11)
    assert "fpn_lateral_P2" in [layer.name for layer in model.layers]
    assert "fpn_lateral_P1" not in [layer.name for layer in model.layers]


def test_segment_example_smoke(segment_example, tmp_path):
    """main() with a handful of steps: it trains, evaluates and writes its files."""
    results = segment_example.main([
        "--train-images", "32", "--val-images", "8", "--batch-size", "8",
        "--epochs", "2", "--steps-per-epoch", "3", "--fpn-channels", "16",
        "--output", str(tmp_path),
    ])
    assert (tmp_path / "predictions.png").stat().st_size > 0
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["steps"] == 6 and len(saved["loss"]) == 2
    assert all(math.isfinite(v) for v in saved["loss"] + saved["val_loss"])
    assert 0.0 <= results["final_mean_iou"] <= 1.0
    assert 0.0 < results["background_only_mean_iou"] < 0.1
