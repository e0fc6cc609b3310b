"""The preprocessing record: every builder carries it, it survives every save, and errors."""

import json

import keras
import numpy as np
import pytest

import se_keras
from se_keras import applications
from se_keras.applications import preprocess_input
from se_keras.preprocessing import ImagePreprocessing
from se_keras.preprocessing import Preprocessing
from se_keras.preprocessing import attach_preprocessing
from se_keras.preprocessing import get_preprocessing
from se_keras.preprocessing import read_sidecar
from se_keras.preprocessing import sidecar_path
from se_keras.preprocessing import write_sidecar

# One small build per family: (builder, kwargs, the record it must carry).
FAMILIES = [
    (applications.SEResNet18, dict(input_shape=(64, 64, 3), classes=3), 64, 0.875),
    (applications.SEResNet20, dict(input_shape=(16, 16, 3), classes=3), 16, 1.0),
    (applications.SEBNInception, dict(include_top=False, input_shape=(96, 96, 3)), 96, 0.875),
    (applications.SEMobileNetV2, dict(alpha=0.35, input_shape=(64, 64, 3), classes=3), 64, 0.875),
    (applications.SEShuffleNet, dict(scale=0.5, input_shape=(64, 64, 3), classes=3), 64, 0.875),
    (applications.SEVGG16, dict(include_top=False, input_shape=(32, 32, 3)), 32, 0.875),
]


@pytest.mark.parametrize("builder, kwargs, size, crop_pct", FAMILIES,
                         ids=[f[0].__name__ for f in FAMILIES])
def test_every_family_carries_a_record_that_survives_keras_files(
    builder, kwargs, size, crop_pct, tmp_path
):
    model = builder(weights=None, preprocessing={"interpolation": "bicubic"}, **kwargs)
    assert model.layers[1].name == "preprocessing"
    record = get_preprocessing(model)
    assert (record.size, record.crop_pct, record.interpolation) == (size, crop_pct, "bicubic")
    assert record.weights is None and not record.normalize_in_model
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert get_preprocessing(loaded) == record
    # A weights file passed to the builder becomes the record's origin.
    model.save_weights(tmp_path / "m.weights.h5")
    again = builder(weights=str(tmp_path / "m.weights.h5"), **kwargs)
    assert get_preprocessing(again).weights == str(tmp_path / "m.weights.h5")


def test_builtin_normalization_equals_preprocess_input_and_serializes(tmp_path):
    raw = applications.SEResNet18(weights=None, include_preprocessing=True,
                                  input_shape=(64, 64, 3), classes=5)
    plain = applications.SEResNet18(weights=None, input_shape=(64, 64, 3), classes=5)
    plain.set_weights(raw.get_weights())
    assert get_preprocessing(raw).normalize_in_model
    assert not get_preprocessing(plain).normalize_in_model
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(raw(x)), np.asarray(plain(preprocess_input(x))),
                               rtol=1e-5, atol=1e-6)
    raw.save(tmp_path / "raw.keras")
    loaded = keras.models.load_model(tmp_path / "raw.keras", safe_mode=True)
    assert get_preprocessing(loaded) == get_preprocessing(raw)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(raw(x)))


def test_the_layer_is_the_identity_without_builtin_normalization():
    layer = ImagePreprocessing(Preprocessing(size=4))
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    cf = ImagePreprocessing(Preprocessing(size=4, normalize_in_model=True),
                            data_format="channels_first")
    np.testing.assert_allclose(
        np.asarray(cf(np.moveaxis(x, -1, 1))),
        preprocess_input(np.moveaxis(x, -1, 1), data_format="channels_first"),
        rtol=1e-5, atol=1e-5,
    )


@pytest.mark.parametrize("changes, message", [
    (dict(size=0), r"Received: size=0"),
    (dict(crop_pct=1.5), r"Received: crop_pct=1.5"),
    (dict(interpolation="area"), r"Received: interpolation='area'"),
    (dict(mean=(0.5, 0.5)), r"Received: mean=\(0.5, 0.5\)"),
    (dict(std=(1.0, 0.0, 1.0)), r"Received: std="),
])
def test_bad_records_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        Preprocessing(**changes)


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match=r"Received: resize=256"):
        Preprocessing().replace(resize=256)
    with pytest.raises(ValueError, match=r"unknown keys \['scale'\]"):
        Preprocessing.from_dict({"size": 32, "scale": 2})


def test_old_run_records_read_back():
    # Runs and exports written before the record carry five keys.
    old = {"size": 32, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.25] * 3,
           "interpolation": "bilinear"}
    record = Preprocessing.from_dict(old)
    assert record.mean == (0.5, 0.5, 0.5) and record.normalize_in_model is False
    assert Preprocessing.from_dict(record.to_dict()) == record
    assert json.loads(json.dumps(record.to_dict())) == record.to_dict()


