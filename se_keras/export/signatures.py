"""The serving signatures: their keys, what they compute, and what they are built from.

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
`model(preprocess_image(decode_image(bytes), record))`. A model that
normalizes itself (`normalize_in_model`) gets the crop's raw [0, 255]
pixels on both signatures, never normalized twice.
"""

SERVING_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "preprocessed"
IMAGES_INPUT = "images"
PIXELS_INPUT = "pixels"
PROBABILITIES = "probabilities"
TOP_K_CLASSES = "top_k_classes"
TOP_K_PROBABILITIES = "top_k_probabilities"
TOP_K_LABELS = "top_k_labels"


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
        from se_keras._imagenet_classes import imagenet_class_names

        return imagenet_class_names()
    labels = [str(label) for label in labels]
    if len(labels) != num_classes:
        raise ValueError(
            f"`labels` needs one name per class ({num_classes}). "
            f"Received: len(labels)={len(labels)}"
        )
    return labels


def preprocess_images(images, preprocessing):
    """Keras-side reference: encoded images -> the float32 batch that the model sees.

    Exactly the ops that `serving_default` runs in its graph, run eagerly.

    Example:
    >>> from se_keras.export.warmup import default_warmup_images
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


def _describe_signatures(preprocessing, num_classes, top_k, labels):
    """The signatures' keys, dtypes and shapes, as the export's metadata records them."""
    return {
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
    }
