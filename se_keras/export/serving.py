"""Versioned SavedModels for TensorFlow Serving that take encoded images.

Layout (what TF Serving's file system source watches: one folder per model,
one integer-named subfolder per version, the highest one served):

    BASE/
      1/
        saved_model.pb
        variables/
        assets.extra/
          tf_serving_warmup_requests   warm-up requests, replayed at load
          se_keras_export.json         how the export was made (preprocessing, keys)

A version is written under a hidden temporary name in BASE (which TF
Serving ignores: it only loads integer names) and renamed when complete.

Signatures (stable keys; the REST API returns the output keys as written):

    serving_default   inputs:  images       string  [batch]  JPEG/PNG/GIF/BMP/WebP bytes,
                                                             any size (REST: {"b64": ...})
    preprocessed      inputs:  pixels       float32 [batch, size, size, 3]
                                                             `preprocess_image` output
                                                             (other sizes are refused)
    both              outputs: probabilities        float32 [batch, classes]
                               top_k_classes        int32   [batch, k]  best first
                               top_k_probabilities  float32 [batch, k]
                               top_k_labels         string  [batch, k]  (with labels only)

`serving_default` runs `se_keras.data.preprocessing.decode_image` and
`preprocess_image` with the model's own preprocessing record
(`se_keras.get_preprocessing`) in the graph, so a served prediction equals
`model(preprocess_image(decode_image(bytes), record))`; the export checks
this on its warm-up images before the version is renamed into place. A
model that normalizes itself (`normalize_in_model`) gets the crop's raw
[0, 255] pixels on both signatures, never normalized twice.
"""

import json
import os
import pathlib
import shutil
import tempfile
import warnings

import numpy as np

SERVING_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "preprocessed"
IMAGES_INPUT = "images"
PIXELS_INPUT = "pixels"
PROBABILITIES = "probabilities"
TOP_K_CLASSES = "top_k_classes"
TOP_K_PROBABILITIES = "top_k_probabilities"
TOP_K_LABELS = "top_k_labels"
METADATA_FILE = "se_keras_export.json"
# The largest difference between the served and the Keras probabilities
# that the export accepts: both run the same float32 kernels on the same
# pixels, so anything above rounding noise is a bug.
VERIFY_ATOL = 1e-5
VERIFY_ATOL_FLOAT16 = 1e-2
_LOW_PRECISION = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def _input_spatial_size(model):
    if len(model.inputs) != 1:
        raise ValueError(
            "Only single-input image classifiers can be exported for serving. "
            f"Received: model.inputs={model.inputs}"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(
            "The model must take channels_last RGB images, shape (batch, height, width, 3). "
            f"Received: input shape={shape}"
        )
    height, width = shape[1], shape[2]
    if height is not None and height != width:
        raise ValueError(
            "The eval preprocessing makes square crops; the model's input must be square. "
            f"Received: input shape={shape}"
        )
    return height


def _num_classes(model):
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "The model must end in a classifier with one output of shape (batch, classes); "
            "build it with include_top=True. "
            f"Received: output shapes={[tuple(o.shape) for o in model.outputs]}"
        )
    return model.outputs[0].shape[-1]


