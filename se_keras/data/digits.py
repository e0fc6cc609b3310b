"""The embedded default dataset: scikit-learn's handwritten digits, upscaled to 32x32 PNGs.

Example:
>>> source = digits_source()
>>> source.class_names[:3], source.train.num_examples
(['0', '1', '2'], 1433)
"""

import functools

import numpy as np
import tensorflow as tf

from se_keras.data.arrays import ArraySplit
from se_keras.data.splits import holdout_indices
from se_keras.data.splits import parse_holdout
from se_keras.data.splits import Source


@functools.lru_cache(maxsize=4)
def _digits_images(size):
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 0..16 grey levels -> 0..255, dark digits on white like ink on paper.
    pixels = 255.0 - digits.images.astype(np.float32) * (255.0 / 16.0)
    pixels = tf.image.resize(pixels[..., None], [size, size], method="bicubic")
    pixels = tf.cast(tf.clip_by_value(tf.round(pixels), 0, 255), tf.uint8)
    encoded = [tf.io.encode_png(p).numpy() for p in pixels]
    return encoded, digits.target.astype(np.int32)


def digits_source(val_split="auto", size=32):
    """The embedded default: scikit-learn's 8x8 handwritten digits as 32x32 PNGs.

    1,797 real scans of handwritten digits (UCI ML hand-written digits) that
    ship with scikit-learn, so training works with no download. The last
    20% of each class is the validation split.

    Args:
        val_split: "auto" (20% per class), an int (last N per class), a
            fraction, or "none".
        size: side of the upscaled PNGs.

    Returns:
        A `Source`.

    Example:
    >>> digits_source().validation.num_examples
    364
    """
    images, labels = _digits_images(size)
    split = ArraySplit("train", labels, images=images)
    if str(val_split).lower() == "none":
        return Source("digits", "digits", [str(i) for i in range(10)], split)
    holdout = 0.2 if val_split in (None, "auto") else parse_holdout(val_split)
    if holdout is None:
        raise ValueError(
            "The digits source takes a validation split of 'auto', 'none', a count per "
            f"class or a fraction. Received: val_split={val_split!r}"
        )
    train_idx, val_idx = holdout_indices(labels, holdout)
    return Source(
        "digits", "digits", [str(i) for i in range(10)],
        split.subset("train", train_idx), split.subset("validation", val_idx),
        description="scikit-learn digits (8x8 upscaled to 32x32)",
    )
