"""Image decoding and evaluation preprocessing, shared by evaluation, prediction and serving.

Model Garden's split: `decode_image` turns encoded bytes into pixels;
`eval_preprocess` turns pixels into the model's input. The exported
SavedModel's `serving_default` signature calls exactly these functions in
its graph, so a served prediction equals `model(eval_preprocess(...))`.

The eval transform is timm's: resize the short side to
`floor(size / crop_pct)`, center-crop `size` x `size`, scale to [0, 1],
normalize by the checkpoint's mean and std.
"""

import math

import tensorflow as tf

from se_keras._constants import IMAGENET_MEAN
from se_keras._constants import IMAGENET_STD
from se_keras._constants import INTERPOLATIONS
from se_keras.data.pil_resize import pil_resize
from se_keras.preprocessing import Preprocessing
from se_keras.preprocessing import normalization_constants
from se_keras.preprocessing import normalize_pixels


def decode_image(image_bytes):
    """Decodes JPEG, PNG, GIF (first frame) or BMP bytes to uint8 RGB, shape (H, W, 3).

    Grayscale images are repeated to three channels; an alpha channel is
    dropped.

    Args:
        image_bytes: a scalar `tf.string` tensor.

    Returns:
        A `uint8` tensor of shape (height, width, 3).

    Raises:
        tf.errors.InvalidArgumentError: at run time, for bytes that are not
            a decodable image.

    Example:
    >>> pixels = decode_image(tf.io.encode_png(tf.zeros((4, 5, 3), tf.uint8)))
    >>> tuple(pixels.shape)
    (4, 5, 3)
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    # decode_image decodes JPEG with libjpeg's fast integer IDCT, which is
    # up to 16 levels off the exact IDCT that PIL (hence timm's published
    # accuracies) uses; INTEGER_ACCURATE matches PIL bit for bit.
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return image


def resize_size(size, crop_pct):
    """The short-side size before the center crop: `floor(size / crop_pct)` (timm)."""
    return int(math.floor(size / crop_pct))


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 or [0, 255] float pixels (channels last) -> float32 `(x / 255 - mean) / std`."""
    mean, std = normalization_constants(mean, std)
    return normalize_pixels(tf.cast(image, tf.float32), mean, std)


# `eval_preprocess` has an argument of the same name.
_normalize = normalize


def eval_preprocess(
    image,
    size=224,
    crop_pct=0.875,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    interpolation="bilinear",
    normalize=True,
):
    """Evaluation preprocessing of one image: timm's eval transform, bit for bit.

    torchvision's `Resize(floor(size / crop_pct))` of the short side, with
    PIL's resampling (`se_keras.data.pil_resize`, exact on uint8 pixels),
    then `CenterCrop(size)`, then `ToTensor` and `Normalize`. On an image
    decoded as PIL decodes it (`decode_image`), the output equals timm's
    normalized tensor.

    Args:
        image: uint8 tensor of shape (H, W, 3). A float (or other integer)
            image in [0, 255] is first rounded (halves to even) and clipped
            to uint8, since PIL resizes uint8 pixels.
        size: output height and width.
        crop_pct: fraction of the resized short side kept by the center
            crop (timm's `crop_pct`; 1.0 resizes straight to `size`).
        mean, std: per-channel normalization of [0, 1] pixels.
        interpolation: PIL's resampling filter, as timm names it:
            "bilinear", "bicubic", "nearest", "box", "hamming" or "lanczos".
        normalize: apply `(x / 255 - mean) / std`; False returns the crop's
            float32 pixels in [0, 255] (for a model that normalizes itself).

    Returns:
        float32 tensor of shape (size, size, 3).

    Example:
    >>> x = eval_preprocess(tf.zeros((300, 400, 3), tf.uint8), size=224)
    >>> tuple(x.shape)
    (224, 224, 3)
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {', '.join(map(repr, INTERPOLATIONS))}. "
            f"Received: interpolation={interpolation!r}"
        )
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={crop_pct!r}")
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        if image.dtype.is_floating:
            image = tf.round(image)
        image = tf.cast(tf.clip_by_value(image, tf.cast(0, image.dtype),
                                         tf.cast(255, image.dtype)), tf.uint8)
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    target = resize_size(size, crop_pct)
    # torchvision's Resize(int), which timm uses: the short side becomes
    # `target` exactly and the long side int(target * long / short),
    # truncated, in double precision.
    short = tf.minimum(height, width)
    new_height = tf.cast(tf.math.floor(target * height / short), tf.int32)
    new_width = tf.cast(tf.math.floor(target * width / short), tf.int32)
    new_height = tf.where(height <= width, target, new_height)
    new_width = tf.where(width < height, target, new_width)
    # torchvision's CenterCrop: int(round((new - size) / 2)), ties to even.
    # The short side is floor(size / crop_pct) >= size, so the crop fits.
    top = tf.cast(tf.math.round(tf.cast(new_height - size, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.math.round(tf.cast(new_width - size, tf.float64) / 2.0), tf.int32)
    # Only the crop's pixels are resampled: the same values as resizing the
    # whole image and cropping, at about half the cost.
    cropped = pil_resize(image, new_height, new_width, interpolation,
                         crop_window=(top, left, size, size))
    cropped.set_shape([size, size, None])
    if not normalize:
        return tf.cast(cropped, tf.float32)
    return _normalize(cropped, mean, std)


def eval_preprocess_bytes(image_bytes, **kwargs):
    """`eval_preprocess(decode_image(image_bytes), **kwargs)`."""
    return eval_preprocess(decode_image(image_bytes), **kwargs)


def preprocess_image(image, preprocessing):
    """One decoded image through a model's `Preprocessing` record: the shared eval path.

    The record's size, crop and interpolation, then its normalization unless
    the model normalizes itself (`normalize_in_model`: it then gets float32
    pixels in [0, 255]). Evaluation, prediction, `inspect` and the serving
    export all call this, so no path can normalize twice or forget to.

    Args:
        image: uint8 (or [0, 255] float) tensor of shape (H, W, 3).
        preprocessing: the model's record (`se_keras.get_preprocessing(model)`)
            or its dict.

    Returns:
        float32 tensor of shape (size, size, 3).

    Example:
    >>> from se_keras.preprocessing import Preprocessing
    >>> x = preprocess_image(tf.zeros((40, 30, 3), tf.uint8), Preprocessing(size=16))
    >>> tuple(x.shape)
    (16, 16, 3)
    """
    record = Preprocessing.from_dict(preprocessing)
    return eval_preprocess(
        image,
        size=record.size,
        crop_pct=record.crop_pct,
        mean=record.mean,
        std=record.std,
        interpolation=record.interpolation,
        normalize=not record.normalize_in_model,
    )