def resolve_preprocessing(model, preprocessing=None):
    """The `se_keras.Preprocessing` record an export serves with: the model's, then overrides.

    The model's own record (`se_keras.get_preprocessing`) is the default; a
    model without one (built by other code) needs `preprocessing` with at
    least the values that differ from the defaults, as there is no way to
    know how it was trained. Overrides cannot change what the graph does:
    `normalize_in_model`, and mean and std of a model that normalizes
    itself, are refused.

    Args:
        model: the Keras model.
        preprocessing: None, a `Preprocessing` or a dict of its fields
            (a training run's config["preprocessing"] fits).

    Returns:
        A `Preprocessing`.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> resolve_preprocessing(SEResNet20(), {"interpolation": "bicubic"}).size
    32
    """
    from se_keras.preprocessing import Preprocessing
    from se_keras.preprocessing import check_size
    from se_keras.preprocessing import get_preprocessing
    from se_keras.preprocessing import overrides_of

    overrides = overrides_of(preprocessing)
    model_size = _input_spatial_size(model)
    try:
        record = get_preprocessing(model)
    except ValueError:
        if not overrides:
            raise
        # No record and the caller says how to feed it: defaults + overrides.
        record = Preprocessing(size=model_size or overrides.get("size") or 224)
    for key in ("normalize_in_model", "mean", "std"):
        if key in overrides and record.normalize_in_model and (
            Preprocessing.from_dict({**record.to_dict(), key: overrides[key]}) != record
        ):
            raise ValueError(
                "The model normalizes inside its graph with its own record's mean and std; "
                f"an export cannot change `{key}`. Build the model again instead. "
                f"Received: {key}={overrides[key]!r}"
            )
    if overrides.get("normalize_in_model") and not record.normalize_in_model:
        raise ValueError(
            "The model does not normalize inside its graph; `normalize_in_model` cannot be "
            f"switched on by an export. Received: normalize_in_model={overrides['normalize_in_model']!r}"
        )
    record = record.replace(**overrides)
    check_size(record, model_size)
    return record


