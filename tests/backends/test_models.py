"""One build per family against TensorFlow on the same weights, channels_first,
and the preprocessing record layer that every model starts with."""

import keras
import numpy as np
import pytest

import se_keras
from se_keras.applications import SEResNet18
from tests.backends import references
from tests.backends.references import relative_error

BACKEND = keras.backend.backend()


@pytest.mark.parametrize("family", list(references.FAMILIES))
def test_family_matches_tensorflow(family, tf_references, record_difference):
    directory = tf_references("families")
    _, model = references.family_model(family)
    model.load_weights(directory / f"{family}.weights.h5")
    x = references.family_input(family)
    expected = np.load(directory / f"{family}.npy")
    # predict compiles the model (jax.jit, tf.function); a direct call runs eagerly.
    compiled = record_difference("builders vs TensorFlow",
                                 relative_error(model.predict(x, verbose=0), expected))
    eager = relative_error(model(x, training=False), expected)
    assert compiled <= 1e-5 and eager <= 1e-5, (compiled, eager)
    record = se_keras.get_preprocessing(model)
    assert record.size == x.shape[1] and model.layers[1].name == "preprocessing"


def test_channels_first(tf_references):
    """TensorFlow's CPU convolutions are NHWC only, so the builders refuse
    channels_first there; JAX and torch run it on the CPU, with the same weights."""
    keras.config.set_image_data_format("channels_first")
    if BACKEND == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            with pytest.raises(ValueError, match="channels_first"):
                SEResNet18(weights=None, input_shape=(3, 64, 64))
            return
    directory = tf_references("families")
    model = SEResNet18(weights=None, input_shape=(3, 64, 64), classes=7,
                       classifier_activation=None)
    model.load_weights(directory / "resnet.weights.h5")
    x = np.moveaxis(references.family_input("resnet"), -1, 1)
    assert relative_error(model.predict(x, verbose=0), np.load(directory / "resnet.npy")) <= 1e-5


def test_preprocessing_record_layer(tmp_path):
    """normalize_in_model: the model takes RGB in [0, 255]; the record survives attach."""
    model = SEResNet18(weights=None, input_shape=(64, 64, 3), include_top=False,
                       include_preprocessing=True)
    record = se_keras.get_preprocessing(model)
    assert record.normalize_in_model and record.size == 64
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    normalized = model.get_layer("preprocessing")(pixels)
    expected = (pixels / 255.0 - np.array(record.mean)) / np.array(record.std)
    assert relative_error(normalized, expected) <= 1e-6
    changed = se_keras.attach_preprocessing(model, record.replace(crop_pct=1.0))
    assert se_keras.get_preprocessing(changed).crop_pct == 1.0
    np.testing.assert_allclose(changed.predict(pixels, verbose=0),
                               model.predict(pixels, verbose=0), rtol=1e-6, atol=1e-6)


def test_decode_predictions_takes_the_backends_tensors():
    """A torch tensor that tracks gradients refuses np.asarray."""
    from se_keras.applications import SEResNet20
    from se_keras.applications import decode_predictions

    model = SEResNet20(weights=None, classes=1000, input_shape=(32, 32, 3))
    decoded = decode_predictions(model(np.zeros((2, 32, 32, 3), "float32")), top=3)
    assert len(decoded) == 2 and len(decoded[0]) == 3


def test_feature_extractor_on_this_backend(tmp_path):
    from se_keras.applications import feature_extractor

    model = SEResNet18(weights=None, include_top=False, input_shape=(64, 64, 3))
    extractor = feature_extractor(model)
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    features = extractor(x)
    assert sorted(features) == ["P1", "P2", "P3", "P4", "P5"]
    assert [tuple(features[k].shape[1:]) for k in sorted(features)] == [
        (32, 32, 64), (16, 16, 64), (8, 8, 128), (4, 4, 256), (2, 2, 512)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(features["P5"]),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    extractor.save(tmp_path / "extractor.keras")
    loaded = keras.models.load_model(tmp_path / "extractor.keras", safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)["P3"]),
                               keras.ops.convert_to_numpy(features["P3"]), rtol=1e-6, atol=1e-6)
