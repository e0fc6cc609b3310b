"""TensorFlow Serving warm-up files: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays the records of this file when it loads a model version,
before it reports the version as available, so the first real request does
not pay for graph optimization and memory allocation. The file is a TFRecord
file of serialized `tensorflow.serving.PredictionLog` protos (at most 1000).

The `tensorflow-serving-api` package holds the generated proto classes, but
it is not a dependency of se_keras: the three message layers above the
tensor are encoded here by hand, from the field numbers of TF Serving's
`prediction_log.proto`, `predict.proto` and `model.proto`; the tensor itself
is TensorFlow's own `TensorProto` (`tf.make_tensor_proto`). The tests parse
the file back with an independent decoder and, when `tensorflow-serving-api`
is installed, with its classes too.
"""

import pathlib

from se_keras._files import atomic_path

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
# TF Serving reads at most this many records (servables/tensorflow/util.h).
MAX_RECORDS = 1000

# Field numbers from tensorflow_serving/apis/*.proto (checked against
# tensorflow-serving-api 2.21's descriptors).
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_PREDICT_REQUEST_MODEL_SPEC = 1
_PREDICT_REQUEST_INPUTS = 2
_MODEL_SPEC_NAME = 1
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY = 1
_MAP_VALUE = 2

_LENGTH_DELIMITED = 2


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, payload):
    """One length-delimited field (strings, bytes and sub-messages alike)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _varint((number << 3) | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def predict_request(inputs, signature_name="serving_default", model_name=""):
    """A serialized `tensorflow.serving.PredictRequest`.

    Args:
        inputs: dict of input name -> array-like (converted with
            `tf.make_tensor_proto`), or -> an already built `TensorProto`.
        signature_name: the signature the request is for.
        model_name: `model_spec.name`; TF Serving ignores it during warm-up.

    Returns:
        The serialized request, `bytes`.

    Example:
    >>> request = predict_request({"images": [b"..."]})
    >>> isinstance(request, bytes)
    True
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    spec = b""
    if model_name:
        spec += _field(_MODEL_SPEC_NAME, model_name)
    spec += _field(_MODEL_SPEC_SIGNATURE_NAME, signature_name)
    message = _field(_PREDICT_REQUEST_MODEL_SPEC, spec)
    # A proto map is a repeated entry message {key = 1, value = 2}; sorted
    # keys give a deterministic file.
    for name in sorted(inputs):
        value = inputs[name]
        if not isinstance(value, tensor_pb2.TensorProto):
            value = tf.make_tensor_proto(value)
        entry = _field(_MAP_KEY, name) + _field(_MAP_VALUE, value.SerializeToString())
        message += _field(_PREDICT_REQUEST_INPUTS, entry)
    return message


def prediction_log(request):
    """Wraps a serialized PredictRequest as a serialized `PredictionLog{predict_log}`."""
    return _field(_PREDICTION_LOG_PREDICT_LOG, _field(_PREDICT_LOG_REQUEST, request))


def write_warmup_file(export_dir, requests):
    """Writes `assets.extra/tf_serving_warmup_requests` into a SavedModel folder.

    Args:
        export_dir: the SavedModel version folder.
        requests: serialized PredictRequests (from `predict_request`).

    Returns:
        The file's path.

    Example:
    >>> write_warmup_file(  # doctest: +SKIP
    ...     "models/se_resnet50/1", [predict_request({"images": [jpeg]})])
    """
    import tensorflow as tf

    requests = list(requests)
    if not 1 <= len(requests) <= MAX_RECORDS:
        raise ValueError(
            f"A warm-up file holds 1 to {MAX_RECORDS} requests. "
            f"Received: len(requests)={len(requests)}"
        )
    folder = pathlib.Path(export_dir) / WARMUP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WARMUP_FILE
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for request in requests:
                writer.write(prediction_log(request))
    return path


def _read_fields(data):
    """Decodes one message level: a list of (field number, wire type, value)."""
    fields, i = [], 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            byte = data[i]
            i += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while i < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value = varint()
        elif wire_type == 1:
            value, i = data[i : i + 8], i + 8
        elif wire_type == _LENGTH_DELIMITED:
            length = varint()
            value, i = data[i : i + length], i + length
        elif wire_type == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"Unsupported protobuf wire type. Received: wire_type={wire_type}")
        fields.append((number, wire_type, value))
    return fields


def read_warmup_file(path):
    """Parses a warm-up file back into `(signature_name, {input name: ndarray})` pairs.

    Only `predict_log` records are understood (the kind `write_warmup_file`
    writes and the kind a Predict-API model needs).

    Args:
        path: the `tf_serving_warmup_requests` file, or the SavedModel
            version folder that holds it.

    Returns:
        A list with one `(signature_name, inputs)` pair per record.

    Example:
    >>> for signature, inputs in read_warmup_file("models/se/1"):  # doctest: +SKIP
    ...     print(signature, {k: v.shape for k, v in inputs.items()})
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    path = pathlib.Path(path)
    if path.is_dir():
        path = path / WARMUP_DIR / WARMUP_FILE
    records = []
    for record in tf.data.TFRecordDataset(str(path)):
        logs = [v for n, _, v in _read_fields(record.numpy()) if n == _PREDICTION_LOG_PREDICT_LOG]
        if len(logs) != 1:
            raise ValueError(f"A warm-up record is not a predict_log. Received: path={str(path)!r}")
        request = [v for n, _, v in _read_fields(logs[0]) if n == _PREDICT_LOG_REQUEST][0]
        signature, inputs = "serving_default", {}
        for number, _, value in _read_fields(request):
            if number == _PREDICT_REQUEST_MODEL_SPEC:
                for n, _, v in _read_fields(value):
                    if n == _MODEL_SPEC_SIGNATURE_NAME:
                        signature = v.decode("utf-8")
            elif number == _PREDICT_REQUEST_INPUTS:
                entry = {n: v for n, _, v in _read_fields(value)}
                tensor = tensor_pb2.TensorProto.FromString(entry[_MAP_VALUE])
                inputs[entry[_MAP_KEY].decode("utf-8")] = tf.make_ndarray(tensor)
        records.append((signature, inputs))
    return records


def default_warmup_images(size):
    """Two JPEGs for the warm-up file: one at the model's size, one larger and not square.

    Example:
    >>> len(default_warmup_images(32))
    2
    """
    import numpy as np
    import tensorflow as tf

    images = []
    for height, width in ((size, size), (2 * size + 17, 3 * size + 5)):
        y = np.linspace(0.0, 1.0, height)[:, None]
        x = np.linspace(0.0, 1.0, width)[None, :]
        # Smooth colour ramps: a JPEG of noise would be much larger and is
        # no better at warming anything up.
        pixels = np.stack([y * x, y * (1 - x), (1 - y) * x], axis=-1) * 255
        images.append(tf.io.encode_jpeg(pixels.astype("uint8"), quality=90).numpy())
    return images