def _float32_config(config):
    """A copy of a Keras config with every low-precision dtype policy set to float32."""
    if isinstance(config, list):
        return [_float32_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        name = config.get("config", {}).get("name")
        if name in _LOW_PRECISION:
            return {**config, "config": {**config["config"], "name": "float32"}}
        return config
    return {
        k: ("float32" if k == "dtype" and v in _LOW_PRECISION else _float32_config(v))
        for k, v in config.items()
    }


def _is_low_precision(model):
    return any(
        layer.dtype_policy.name in _LOW_PRECISION or layer.compute_dtype != "float32"
        for layer in model.layers
        if layer.__class__.__name__ != "InputLayer"
    )


def float32_model(model):
    """The model itself if it computes in float32, else a float32 clone with its weights.

    A model trained under a mixed precision policy keeps float16 (or
    bfloat16) compute in its config; CPU serving is slow and less robust in
    float16, so the clone is rebuilt from the config with every dtype
    policy set to float32, and the weights are copied (cast) one by one.

    Example:
    >>> import keras
    >>> from se_keras.applications import SEResNet20
    >>> keras.config.set_dtype_policy("mixed_float16")
    >>> mixed = SEResNet20()
    >>> keras.config.set_dtype_policy("float32")
    >>> float32_model(mixed).layers[1].compute_dtype
    'float32'
    """
    import keras

    if not _is_low_precision(model):
        return model
    config = _float32_config(model.get_config())
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = type(model).from_config(config)
    except Exception as error:
        raise ValueError(
            "Could not rebuild a float32 copy of the model from its config "
            f"({error}); pass keep_dtype=True to export it as it is. "
            f"Received: model={model.name!r}"
        ) from error
    finally:
        keras.config.set_dtype_policy(previous)
    if [tuple(w.shape) for w in clone.weights] != [tuple(w.shape) for w in model.weights]:
        raise ValueError(
            "The float32 copy of the model has different weights than the model. "
            f"Received: model={model.name!r}"
        )
    for target, source in zip(clone.weights, model.weights):
        target.assign(np.asarray(keras.ops.convert_to_numpy(source), dtype=target.dtype))
    return clone


def _output_is_logits(model, output):
    if output not in ("auto", "probabilities", "logits"):
        raise ValueError(
            "`output` must be 'auto', 'probabilities' or 'logits'. "
            f"Received: output={output!r}"
        )
    if output != "auto":
        return output == "logits"
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if activation is None:
        # A (batch, features) output from pooling is not class scores.
        raise ValueError(
            "The model must end in a classifier (a layer with an activation, as "
            "include_top=True builds); pass output='probabilities' or 'logits' to "
            f"export it anyway. Received: last layer={last.name!r} "
            f"({last.__class__.__name__})"
        )
    # classifier_activation=None leaves a linear head: serve its softmax.
    return getattr(activation, "__name__", None) == "linear"


def resolve_labels(labels, num_classes):
    """Class names for `top_k_labels`: a list, or None for no label output.

    `labels=None` means ImageNet's names for a 1000-class model and no
    labels otherwise; `labels=False` turns them off.

    Example:
    >>> resolve_labels(["cat", "dog"], 2)
    ['cat', 'dog']
    """
    if labels is False:
        return None
    if labels is None:
        if num_classes != 1000:
            return None
        from se_keras.applications import imagenet_class_names

        return imagenet_class_names()
    labels = [str(label) for label in labels]
    if len(labels) != num_classes:
        raise ValueError(
            f"`labels` needs one name per class ({num_classes}). "
            f"Received: len(labels)={len(labels)}"
        )
    return labels


def next_version(export_base):
    """The version number after the highest integer-named folder in `export_base` (1 if none).

    Example:
    >>> next_version("/nonexistent/models/se_resnet50")
    1
    """
    base = pathlib.Path(export_base)
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if (
        base.is_dir()) else []
    return max(versions, default=0) + 1


def latest_version_dir(export_base):
    """The folder TF Serving's default policy serves: the highest integer-named version.

    `export_base` may also be a version folder itself (one holding
    saved_model.pb).

    Example:
    >>> latest_version_dir("models/se_resnet50")  # doctest: +SKIP
    PosixPath('models/se_resnet50/3')
    """
    base = pathlib.Path(export_base)
    if (base / "saved_model.pb").exists():
        return base
    if not base.is_dir():
        raise ValueError(f"No such export folder. Received: export_base={str(export_base)!r}")
    versions = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise ValueError(
            "No integer-named version folder in the export base. "
            f"Received: export_base={str(export_base)!r}"
        )
    return max(versions, key=lambda p: int(p.name))


def default_warmup_images(size):
    """Two JPEGs for the warm-up file: one at the model's size, one larger and not square.

    Example:
    >>> len(default_warmup_images(32))
    2
    """
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


def preprocess_images(images, preprocessing):
    """Keras-side reference: encoded images -> the float32 batch that the model sees.

    Exactly the ops that `serving_default` runs in its graph, run eagerly.

    Example:
    >>> from se_keras.preprocessing import Preprocessing
    >>> batch = preprocess_images(default_warmup_images(32), Preprocessing(size=32))
    >>> batch.shape
    (2, 32, 32, 3)
    """
    import tensorflow as tf

    from se_keras.data.preprocessing import decode_image
    from se_keras.data.preprocessing import preprocess_image

    return tf.stack(
        [preprocess_image(decode_image(tf.constant(b)), preprocessing) for b in images]
    ).numpy()


def _serving_functions(model, preprocessing, labels, top_k, logits):
    import tensorflow as tf

    from se_keras.data.preprocessing import decode_image
    from se_keras.data.preprocessing import preprocess_image

    size = preprocessing.size
    pixel_spec = tf.TensorSpec((size, size, 3), tf.float32)

    def predict(pixels):
        scores = tf.cast(model(pixels, training=False), tf.float32)
        if logits:
            scores = tf.nn.softmax(scores, axis=-1)
        top_probabilities, top_classes = tf.math.top_k(scores, k=top_k)
        outputs = {
            PROBABILITIES: scores,
            TOP_K_CLASSES: top_classes,
            TOP_K_PROBABILITIES: top_probabilities,
        }
        if labels is not None:
            outputs[TOP_K_LABELS] = tf.gather(tf.constant(labels, tf.string), top_classes)
        return outputs

    pixels_spec = tf.TensorSpec([None, size, size, 3], tf.float32, name=PIXELS_INPUT)
    # Traced once with a fixed signature and called by both signatures, so
    # that exporting traces the model once instead of once per signature
    # and again while saving.
    predict = tf.function(predict, input_signature=[pixels_spec], autograph=False)

    def preprocess_one(image_bytes):
        return preprocess_image(decode_image(image_bytes), preprocessing)

    def serve_images(images):
        pixels = tf.map_fn(preprocess_one, images, fn_output_signature=pixel_spec)
        return predict(pixels)

    def serve_pixels(pixels):
        # A SavedModel signature does not enforce its declared shape: pixels
        # of another size would reach the model, whose graph was traced for
        # this one. Refuse them with a message a REST client can read.
        tf.debugging.assert_equal(
            tf.shape(pixels)[1:], tf.constant([size, size, 3]),
            message=f"`pixels` must have shape [batch, {size}, {size}, 3] (the output of "
                    "the model's eval preprocessing); received another shape",
        )
        return predict(pixels)

    return (
        (SERVING_SIGNATURE, serve_images, tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)),
        (PIXELS_SIGNATURE, serve_pixels, pixels_spec),
    )


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


