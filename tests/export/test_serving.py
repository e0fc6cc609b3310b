"""The exported SavedModel against the Keras model: signatures, REST, bad inputs, warm-up."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from se_keras.export import rest
from se_keras.export import warmup
from tests.export.conftest import ATOL
from tests.export.conftest import CIFAR_CLASSES
from tests.export.conftest import CIFAR_PREPROCESSING
from tests.export.conftest import encode
from tests.export.conftest import keras_probabilities

OUTPUT_KEYS = {"probabilities", "top_k_classes", "top_k_probabilities", "top_k_labels"}


def serve(loaded, images):
    outputs = loaded.signatures["serving_default"](images=tf.constant(images, tf.string))
    return {k: v.numpy() for k, v in outputs.items()}


def test_serving_default_equals_keras_on_real_jpegs(exported, loaded, images):
    model, _ = exported
    served = serve(loaded, images)
    expected = keras_probabilities(model, images, use_predict=True)
    difference = np.max(np.abs(served["probabilities"] - expected))
    print(f"max |served - keras| on {len(images)} JPEGs: {difference:.3g}")
    assert difference <= ATOL
    # The comparison can fail: the model is far from uniform, its answers
    # differ from image to image, and a different normalization moves them
    # well past ATOL.
    assert expected.max() > 0.5 and np.ptp(expected, axis=0).max() > 0.05
    imagenet = dict(CIFAR_PREPROCESSING, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert np.max(np.abs(keras_probabilities(model, images, imagenet) - expected)) > 1e-3

    order = np.argsort(-expected, axis=-1, kind="stable")[:, :5]
    np.testing.assert_array_equal(served["top_k_classes"], order)
    np.testing.assert_allclose(
        served["top_k_probabilities"], np.take_along_axis(expected, order, -1), atol=ATOL
    )
    labels = np.array(CIFAR_CLASSES)[order]
    assert served["top_k_labels"].astype(str).tolist() == labels.tolist()
    assert served["probabilities"].dtype == np.float32
    assert served["top_k_classes"].dtype == np.int32


def test_preprocessed_signature_equals_keras(exported, loaded, images):
    model, _ = exported
    from se_keras.export import preprocess_images

    pixels = preprocess_images(images, CIFAR_PREPROCESSING)
    outputs = loaded.signatures["preprocessed"](pixels=tf.constant(pixels))
    expected = model.predict(pixels, verbose=0)
    assert set(outputs) == OUTPUT_KEYS
    assert np.max(np.abs(outputs["probabilities"].numpy() - expected)) <= ATOL


def _saved_model_cli(path):
    script = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = [script] if os.path.exists(script) else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(
        command + ["show", "--dir", str(path), "--all"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _signature_block(text, name):
    match = re.search(rf"signature_def\['{name}'\]:\n(.*?)(?=\nsignature_def\[|\n\n\S|\Z)",
                      text, re.S)
    assert match, f"no signature {name!r} in saved_model_cli's output"
    block = match.group(1)
    tensors = re.findall(
        r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", block
    )
    return {key: (kind, dtype, shape) for kind, key, dtype, shape in tensors}, block


def test_saved_model_cli_lists_both_signatures(exported):
    text = _saved_model_cli(exported[1])
    serving, block = _signature_block(text, "serving_default")
    assert serving == {
        "images": ("inputs", "DT_STRING", "(-1)"),
        "probabilities": ("outputs", "DT_FLOAT", "(-1, 10)"),
        "top_k_classes": ("outputs", "DT_INT32", "(-1, 5)"),
        "top_k_probabilities": ("outputs", "DT_FLOAT", "(-1, 5)"),
        "top_k_labels": ("outputs", "DT_STRING", "(-1, 5)"),
    }
    assert "tensorflow/serving/predict" in block
    pixels, _ = _signature_block(text, "preprocessed")
    assert pixels["pixels"] == ("inputs", "DT_FLOAT", "(-1, 32, 32, 3)")
    assert {k for k, v in pixels.items() if v[0] == "outputs"} == OUTPUT_KEYS


def test_layout_and_atomic_write(exported):
    path = exported[1]
    assert path.name == "1"
    assert sorted(p.name for p in path.parent.iterdir()) == ["1"]  # no temporary left
    for name in ("saved_model.pb", "variables", "assets.extra/tf_serving_warmup_requests",
                 "assets.extra/se_keras_export.json"):
        assert (path / name).exists(), name
    assert oct((path / "saved_model.pb").stat().st_mode & 0o777) == oct(0o644)
    metadata = json.loads((path / "assets.extra/se_keras_export.json").read_text())
    assert metadata["preprocessing"]["mean"] == list(CIFAR_PREPROCESSING["mean"])
    assert metadata["verified_max_abs_difference"] <= ATOL


def test_rest_body_is_turned_into_inputs_like_tf_serving(exported, loaded, images):
    model, _ = exported
    signature = loaded.signatures["serving_default"]
    b64 = [rest.base64_image(b) for b in images]
    expected = keras_probabilities(model, images)

    row = json.dumps({"instances": [{"b64": s} for s in b64]})
    inputs, row_format = rest.request_to_inputs(row, signature)
    assert row_format and list(inputs) == ["images"]
    assert inputs["images"].shape == (len(images),) and list(inputs["images"]) == images

    answer = json.loads(json.dumps(rest.predict(signature, row)))  # through JSON, as on the wire
    predictions = answer["predictions"]
    assert len(predictions) == len(images) and set(predictions[0]) == OUTPUT_KEYS
    assert np.max(np.abs(np.array([p["probabilities"] for p in predictions]) - expected)) <= ATOL
    assert [p["top_k_labels"][0] for p in predictions] == [
        CIFAR_CLASSES[i] for i in expected.argmax(-1)]

    # The other spellings TF Serving accepts give the same answer.
    named = {"instances": [{"images": {"b64": s}} for s in b64]}
    columnar = {"inputs": {"images": [{"b64": s} for s in b64]}}
    bare_columnar = {"inputs": [{"b64": s} for s in b64]}
    assert rest.predict(signature, named) == answer
    outputs = rest.predict(signature, columnar)["outputs"]
    assert outputs["top_k_labels"] == [p["top_k_labels"] for p in predictions]
    assert rest.predict(signature, bare_columnar)["outputs"] == outputs


def test_rest_body_for_the_pixels_signature(exported, loaded, images):
    from se_keras.export import preprocess_images

    model, _ = exported
    pixels = preprocess_images(images[:2], CIFAR_PREPROCESSING)
    body = json.dumps({"signature_name": "preprocessed", "instances": pixels.tolist()})
    answer = rest.predict(loaded.signatures["preprocessed"], body)
    served = np.array([p["probabilities"] for p in answer["predictions"]])
    assert np.max(np.abs(served - model.predict(pixels, verbose=0))) <= ATOL


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "exactly one of"),
        ({"instances": []}, "non-empty"),
        ({"instances": [{"b64": "@@not base64@@"}]}, "invalid base64"),
        ({"instances": [{"image": {"b64": "AAAA"}}]}, "exactly the inputs"),
        ({"instances": [[1.0, 2.0]]}, "not a number"),
    ],
)
def test_malformed_rest_bodies_are_rejected(loaded, body, message):
    with pytest.raises(ValueError, match=message):
        rest.predict(loaded.signatures["serving_default"], body)


def _bad_inputs(valid):
    rng = np.random.default_rng(0)
    pixels = np.asarray(Image.open(io.BytesIO(valid)).convert("RGB"))
    big = np.asarray(Image.fromarray(pixels).resize((64, 48)))
    return {
        "empty": b"",
        "not_an_image": b"GIF89a? no, just text pretending to be an image",
        "truncated_jpeg": valid[: len(valid) // 2],
        "one_pixel": encode(pixels[:1, :1]),
        "cmyk_jpeg": encode(big, mode="CMYK", quality=95),
        "grayscale_jpeg": encode(big, mode="L", quality=95),
        "rgba_png": encode(np.dstack([big, rng.integers(0, 256, big.shape[:2], np.uint8)]),
                           "PNG"),
    }


def test_bad_inputs_give_invalid_argument_or_a_correct_prediction(exported, loaded, images):
    from se_keras.data.preprocessing import decode_image

    model, _ = exported
    valid = images[:2]
    baseline = serve(loaded, valid)["probabilities"]
    cases = _bad_inputs(images[0])
    outcomes = {}
    for name, data in cases.items():
        try:
            served = serve(loaded, [data])["probabilities"]
        except tf.errors.InvalidArgumentError as error:
            outcomes[name] = "InvalidArgument"
            assert error.message.strip(), name
        else:
            outcomes[name] = "prediction"
            # Correct: the model on the decoded pixels ...
            expected = keras_probabilities(model, [data])
            assert np.max(np.abs(served - expected)) <= ATOL, name
        # ... and the server is unharmed: the next valid request is unchanged.
        np.testing.assert_array_equal(serve(loaded, valid)["probabilities"], baseline)
    assert outcomes == {
        "empty": "InvalidArgument", "not_an_image": "InvalidArgument",
        "truncated_jpeg": "InvalidArgument", "one_pixel": "prediction",
        "cmyk_jpeg": "prediction", "grayscale_jpeg": "prediction", "rgba_png": "prediction",
    }

    # ... and "decoded" means converted right: gray -> three equal channels,
    # CMYK -> the RGB that PIL makes, alpha -> dropped (the RGB part of the
    # PNG, exactly). decode_image uses the exact IDCT, as PIL does: 1 level
    # of slack for libjpeg builds that round differently.
    gray = decode_image(tf.constant(cases["grayscale_jpeg"])).numpy().astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 0] == gray[..., 2]).all()
    reference_gray = np.asarray(Image.open(io.BytesIO(cases["grayscale_jpeg"])).convert("L"))
    assert np.abs(gray[..., 0] - reference_gray).max() <= 1
    cmyk = decode_image(tf.constant(cases["cmyk_jpeg"])).numpy().astype(int)
    reference_cmyk = np.asarray(Image.open(io.BytesIO(cases["cmyk_jpeg"])).convert("RGB"))
    assert np.abs(cmyk - reference_cmyk).max() <= 1
    rgb_png = encode(np.asarray(Image.open(io.BytesIO(cases["rgba_png"])).convert("RGB")), "PNG")
    np.testing.assert_allclose(
        serve(loaded, [cases["rgba_png"]])["probabilities"],
        serve(loaded, [rgb_png])["probabilities"], atol=1e-7,
    )


def test_one_bad_image_fails_its_whole_batch(loaded, images):
    # TF Serving runs a request as one batch: the error names the bad input.
    with pytest.raises(tf.errors.InvalidArgumentError, match="image|JPEG|empty"):
        serve(loaded, [images[0], b"not an image"])


def _serving_proto_classes():
    """PredictionLog parsed by protobuf itself: tensorflow-serving-api's classes when
    installed, else the same messages declared from TF Serving's .proto field numbers."""
    try:
        from tensorflow_serving.apis import prediction_log_pb2

        return prediction_log_pb2.PredictionLog
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2
    from google.protobuf import descriptor_pool
    from google.protobuf import message_factory
    from tensorflow.core.framework import tensor_pb2

    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(file_descriptor):
        if file_descriptor.name in added:
            return
        for dependency in file_descriptor.dependencies:
            add(dependency)
        pool.AddSerializedFile(file_descriptor.serialized_pb)
        added.add(file_descriptor.name)

    add(tensor_pb2.DESCRIPTOR)

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="test_prediction_log.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["tensorflow/core/framework/tensor.proto"],
    )

    def message(name, *fields, nested=()):
        m = file.message_type.add(name=name)
        for field_name, number, kind, type_name, label in fields:
            field = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
        for n in nested:
            m.nested_type.add().CopyFrom(n)
        return m

    optional, repeated = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    # model.proto: ModelSpec {name = 1; signature_name = 3}
    message("ModelSpec", ("name", 1, F.TYPE_STRING, "", optional),
            ("signature_name", 3, F.TYPE_STRING, "", optional))
    entry = descriptor_pb2.DescriptorProto(name="InputsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=optional)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=optional,
                    type_name=".tensorflow.TensorProto")
    # predict.proto: PredictRequest {model_spec = 1; map<string, TensorProto> inputs = 2}
    message("PredictRequest",
            ("model_spec", 1, F.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec", optional),
            ("inputs", 2, F.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest.InputsEntry",
             repeated), nested=[entry])
    # prediction_log.proto: PredictLog {request = 1}; PredictionLog {predict_log = 6}
    message("PredictLog",
            ("request", 1, F.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest", optional))
    message("PredictionLog",
            ("predict_log", 6, F.TYPE_MESSAGE, ".tensorflow.serving.PredictLog", optional))
    pool.AddSerializedFile(file.SerializeToString())
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.PredictionLog"))


def test_warmup_file_parses_as_prediction_logs_and_runs(exported, loaded):
    from tensorflow.core.framework import tensor_pb2

    model, path = exported
    PredictionLog = _serving_proto_classes()
    records = [r.numpy() for r in tf.data.TFRecordDataset(
        str(path / "assets.extra" / "tf_serving_warmup_requests"))]
    assert 1 <= len(records) <= 1000
    for record in records:
        log = PredictionLog.FromString(record)
        # Every byte is accounted for by the declared fields.
        assert log.SerializeToString(deterministic=True) == record
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == ["images"]
        tensor = tensor_pb2.TensorProto.FromString(request.inputs["images"].SerializeToString())
        images = tf.make_ndarray(tensor)
        assert tensor.dtype == tf.string.as_datatype_enum and images.shape == (1,)
        served = serve(loaded, list(images))["probabilities"]
        assert np.max(np.abs(served - keras_probabilities(model, list(images)))) <= ATOL
    # The package's own reader agrees.
    assert [s for s, _ in warmup.read_warmup_file(path)] == ["serving_default"] * len(records)
