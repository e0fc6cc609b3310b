"""TFLite export (`se-keras export --format tflite`): the interpreter against Keras."""

import json
import warnings

import numpy as np
import tensorflow as tf

from se_keras import cli
from se_keras.export import preprocess_images
from tests.export.conftest import CIFAR_PREPROCESSING
from tests.export.conftest import cifar_jpegs
from tests.export.conftest import make_model


def run_tflite(path, pixels):
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to ai_edge_litert.
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inputs = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inputs["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], pixels)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_tflite_float_export_matches_keras(tmp_path, capsys):
    model = make_model()
    model.save(tmp_path / "model.keras")
    pixels = preprocess_images(cifar_jpegs(), CIFAR_PREPROCESSING)
    expected = np.asarray(model(pixels, training=False))
    common = ["export", "--model", str(tmp_path / "model.keras"), "--format", "tflite",
              "--mean", "0.49", "0.48", "0.45", "--std", "0.25", "0.24", "0.26"]

    assert cli.main(common + ["--output", str(tmp_path / "float.tflite")]) == 0
    float_difference = np.max(np.abs(run_tflite(tmp_path / "float.tflite", pixels) - expected))
    with capsys.disabled():
        print(f"tflite float: max |tflite - keras| = {float_difference:.3g}")
    assert float_difference <= 1e-4
    sidecar = json.loads((tmp_path / "float.preprocessing.json").read_text())
    assert sidecar["preprocessing"]["std"] == list(CIFAR_PREPROCESSING["std"])
    # The export checked itself (optimized graph against the model as given).
    assert sidecar["optimized"] and sidecar["max_abs_difference_from_keras"] <= 1e-4
    assert "normalized RGB" in sidecar["input"]

    capsys.readouterr()


def test_tflite_dynamic_int8_is_smaller_and_close(tmp_path):
    import keras

    from se_keras.export.tflite import export_tflite
    from se_keras.layers import SqueezeExcitation

    # A small SE network: the quantization path, not the architecture, is under test.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = SqueezeExcitation(ratio=4)(x)
    x = keras.layers.Conv2D(64, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    dense = model.get_layer("predictions")
    dense.set_weights([dense.get_weights()[0] * 25.0, dense.get_weights()[1]])
    pixels = preprocess_images(cifar_jpegs(), CIFAR_PREPROCESSING)
    expected = np.asarray(model(pixels, training=False))

    paths = [export_tflite(model, tmp_path / f"{name}.tflite", quantize=quantize,
                           preprocessing=CIFAR_PREPROCESSING)
             for name, quantize in (("float", None), ("int8", "dynamic"))]
    float_difference = np.max(np.abs(run_tflite(paths[0], pixels) - expected))
    int8_difference = np.max(np.abs(run_tflite(paths[1], pixels) - expected))
    print(f"tflite small SE net: float {float_difference:.3g}, dynamic int8 "
          f"{int8_difference:.3g}")
    assert float_difference <= 1e-4
    assert 0 < int8_difference <= 0.05
    assert paths[1].stat().st_size < 0.5 * paths[0].stat().st_size


def test_tflite_argument_errors(tmp_path, capsys):
    model = make_model()
    model.save(tmp_path / "model.keras")
    assert cli.main(["export", "--model", str(tmp_path / "model.keras"), "--format", "tflite",
                     "--output", str(tmp_path / "model.bin")]) == 2
    assert "Received: path=" in capsys.readouterr().err
    assert cli.main(["export", "--model", str(tmp_path / "model.keras"), "--quantize",
                     "dynamic", "--output", str(tmp_path / "base")]) == 2
    assert "Received: quantize='dynamic'" in capsys.readouterr().err
