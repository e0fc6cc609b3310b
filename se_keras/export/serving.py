"""Versioned SavedModels for TensorFlow Serving that take encoded images.

`export_for_serving` ties the pieces together: the signatures
(`se_keras.export.signatures`: keys, shapes, the preprocessing in the
graph), the version folders (`se_keras.export.versions`: layout, atomic
publish), the float32 copy of a mixed precision model
(`se_keras.export.precision`) and the warm-up file
(`se_keras.export.warmup`). Before a version is renamed into place, the
export loads it and checks that `serving_default` on the warm-up images
equals `model(preprocess_image(decode_image(bytes), record))`.

The names of those modules that were first defined here stay importable
from here.
"""

import numpy as np

from se_keras._files import write_json_atomically
from se_keras.export import warmup
from se_keras.export.precision import _is_low_precision
from se_keras.export.precision import float32_model
from se_keras.export.signatures import IMAGES_INPUT
from se_keras.export.signatures import PIXELS_INPUT  # noqa: F401 - importable from here
from se_keras.export.signatures import PIXELS_SIGNATURE
from se_keras.export.signatures import PROBABILITIES
from se_keras.export.signatures import SERVING_SIGNATURE
from se_keras.export.signatures import TOP_K_CLASSES  # noqa: F401 - importable from here
from se_keras.export.signatures import TOP_K_LABELS  # noqa: F401 - importable from here
from se_keras.export.signatures import TOP_K_PROBABILITIES  # noqa: F401 - importable from here
from se_keras.export.signatures import _describe_signatures
from se_keras.export.signatures import _num_classes
from se_keras.export.signatures import _output_is_logits
from se_keras.export.signatures import _serving_functions
from se_keras.export.signatures import preprocess_images
from se_keras.export.signatures import resolve_labels
from se_keras.export.signatures import resolve_preprocessing
from se_keras.export.versions import METADATA_FILE
from se_keras.export.versions import latest_version_dir  # noqa: F401 - importable from here
from se_keras.export.versions import new_version_dir
from se_keras.export.versions import next_version  # noqa: F401 - importable from here
from se_keras.export.versions import publishing
from se_keras.export.versions import read_metadata  # noqa: F401 - importable from here
from se_keras.export.warmup import default_warmup_images

# The largest difference between the served and the Keras probabilities
# that the export accepts: both run the same float32 kernels on the same
# pixels, so anything above rounding noise is a bug.
VERIFY_ATOL = 1e-5
VERIFY_ATOL_FLOAT16 = 1e-2


