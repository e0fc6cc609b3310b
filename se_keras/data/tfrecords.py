"""The TFRecord format of image datasets (ImageNet / TPU layout): one schema, read and written.

TPUs read training data from Cloud Storage, as TFRecord shards; this is how
a folder of your own images gets there, and how such shards are read back.
Each record is a `tf.train.Example` with the features of the TPU ImageNet
scripts and Model Garden's decoder:

    image/encoded      the original file's bytes (not re-encoded)
    image/format       "JPEG", "PNG", "GIF" or "BMP"
    image/height, image/width, image/channels (3), image/colorspace ("RGB")
    image/class/label  the class index, starting at 0 (see `label_offset`)
    image/class/text   the class name
    image/filename     the path relative to the source folder

`make_example` writes one record and `parse_example` reads the two features
training needs back; `se_keras.data.tfrecord_source` reads whole shards.
Shards are named `{split}-{index:05d}-of-{count:05d}`, written under a
temporary name and renamed when complete; `dataset_info.json` beside them
records the class names and each shard's length (so that a resumed run can
find its place without reading the data).

Example:
>>> from se_keras.data.to_tfrecords import write_tfrecords
>>> info = write_tfrecords("photos", "photos_tfrecords")  # doctest: +SKIP
>>> info["splits"]["train"]["num_examples"]  # doctest: +SKIP
1200
"""

import io
import logging
import math
import os
import pathlib

import numpy as np
import tensorflow as tf

from se_keras._files import atomic_path
from se_keras._files import read_json
from se_keras.data.arrays import ArraySplit

log = logging.getLogger(__name__)

DATASET_INFO = "dataset_info.json"
TRAIN_PREFIX = "train"
VALIDATION_PREFIX = "validation"
FEATURE_IMAGE = "image/encoded"
FEATURE_LABEL = "image/class/label"
# What training reads back of the features `make_example` writes.
_READ_FEATURES = {
    FEATURE_IMAGE: tf.io.FixedLenFeature((), tf.string),
    FEATURE_LABEL: tf.io.FixedLenFeature((), tf.int64),
}

_FORMATS = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP"}
TARGET_SHARD_BYTES = 100 * 2**20


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def image_format(image_bytes):
    """"JPEG", "PNG", "GIF", "BMP" or "UNKNOWN", from the first bytes."""
    for magic, name in _FORMATS.items():
        if image_bytes.startswith(magic):
            return name
    return "UNKNOWN"


def make_example(image_bytes, label, height, width, class_text="", filename="", channels=3):
    """One `tf.train.Example` in the ImageNet TFRecord layout.

    Args:
        image_bytes: the encoded image, stored as is.
        label: class index (from 0).
        height, width: image size in pixels.
        class_text: class name.
        filename: where the image came from.
        channels: 3 (images are decoded to RGB).

    Returns:
        A `tf.train.Example`.

    Example:
    >>> example = make_example(b"\\x89PNG...", 2, height=32, width=32, class_text="bird")
    >>> example.features.feature["image/class/label"].int64_list.value[0]
    2
    """
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                FEATURE_IMAGE: _bytes_feature(image_bytes),
                "image/format": _bytes_feature(image_format(image_bytes).encode()),
                "image/height": _int_feature(height),
                "image/width": _int_feature(width),
                "image/channels": _int_feature(channels),
                "image/colorspace": _bytes_feature(b"RGB"),
                FEATURE_LABEL: _int_feature(label),
                "image/class/text": _bytes_feature(class_text.encode()),
                "image/filename": _bytes_feature(filename.encode()),
            }
        )
    )


def parse_example(serialized, label_offset=0):
    """Parses one ImageNet-layout `tf.train.Example` to (encoded image, int32 label).

    Args:
        serialized: scalar `tf.string`, a serialized `tf.train.Example`.
        label_offset: added to `image/class/label`; -1 for TFRecords made by
            the Inception / TPU ImageNet scripts, whose labels start at 1.

    Returns:
        `(image_bytes, label)`.

    Example:
    >>> example = make_example(b"\\xff\\xd8\\xff", 3, height=1, width=1)
    >>> int(parse_example(example.SerializeToString())[1])
    3
    """
    features = tf.io.parse_single_example(serialized, _READ_FEATURES)
    label = tf.cast(features[FEATURE_LABEL], tf.int32) + label_offset
    return features[FEATURE_IMAGE], label