def test_a_foreign_model_has_no_record_until_one_is_attached():
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    foreign = keras.Model(inputs, outputs, name="foreign")
    with pytest.raises(ValueError, match=r"no preprocessing record.*Received: model='foreign'"):
        get_preprocessing(foreign)
    with pytest.raises(ValueError, match=r"input size 32. Received: size=64"):
        attach_preprocessing(foreign, Preprocessing(size=64))
    model = attach_preprocessing(foreign, Preprocessing(size=32, crop_pct=1.0))
    assert get_preprocessing(model) == Preprocessing(size=32, crop_pct=1.0)
    x = np.ones((1, 32, 32, 3), "float32")
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(foreign(x)))


def test_attach_replaces_a_record_and_nested_models_are_searched():
    model = applications.SEResNet20(weights=None, input_shape=(16, 16, 3), classes=3)
    copy = attach_preprocessing(model, get_preprocessing(model).replace(crop_pct=0.9))
    assert get_preprocessing(copy).crop_pct == 0.9 and get_preprocessing(model).crop_pct == 1.0
    x = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(copy(x)), np.asarray(model(x)))
    with pytest.raises(ValueError, match="built again"):
        attach_preprocessing(model, get_preprocessing(model).replace(normalize_in_model=True))
    inputs = keras.Input((16, 16, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2)(model(inputs)))
    assert get_preprocessing(outer) == get_preprocessing(model)


def test_sidecar_records_beside_weights_files(tmp_path):
    weights = tmp_path / "net.weights.h5"
    assert sidecar_path(weights) == tmp_path / "net.preprocessing.json"
    assert read_sidecar(weights) is None
    record = Preprocessing(size=40, interpolation="bicubic", weights="somewhere.pth")
    write_sidecar(weights, record)
    assert read_sidecar(weights) == record
    model = applications.SEResNet20(weights=None, input_shape=(40, 40, 3), classes=3)
    model.save_weights(weights)
    loaded = applications.SEResNet20(weights=str(weights), input_shape=(40, 40, 3), classes=3)
    assert get_preprocessing(loaded).interpolation == "bicubic"
    sidecar_path(weights).write_text("{not json")
    with pytest.raises(ValueError, match=r"net.preprocessing.json is not a valid"):
        read_sidecar(weights)


def test_top_level_names():
    assert se_keras.Preprocessing is Preprocessing
    assert se_keras.get_preprocessing is get_preprocessing
    assert se_keras.data.Preprocessing is Preprocessing


def test_a_second_record_around_a_model_that_has_one_is_refused():
    inner = applications.SEResNet20(weights=None, include_top=False, pooling="avg",
                                    include_preprocessing=True)
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, keras.layers.Dense(3)(inner(inputs)), name="outer")
    assert get_preprocessing(outer).normalize_in_model
    with pytest.raises(ValueError, match=r"already carries a record inside it"):
        attach_preprocessing(outer, Preprocessing(size=32, crop_pct=1.0))
    # Built by hand: two records that would both normalize are an error to read.
    x = ImagePreprocessing(Preprocessing(size=32, normalize_in_model=True), name="again")(inputs)
    twice = keras.Model(inputs, inner(x), name="twice")
    with pytest.raises(ValueError, match=r"several preprocessing records.*Received: model='twice'"):
        get_preprocessing(twice)


def test_size_must_be_one_number():
    assert Preprocessing(size=(40, 40)).size == 40
    for bad in [(224, 224, 3), (20, 30), "224"]:
        with pytest.raises(ValueError, match=r"Received: size="):
            Preprocessing(size=bad)


def test_keras_files_from_before_the_record_load_their_normalization():
    """Such files hold a layer registered as se_keras>Preprocessing."""
    old = {"module": None, "class_name": "Preprocessing", "registered_name": "se_keras>Preprocessing",
           "config": {"name": "preprocessing", "mean": [0.485, 0.456, 0.406],
                      "std": [0.229, 0.224, 0.225], "scale": 1.0 / 255.0,
                      "data_format": "channels_last", "trainable": True, "dtype": "float32"}}
    layer = keras.saving.deserialize_keras_object(old)
    inputs = keras.Input((24, 24, 3))
    model = keras.Model(inputs, layer(inputs))
    record = get_preprocessing(model)
    assert record.normalize_in_model and record.size == 24
    x = np.random.default_rng(3).uniform(0, 255, (1, 24, 24, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), preprocess_input(x), rtol=1e-5, atol=1e-5)