def _write_json(path, data):
    from se_keras._files import write_json_atomically

    write_json_atomically(path, data)


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
    `top_k_labels` (see the module docstring for shapes and dtypes).

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
    from se_keras.export import warmup
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

    base = pathlib.Path(export_base)
    base.mkdir(parents=True, exist_ok=True)
    version = version or next_version(base)
    final = base / str(version)
    if final.exists() and not overwrite:
        raise ValueError(
            f"Version {version} already exists in {base}; pass overwrite=True or another "
            f"version. Received: version={version}"
        )
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=base))
    try:
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
            "signatures": {
                SERVING_SIGNATURE: {"inputs": {IMAGES_INPUT: "string [batch]"}},
                PIXELS_SIGNATURE: {
                    "inputs": {PIXELS_INPUT: f"float32 [batch, {preprocessing.size}, "
                                             f"{preprocessing.size}, 3], "
                                             + ("raw RGB in [0, 255] (the model normalizes)"
                                                if preprocessing.normalize_in_model
                                                else "normalized RGB")}
                },
                "outputs": {
                    PROBABILITIES: f"float32 [batch, {num_classes}]",
                    TOP_K_CLASSES: f"int32 [batch, {top_k}]",
                    TOP_K_PROBABILITIES: f"float32 [batch, {top_k}]",
                    **({TOP_K_LABELS: f"string [batch, {top_k}]"} if labels else {}),
                },
            },
            "verified_max_abs_difference": difference,
            "optimized": optimization.summary() if optimization is not None else None,
        }
        _write_json(tmp / warmup.WARMUP_DIR / METADATA_FILE, metadata)
        _make_readable(tmp)
        _move_into_place(tmp, final, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(
            f"wrote {final} (signatures {SERVING_SIGNATURE}, {PIXELS_SIGNATURE}; "
            f"size {preprocessing.size}, {num_classes} classes"
            + (f", max |served - keras| = {difference:.2g}" if difference is not None else "")
            + ")"
        )
    return final


def _make_readable(folder):
    # mkdtemp and mkstemp create owner-only folders and files; a TF Serving
    # container often runs as another user than the one who exported.
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def _move_into_place(tmp, final, overwrite):
    if final.exists() and overwrite:
        # Rename the old version away first so that the folder TF Serving
        # sees is always complete.
        trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rename(final, trash / final.name)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)
    except OSError as error:
        raise ValueError(
            f"Could not move the export into place ({error}); did another export write "
            f"this version at the same time? Received: version={final.name}"
        ) from error


def read_metadata(version_dir):
    """The `se_keras_export.json` of an export (an empty dict for other SavedModels).

    Example:
    >>> read_metadata("models/se_resnet50/1")["preprocessing"]["size"]  # doctest: +SKIP
    224
    """
    from se_keras.export.warmup import WARMUP_DIR

    path = pathlib.Path(version_dir) / WARMUP_DIR / METADATA_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