def read_dataset_info(directory):
    """The `dataset_info.json` that `write_tfrecords` leaves beside the shards, or {}."""
    path = pathlib.Path(directory) / DATASET_INFO
    if not path.exists():
        return {}
    return read_json(path, "TFRecord metadata (write the TFRecords again or delete it)", "data")


def _image_size(image_bytes, name):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            return image.height, image.width
    except Exception as error:  # Pillow raises many types for broken files.
        raise ValueError(f"{name} cannot be read as an image ({error}).") from error


def _examples(split, root, order):
    """(bytes, label, filename) in `order`, for the splits that hold paths or bytes."""
    if isinstance(split, ArraySplit):
        for i in order:
            if split.paths is not None:
                path = pathlib.Path(split.paths[i])
                name = str(path.relative_to(root)) if root and path.is_relative_to(root) \
                    else str(path)
                yield path.read_bytes(), int(split.labels[i]), name
            else:
                yield split.images[i], int(split.labels[i]), f"{split.name}/{i}"
        return
    for i, element in enumerate(split.dataset(shuffle=False).as_numpy_iterator()):
        yield element["image"], int(element["label"]), f"{split.name}/{i}"


def write_split(split, output_dir, name, class_names, num_shards=None, shuffle=True, seed=0,
                root=None):
    """Writes one split as `name-XXXXX-of-YYYYY` shards; returns its metadata dict.

    Args:
        split: a `se_keras.data.splits.Split`.
        output_dir: destination folder.
        name: "train" or "validation" (the shard prefix).
        class_names: for `image/class/text`.
        num_shards: shards to write; default about 100 MiB each.
        shuffle: write the examples in a seeded random order, so that each
            shard mixes all classes (record readers only shuffle locally).
        seed: the order's seed.
        root: folder that `image/filename` is relative to.

    Returns:
        {"num_examples", "num_shards", "shard_lengths": {file name: count}}.

    Example:
    >>> from se_keras.data.sources import get_source
    >>> source = get_source("digits")
    >>> import tempfile
    >>> meta = write_split(source.validation, tempfile.mkdtemp(), "validation",
    ...                    source.class_names, num_shards=2)
    >>> meta["num_examples"]
    364
    """
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    n = split.num_examples
    order = np.arange(n)
    if shuffle and isinstance(split, ArraySplit):
        order = np.random.default_rng(seed).permutation(n)
    if num_shards is None:
        if isinstance(split, ArraySplit) and split.paths is not None:
            total = sum(os.path.getsize(p) for p in split.paths)
        else:
            total = n * 100_000
        num_shards = max(1, math.ceil(total / TARGET_SHARD_BYTES))
    num_shards = max(1, min(int(num_shards), n))
    bounds = np.linspace(0, n, num_shards + 1).astype(int)
    examples = _examples(split, root, order)
    lengths = {}
    for shard in range(num_shards):
        shard_name = f"{name}-{shard:05d}-of-{num_shards:05d}"
        count = 0
        with atomic_path(output_dir / shard_name) as tmp:
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for _ in range(bounds[shard + 1] - bounds[shard]):
                    image_bytes, label, filename = next(examples)
                    height, width = _image_size(image_bytes, filename)
                    writer.write(make_example(
                        image_bytes, label, height, width, class_names[label], filename
                    ).SerializeToString())
                    count += 1
        lengths[shard_name] = count
        log.info("Wrote %s (%d examples)", shard_name, count)
    # Shards of an earlier run with another shard count would be read too.
    for stale in output_dir.glob(f"{name}-*-of-*"):
        if stale.name not in lengths:
            stale.unlink()
    return {"num_examples": int(sum(lengths.values())), "num_shards": num_shards,
            "shard_lengths": lengths}
