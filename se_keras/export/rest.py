"""TF Serving's REST predict API, reproduced in Python for tests and `serve-check`.

`POST /v1/models/<name>[/versions/<v>]:predict` takes a JSON body in one of
two formats (TF Serving's `json_tensor.cc`):

- row ("instances"): a list with one entry per example; with a single
  input the entry is the value itself (for an image, `{"b64": "..."}`), or
  an object keyed by input name;
- columnar ("inputs"): the whole batch per input, as a value (single
  input) or an object keyed by input name.

`{"b64": "..."}` is base64 for a `DT_STRING` input: the server hands the
decoded bytes to the model. The answer is `{"predictions": [...]}` (row; one
object per example keyed by output name, or the bare value when there is
one output) or `{"outputs": ...}` (columnar). String outputs come back as
JSON strings, except outputs whose name ends in `_bytes`, which come back as
`{"b64": ...}`.

Example:
>>> body = {"instances": [{"b64": base64_image(jpeg_bytes)}]}  # doctest: +SKIP
>>> predict(signature, body)["predictions"][0]["top_k_labels"]  # doctest: +SKIP
['tabby', 'tiger cat', 'Egyptian cat', 'lynx', 'Persian cat']
"""

import base64

import numpy as np


def base64_image(image_bytes):
    """Standard base64 of encoded image bytes, as TF Serving expects in `{"b64": ...}`."""
    return base64.b64encode(image_bytes).decode("ascii")


def _signature_specs(signature):
    return dict(signature.structured_input_signature[1])


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"}


def _decode_value(value, dtype, name):
    """JSON value (nested lists, numbers, strings, b64 objects) -> ndarray of `dtype`."""
    if _is_b64(value):
        if dtype != "string":
            raise ValueError(
                f"A {{'b64': ...}} value is only allowed for a string input; input "
                f"{name!r} is {dtype}. Received: value={str(value)[:60]!r}"
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"Input {name!r} holds invalid base64 ({error}). "
                f"Received: b64={str(value['b64'])[:60]!r}"
            ) from None
    if isinstance(value, list):
        return [_decode_value(v, dtype, name) for v in value]
    if isinstance(value, str):
        if dtype != "string":
            raise ValueError(
                f"Input {name!r} is {dtype}, not a string. Received: value={value[:60]!r}"
            )
        return value.encode("utf-8")
    if isinstance(value, dict):
        raise ValueError(
            f"Only {{'b64': ...}} objects may appear inside a value of input {name!r}. "
            f"Received: value={str(value)[:60]!r}"
        )
    if dtype == "string":
        raise ValueError(
            f"Input {name!r} is a string input, not a number; send images as "
            f"{{'b64': ...}}. Received: value={value!r}"
        )
    return value


def _to_array(values, spec, name):
    dtype = spec.dtype.name
    array = np.array(values, dtype=object if dtype == "string" else dtype)
    if dtype != "string" and array.dtype == object:
        raise ValueError(
            f"The examples of input {name!r} have different shapes. "
            f"Received: {name}={str(values)[:60]}"
        )
    if not spec.shape.is_compatible_with(array.shape):
        raise ValueError(
            f"Input {name!r} must have shape {spec.shape}. Received: shape={array.shape}"
        )
    return array


