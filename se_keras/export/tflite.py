"""TFLite (LiteRT) export of small models, float or with dynamic-range int8 weights.

The TFLite model takes what the `preprocessed` serving signature takes:
float32 pixels of shape (batch, size, size, 3) that went through
`se_keras.data.preprocessing.preprocess_image` with the model's record
(raw [0, 255] pixels for a model that normalizes itself), and returns the model's
probabilities. Decoding and resizing stay with the app (mobile platforms
have their own image decoders). The preprocessing to apply is written
beside the model as `<name>.preprocessing.json`.

Quantization: `quantize="dynamic"` stores weights as int8 (about 4x
smaller) and computes in float; outputs move by about 1e-4 to 1e-2.
"""

import os
import pathlib

QUANTIZATIONS = (None, "dynamic")
# Float TFLite against Keras on the same pixels: rounding noise only.
VERIFY_ATOL = 1e-4


def _check(tflite_path, model, preprocessing):
    """Max |TFLite - Keras| output on the warm-up images."""
    import numpy as np
    import tensorflow as tf

    from se_keras.export.signatures import preprocess_images
    from se_keras.export.warmup import default_warmup_images

    pixels = preprocess_images(default_warmup_images(preprocessing.size), preprocessing)
    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inputs["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], pixels.astype("float32"))
    interpreter.invoke()
    served = interpreter.get_tensor(outputs["index"])
    expected = np.asarray(model(pixels, training=False), "float32")
    return float(np.max(np.abs(served - expected)))


def export_tflite(model, path, *, quantize=None, preprocessing=None, keep_dtype=False,
                  optimize=True):
    """Writes a `.tflite` file (and its preprocessing JSON) for a Keras classifier.

    Args:
        model: a single-input Keras image classifier.
        path: the output file; must end in `.tflite`.
        quantize: None (float32) or "dynamic" (int8 weights).
        preprocessing: overrides of "size", "crop_pct", "mean", "std",
            "interpolation" (see `se_keras.export.resolve_preprocessing`).
        keep_dtype: export a mixed precision model as it is instead of a
            float32 copy.
        optimize: convert `optimize_for_inference(model)` (BatchNorm folded,
            SE squeezed before projections) instead of the model's own graph.

    Returns:
        The `.tflite` path, a `pathlib.Path`.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> export_tflite(SEResNet20(), "/tmp/se_resnet20.tflite")  # doctest: +SKIP
    PosixPath('/tmp/se_resnet20.tflite')
    """
    import tensorflow as tf

    from se_keras._files import atomic_path
    from se_keras._files import write_json_atomically
    from se_keras._validation import require_tensorflow_backend
    from se_keras.export.precision import float32_model
    from se_keras.export.signatures import resolve_preprocessing

    require_tensorflow_backend("The TFLite export")
    path = pathlib.Path(path)
    if path.suffix != ".tflite":
        raise ValueError(f"The output file name must end in .tflite. Received: path={str(path)!r}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"`quantize` must be None or 'dynamic'. Received: quantize={quantize!r}"
        )
    preprocessing = resolve_preprocessing(model, preprocessing)
    reference = model if keep_dtype else float32_model(model)
    served = reference
    if optimize:
        from se_keras.export.optimize import optimize_for_inference

        served = optimize_for_inference(reference)
    size = preprocessing.size
    kwargs = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize == "dynamic" else {}
    with atomic_path(path, suffix=".tflite") as tmp:
        served.export(
            str(tmp),
            format="litert",
            input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)],
            verbose=False,
            **kwargs,
        )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from other users
        # Checked before it gets its name: the interpreter's answer on the
        # warm-up images against the model as given (float exports must agree
        # to float rounding; int8 weights move outputs, which is recorded).
        difference = _check(tmp, reference, preprocessing)
        if quantize is None and not difference <= VERIFY_ATOL:
            raise ValueError(
                f"The TFLite model's outputs differ from the Keras model's by {difference:.3g} "
                f"(> {VERIFY_ATOL}); it was not written. Received: path={str(path)!r}"
            )
    pixels = ("raw RGB in [0, 255] (the model normalizes)" if preprocessing.normalize_in_model
              else "normalized RGB")
    write_json_atomically(
        path.with_name(f"{path.stem}.preprocessing.json"),
        {"input": f"float32 [batch, {size}, {size}, 3]: preprocess_image output, {pixels}",
         "output": "the Keras model's output (probabilities with a softmax head)",
         "quantize": quantize, "optimized": bool(optimize),
         "max_abs_difference_from_keras": difference,
         "preprocessing": preprocessing.to_dict()},
    )
    return path
