"""Every export path serves with the model's own preprocessing record, never twice."""

import json
import pathlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from se_keras.export import export_for_serving
from se_keras.export import read_metadata
from se_keras.preprocessing import get_preprocessing
from tests.export.conftest import make_model


def _serve(version_dir, images):
    loaded = tf.saved_model.load(str(version_dir))
    out = loaded.signatures["serving_default"](images=tf.constant(images, tf.string))
    return out["probabilities"].numpy(), loaded


def test_twins_with_and_without_builtin_normalization_serve_the_same(images, tmp_path):
    """Same weights, same JPEG bytes: the model that normalizes itself gets raw pixels."""
    keras.utils.set_random_seed(3)
    plain = make_model()
    raw = make_model(include_preprocessing=True)
    raw.set_weights(plain.get_weights())
    assert get_preprocessing(raw).normalize_in_model
    plain_dir = export_for_serving(plain, tmp_path / "plain", verbose=False)
    raw_dir = export_for_serving(raw, tmp_path / "raw", verbose=False)
    plain_probs, _ = _serve(plain_dir, images)
    raw_probs, raw_loaded = _serve(raw_dir, images)
    largest = plain_probs.max()
    difference = np.abs(raw_probs - plain_probs).max()
    print(f"twins: max |raw - plain| = {difference:.3g} of the largest probability {largest:.3f}")
    assert difference <= 1e-6 * largest
    # The comparison can fail: normalizing twice moves these probabilities a lot.
    from se_keras.export import preprocess_images

    once = preprocess_images(images, get_preprocessing(plain))
    twice = (once - np.array(get_preprocessing(plain).mean) * 255) / (
        np.array(get_preprocessing(plain).std) * 255)
    moved = np.abs(np.asarray(plain(once)) - np.asarray(plain(twice.astype("float32")))).max()
    assert moved > 1e-2, moved
    assert read_metadata(raw_dir)["preprocessing"]["normalize_in_model"] is True
    # The pixels signature of the raw model takes the crop's [0, 255] pixels.
    pixels = preprocess_images(images, get_preprocessing(raw))
    assert pixels.max() > 50.0
    served = raw_loaded.signatures["preprocessed"](pixels=tf.constant(pixels))["probabilities"]
    np.testing.assert_allclose(served.numpy(), raw_probs, atol=1e-6)
    # An export cannot change what the graph normalizes with.
    with pytest.raises(ValueError, match=r"cannot change `mean`"):
        export_for_serving(raw, tmp_path / "bad", preprocessing={"mean": (0.5, 0.5, 0.5)},
                           verbose=False)


def test_pixels_of_the_wrong_size_are_refused(exported, loaded):
    """A signature does not enforce its shape; the export checks it, so that no
    image's prediction can depend on another's."""
    model, _ = exported
    small = tf.random.stateless_uniform((4, 16, 16, 3), [1, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must have shape \[batch, 32, 32, 3\]"):
        loaded.signatures["preprocessed"](pixels=small)
    good = tf.random.stateless_uniform((4, 32, 32, 3), [1, 2])
    changed = tf.concat([good[:1] + 1.0, good[1:]], axis=0)
    sig = loaded.signatures["preprocessed"]
    a = sig(pixels=good)["probabilities"].numpy()
    b = sig(pixels=changed)["probabilities"].numpy()
    np.testing.assert_allclose(a[1:], b[1:], atol=1e-7)
    assert np.abs(a[0] - b[0]).max() > 1e-4


def test_a_model_without_a_record_needs_one(tmp_path):
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    foreign = keras.Model(inputs, outputs, name="foreign")
    with pytest.raises(ValueError, match=r"no preprocessing record.*Received: model='foreign'"):
        export_for_serving(foreign, tmp_path / "f", verbose=False)
    path = export_for_serving(foreign, tmp_path / "f", preprocessing={"crop_pct": 1.0},
                              verbose=False)
    assert read_metadata(path)["preprocessing"]["crop_pct"] == 1.0


def test_a_converted_legacy_model_keeps_timms_bilinear_through_a_keras_file(tmp_path):
    """from_timm records the checkpoint's real preprocessing (timm evaluates the
    legacy SE-ResNet-50 bilinear), and the record survives model.save/load_model
    into the export, with no fallback and no warning."""
    from safetensors.numpy import save_file

    from se_keras.weights import from_timm
    from tests.weights import checkpoint_generator as gen

    fixture = pathlib.Path(__file__).parents[1] / "fixtures" / "timm" / "legacy_seresnet50.npz"
    keys_shapes, stats, _, meta = gen.load_fixture(fixture)
    state = gen.generate(keys_shapes, meta["seed"], meta["residual_bn"], stats)
    checkpoint = tmp_path / "se_resnet50.safetensors"
    save_file(state, str(checkpoint))
    model = from_timm("legacy_seresnet50", checkpoint, input_shape=(64, 64, 3))
    record = get_preprocessing(model)
    assert (record.interpolation, record.crop_pct, record.size) == ("bilinear", 0.875, 64)
    assert record.weights == str(checkpoint)
    model.save(tmp_path / "legacy.keras")
    loaded = keras.models.load_model(tmp_path / "legacy.keras", safe_mode=True)
    assert get_preprocessing(loaded) == record
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. a fallback to default preprocessing
        path = export_for_serving(loaded, tmp_path / "served", verbose=False)
    metadata = read_metadata(path)
    assert metadata["preprocessing"] == record.to_dict()
    assert json.loads(json.dumps(metadata))["preprocessing"]["interpolation"] == "bilinear"
