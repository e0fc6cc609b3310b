"""preprocess_input and decode_predictions (the record layer: tests/test_preprocessing.py)."""

import numpy as np
import pytest

from se_keras.applications import decode_predictions
from se_keras.applications import imagenet_class_names
from se_keras.applications import preprocess_input


def test_class_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet_tissue"


def test_torch_mode_matches_the_formula():
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 5, 3)).astype("float32")
    expected = (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(preprocess_input(x), expected, rtol=1e-6, atol=1e-6)
    cf = preprocess_input(np.moveaxis(x, -1, 1), data_format="channels_first")
    np.testing.assert_allclose(np.moveaxis(cf, 1, -1), expected, rtol=1e-6, atol=1e-6)
    single = preprocess_input(np.moveaxis(x[0], -1, 0), data_format="channels_first")
    np.testing.assert_allclose(np.moveaxis(single, 0, -1), expected[0], rtol=1e-6, atol=1e-6)


def test_caffe_mode_is_bgr_minus_mean():
    x = np.zeros((1, 1, 1, 3), "float32") + np.array([10.0, 20.0, 30.0], "float32")
    np.testing.assert_allclose(preprocess_input(x, mode="caffe")[0, 0, 0], [30 - 104, 20 - 117, 10 - 123])


def test_decode_predictions():
    preds = np.zeros((2, 1000), "float32")
    preds[0, [5, 7]] = [0.7, 0.2]
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=2)
    assert decoded[0][0][:2] == ("n01496331", "electric_ray") and decoded[0][0][2] == pytest.approx(0.7)
    assert decoded[0][1][1] == "cock"
    assert decoded[1][0][1] == "toilet_tissue"
    with pytest.raises(ValueError, match=r"Received: preds.shape=\(2, 10\)"):
        decode_predictions(np.zeros((2, 10)))


def test_bad_mode():
    with pytest.raises(ValueError, match="Received: mode='tf'"):
        preprocess_input(np.zeros((1, 2, 2, 3)), mode="tf")