def request_to_inputs(body, signature):
    """Turns a REST predict body into the signature's input arrays, as TF Serving does.

    Args:
        body: the parsed JSON body (a dict) or its text.
        signature: a signature of a loaded SavedModel
            (`tf.saved_model.load(path).signatures[name]`).

    Returns:
        `(inputs, row_format)`: dict of input name -> NumPy array (`object`
        arrays of bytes for string inputs) and whether the body used the row
        ("instances") format.

    Raises:
        ValueError: for a body TF Serving would answer with HTTP 400.

    Example:
    >>> inputs, _ = request_to_inputs(  # doctest: +SKIP
    ...     {"instances": [{"b64": "..."}]}, loaded.signatures["serving_default"])
    """
    import json

    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    specs = _signature_specs(signature)
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ValueError(
            "The request body must be a JSON object with exactly one of 'instances' "
            f"(row format) or 'inputs' (columnar format). Received: body={str(body)[:80]}"
        )
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError(
                f"'instances' must be a non-empty list. Received: instances={str(instances)[:80]}"
            )
        named = all(isinstance(i, dict) and not _is_b64(i) for i in instances)
        if not named and len(specs) != 1:
            raise ValueError(
                f"With several inputs ({', '.join(specs)}) every instance must be an object "
                f"keyed by input name. Received: instances={str(instances)[:80]}"
            )
        if named:
            for instance in instances:
                if set(instance) != set(specs):
                    raise ValueError(
                        f"Every instance must name exactly the inputs {sorted(specs)}. "
                        f"Received: keys={sorted(instance)}"
                    )
            columns = {n: [i[n] for i in instances] for n in specs}
        else:
            columns = {next(iter(specs)): instances}
        row_format = True
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and not _is_b64(inputs):
            if set(inputs) != set(specs):
                raise ValueError(
                    f"'inputs' must name exactly the inputs {sorted(specs)}. "
                    f"Received: keys={sorted(inputs)}"
                )
            columns = inputs
        elif len(specs) == 1:
            columns = {next(iter(specs)): inputs}
        else:
            raise ValueError(
                f"With several inputs ({', '.join(specs)}) 'inputs' must be an object keyed "
                f"by input name. Received: inputs={str(inputs)[:80]}"
            )
        row_format = False
    arrays = {}
    for name, spec in specs.items():
        values = _decode_value(columns[name], spec.dtype.name, name)
        arrays[name] = _to_array(values, spec, name)
    return arrays, row_format


def _json_value(name, array):
    if array.dtype == object or array.dtype.kind in "SU":
        if name.endswith("_bytes"):
            encode = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            encode = lambda b: b.decode("utf-8") if isinstance(b, bytes) else str(b)  # noqa: E731
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else []
    return array.tolist()


def outputs_to_response(outputs, row_format=True):
    """Formats the signature's outputs as TF Serving's JSON answer (a dict).

    Example:
    >>> outputs_to_response({"top_k_classes": np.array([[3, 1]])})
    {'predictions': [[3, 1]]}
    """
    outputs = {name: np.asarray(value) for name, value in outputs.items()}
    if not row_format:
        columns = {name: _json_value(name, value) for name, value in outputs.items()}
        return {"outputs": columns if len(columns) > 1 else next(iter(columns.values()))}
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        shapes = {k: v.shape for k, v in outputs.items()}
        raise ValueError(
            "The row format needs every output to have the same batch size; use the "
            f"columnar format ('inputs'). Received: shapes={shapes}"
        )
    rows = []
    for i in range(sizes.pop()):
        row = {name: _json_value(name, value[i]) for name, value in outputs.items()}
        rows.append(row if len(row) > 1 else next(iter(row.values())))
    return {"predictions": rows}


def predict(signature, body):
    """Answers a REST predict body with a loaded signature, like TF Serving.

    Args:
        signature: `tf.saved_model.load(path).signatures[name]`.
        body: the JSON body, parsed or as text.

    Returns:
        The JSON answer as a dict.

    Raises:
        ValueError: for a malformed body (TF Serving: HTTP 400).
        tf.errors.InvalidArgumentError: for inputs the graph rejects, such
            as bytes that are not an image (TF Serving: HTTP 400 with the
            same message).

    Example:
    >>> loaded = tf.saved_model.load("models/se_resnet50/1")  # doctest: +SKIP
    >>> predict(loaded.signatures["serving_default"],  # doctest: +SKIP
    ...         {"instances": [{"b64": base64_image(jpeg)}]})
    """
    import tensorflow as tf

    arrays, row_format = request_to_inputs(body, signature)
    specs = _signature_specs(signature)
    tensors = {n: tf.constant(a, dtype=specs[n].dtype) for n, a in arrays.items()}
    outputs = signature(**tensors)
    return outputs_to_response({n: t.numpy() for n, t in outputs.items()}, row_format)