def _verify(export_dir, model, images, preprocessing, logits, atol):
    """Max |served - Keras| probability on `images`; raises above `atol`."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    served = loaded.signatures[SERVING_SIGNATURE](
        **{IMAGES_INPUT: tf.constant(images, tf.string)}
    )[PROBABILITIES].numpy()
    pixels = tf.constant(preprocess_images(images, preprocessing))
    expected = np.asarray(model(pixels, training=False), "float32")
    if logits:
        expected = tf.nn.softmax(expected, axis=-1).numpy()
    difference = float(np.max(np.abs(served - expected)))
    if not difference <= atol:
        raise ValueError(
            f"The exported model's probabilities differ from the Keras model's by "
            f"{difference:.3g} (> {atol}); the export was not written. "
            f"Received: export_dir={str(export_dir)!r}"
        )
    return difference


def export_for_serving(
    model,
    export_base,
    version=None,
    *,
    preprocessing=None,
    labels=None,
    top_k=5,
    output="auto",
    keep_dtype=False,
    warmup_images=None,
    verify=True,
    overwrite=False,
    verbose=True,
    optimize=True,
):
    """Writes `export_base/<version>/`, a SavedModel for TensorFlow Serving.

    `serving_default` takes a batch of encoded images (`tf.string`: what TF
    Serving's REST API passes for `{"b64": ...}`) and runs decoding and
    the eval preprocessing in the graph; `preprocessed` takes float32
    pixels already preprocessed. Both return `probabilities`,
    `top_k_classes`, `top_k_probabilities` and, with labels,
    `top_k_labels` (see `se_keras.export.signatures` for shapes and dtypes,
    `se_keras.export.versions` for the folder layout).

    Args:
        model: a single-input, single-output Keras image classifier; its
            preprocessing record (`se_keras.get_preprocessing`) is served.
        export_base: the model's folder; TF Serving's `--model_base_path`.
        version: integer version; defaults to the next one in `export_base`.
        preprocessing: fields of the record to override (a dict or a
            `Preprocessing`; see `resolve_preprocessing`), or the whole
            record for a model that carries none.
        labels: class names for `top_k_labels`; None gives ImageNet's
            names to 1000-class models and no labels to others; False none.
        top_k: how many classes the top-k outputs hold (at most all).
        output: "auto" (softmax is added when the last layer is linear),
            "probabilities" or "logits": what the model returns.
        optimize: serve `optimize_for_inference(model)` (BatchNorm folded
            into convolutions, SE squeezed before projections; the same
            function, faster); False serves the model's own graph. The
            check compares with the model as given either way.
        keep_dtype: export a mixed precision model as it is (float16
            compute) instead of as a float32 copy.
        warmup_images: encoded images for the warm-up file and the check;
            defaults to two synthetic JPEGs. An empty list writes no warm-up
            file and skips the check.
        verify: load the written SavedModel and check that its
            probabilities equal the Keras model's within 1e-5 on the
            warm-up images, before the version is renamed into place.
        overwrite: replace an existing version folder.
        verbose: print what was written.

    Returns:
        The version folder, a `pathlib.Path`.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> model = SEResNet20(classes=10)
    >>> path = export_for_serving(model, "/tmp/models/se_resnet20",  # doctest: +SKIP
    ...                           labels=[str(i) for i in range(10)])
    """
    import keras

    from se_keras._validation import require_tensorflow_backend
    from se_keras.version import __version__

    require_tensorflow_backend("The SavedModel export")

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k!r}")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(
            f"`version` must be a positive integer (TF Serving's version folders). "
            f"Received: version={version!r}"
        )
    num_classes = _num_classes(model)
    policies = sorted({layer.dtype_policy.name for layer in model.layers})
    reference = model if keep_dtype else float32_model(model)
    served = reference
    optimization = None
    if optimize:
        from se_keras.export.optimize import optimize_for_inference

        served, optimization = optimize_for_inference(reference, return_report=True)
    preprocessing = resolve_preprocessing(model, preprocessing)
    labels = resolve_labels(labels, num_classes)
    logits = _output_is_logits(model, output)
    top_k = min(top_k, num_classes)
    if warmup_images is None:
        warmup_images = default_warmup_images(preprocessing.size)
    warmup_images = [bytes(b) for b in warmup_images]

    final = new_version_dir(export_base, version, overwrite)
    with publishing(final, overwrite) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(served)
        for name, fn, spec in _serving_functions(served, preprocessing, labels, top_k, logits):
            archive.add_endpoint(name, fn, input_signature=[spec])
        # write_out wants a folder that does not exist yet.
        saved_model_dir = tmp / "saved_model"
        archive.write_out(str(saved_model_dir), verbose=False)
        for child in saved_model_dir.iterdir():
            child.rename(tmp / child.name)
        saved_model_dir.rmdir()
        requests = [
            warmup.predict_request({IMAGES_INPUT: np.array([image], dtype=object)},
                                   signature_name=SERVING_SIGNATURE)
            for image in warmup_images
        ]
        if requests:
            warmup.write_warmup_file(tmp, requests)
        difference = None
        if verify and warmup_images:
            # float16 graphs may fuse and round differently from eager float16.
            atol = VERIFY_ATOL if not _is_low_precision(served) else VERIFY_ATOL_FLOAT16
            difference = _verify(tmp, reference, warmup_images, preprocessing, logits, atol)
        metadata = {
            "format": 1,
            "se_keras_version": __version__,
            "model": model.name,
            "num_classes": num_classes,
            "served_dtype_policies": sorted({l.dtype_policy.name for l in served.layers}),
            "source_dtype_policies": policies,
            "preprocessing": preprocessing.to_dict(),
            "output": "logits (softmax added)" if logits else "probabilities",
            "top_k": top_k,
            "has_labels": labels is not None,
            "signatures": _describe_signatures(preprocessing, num_classes, top_k, labels),
            "verified_max_abs_difference": difference,
            "optimized": optimization.summary() if optimization is not None else None,
        }
        write_json_atomically(tmp / warmup.WARMUP_DIR / METADATA_FILE, metadata)
    if verbose:
        print(
            f"wrote {final} (signatures {SERVING_SIGNATURE}, {PIXELS_SIGNATURE}; "
            f"size {preprocessing.size}, {num_classes} classes"
            + (f", max |served - keras| = {difference:.2g}" if difference is not None else "")
            + ")"
        )
    return final
