"""The TFRecord source: sharded `tf.train.Example` files in the ImageNet / TPU layout.

`se-keras data to-tfrecords` (`se_keras.data.tfrecords`) writes such shards,
with a `dataset_info.json` that names the classes and records each shard's
length; shards from the Inception / TPU ImageNet scripts read too.

Example:
>>> source = tfrecord_source("data/tfrecords")  # doctest: +SKIP
>>> source.train.num_examples  # doctest: +SKIP
1281167
"""

import glob
import os

import tensorflow as tf

from se_keras._imagenet_classes import imagenet_class_names
from se_keras.data.errors import SHARD_TAG
from se_keras.data.splits import block_shuffle
from se_keras.data.splits import count_records
from se_keras.data.splits import number_examples
from se_keras.data.splits import shard_size
from se_keras.data.splits import shuffle_indices
from se_keras.data.splits import Source
from se_keras.data.splits import Split
from se_keras.data.tfrecords import DATASET_INFO
from se_keras.data.tfrecords import parse_example
from se_keras.data.tfrecords import read_dataset_info
from se_keras.data.tfrecords import TRAIN_PREFIX
from se_keras.data.tfrecords import VALIDATION_PREFIX


def _visible_files(pattern):
    """The files matching a glob pattern, less hidden ones (shards being written)."""
    return [f for f in glob.glob(pattern) if not os.path.basename(f).startswith(".")]


def _checked_records(filename, expected):
    """The records of one shard, checking at its end that there were `expected` (-1: any).

    `dataset_info.json` records each shard's length, which resuming and
    sharding rely on; a shard truncated at a record boundary reads without
    any error, so the count is checked as the shard is read, at no cost.
    """
    records = tf.data.TFRecordDataset(filename).map(lambda r: (r, False))
    marked = records.concatenate(tf.data.Dataset.from_tensors((tf.constant(b""), True)))

    def count(n, item):
        record, is_end = item
        ok = tf.logical_or(
            tf.logical_not(is_end), tf.logical_or(expected < 0, tf.equal(n, expected))
        )
        check = tf.debugging.Assert(
            ok, [SHARD_TAG, filename, "holds", n, "records; dataset_info.json says", expected],
        )
        with tf.control_dependencies([check]):
            return n + 1, (tf.identity(record), is_end)

    return (marked.scan(tf.constant(0, tf.int64), count)
            .filter(lambda record, is_end: tf.logical_not(is_end))
            .map(lambda record, is_end: record))


class TFRecordSplit(Split):
    """Sharded TFRecord files of `tf.train.Example`s in the ImageNet layout."""

    def __init__(self, name, files, shard_lengths=None, label_offset=0, shuffle_buffer=10_000):
        if not files:
            raise ValueError(f"No TFRecord files for the {name} split.")
        self.name = name
        self.files = sorted(str(f) for f in files)
        self.shard_lengths = shard_lengths
        self.label_offset = label_offset
        self.shuffle_buffer = shuffle_buffer
        self._counts = {}

    def _worker_files(self, num_workers, worker, shard_by):
        if shard_by == "auto" and len(self.files) >= num_workers:
            return self.files[worker::num_workers], False
        return self.files, num_workers > 1

    def _records(self, files, pass_index, shuffle, seed):
        files_t = tf.constant(files, tf.string)
        # -1: no length recorded for the file (nothing to check).
        lengths = [int((self.shard_lengths or {}).get(f, -1)) for f in files]
        lengths_t = tf.constant(lengths, tf.int64)
        if shuffle:
            order = shuffle_indices(len(files), seed, pass_index)
            files_t, lengths_t = tf.gather(files_t, order), tf.gather(lengths_t, order)
        ds = tf.data.Dataset.from_tensor_slices((files_t, lengths_t))
        return ds.interleave(
            _checked_records,
            cycle_length=min(16, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def find_damaged_files(self):
        """The shards that cannot be read to the end (truncated mid-record, corrupt).

        Called after a `DataLossError`, which does not say which file it was.
        """
        damaged = []
        for name in self.files:
            try:
                count_records(tf.data.TFRecordDataset(name))
            except (tf.errors.DataLossError, tf.errors.OutOfRangeError):
                damaged.append(name)
        return damaged

    def dataset(
        self, *, pass_index=0, shuffle=False, seed=0, num_workers=1, worker=0, limit=None,
        shard_by="auto",
    ):
        files, by_example = self._worker_files(num_workers, worker, shard_by)
        ds = self._records(files, pass_index, shuffle, seed)
        if by_example:
            ds = ds.shard(num_workers, worker)
        if shuffle:
            ds = block_shuffle(ds, self.shuffle_buffer, seed, pass_index)
        offset = self.label_offset
        return number_examples(
            ds, lambda serialized: parse_example(serialized, offset), pass_index, num_workers,
            worker,
        )

    def _count(self, files):
        key = tuple(files)
        if key not in self._counts:
            if self.shard_lengths and all(f in self.shard_lengths for f in files):
                self._counts[key] = sum(self.shard_lengths[f] for f in files)
            else:
                self._counts[key] = count_records(tf.data.TFRecordDataset(list(files)))
        return self._counts[key]

    @property
    def num_examples(self):
        return self._count(self.files)

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        files, by_example = self._worker_files(num_workers, worker, "auto")
        n = self._count(files)
        return shard_size(n, num_workers, worker) if by_example else n


def tfrecord_source(path, val_split="auto", num_classes=None, label_offset=None,
                    shuffle_buffer=10_000):
    """Sharded TFRecords in the ImageNet / TPU layout.

    `path` is a folder holding `train-*` and `validation-*` shards (the
    names `se-keras data to-tfrecords` and the TPU ImageNet scripts use) or
    a glob pattern of training files. Class names and shard lengths come
    from the folder's `dataset_info.json` when present; otherwise give
    `num_classes` (1000 uses the ImageNet class names) and, for TFRecords
    whose labels start at 1, `label_offset=-1`.

    Args:
        path: folder or glob pattern.
        val_split: "auto" (the folder's `validation-*`), a glob pattern, or
            "none".
        num_classes: needed without `dataset_info.json`.
        label_offset: added to every label (default: from the metadata, else 0).
        shuffle_buffer: examples in the training shuffle buffer.

    Returns:
        A `Source`.

    Example:
    >>> source = tfrecord_source("data/tfrecords")  # doctest: +SKIP
    """
    path = str(path)
    if os.path.isdir(path):
        directory = path
        train_files = _visible_files(os.path.join(path, f"{TRAIN_PREFIX}-*"))
        default_val = os.path.join(path, f"{VALIDATION_PREFIX}-*")
    else:
        directory = os.path.dirname(path) or "."
        train_files = _visible_files(path)
        default_val = None
    if not train_files:
        raise ValueError(
            f"No TFRecord training files (expected {TRAIN_PREFIX}-* in the folder, or a "
            f"glob pattern). Received: data={path!r}"
        )
    info = read_dataset_info(directory)
    class_names = info.get("class_names")
    if class_names is None:
        if not num_classes:
            raise ValueError(
                f"No {DATASET_INFO} beside the TFRecords, so the number of classes is "
                f"unknown: pass num_classes (--num-classes). Received: data={path!r}"
            )
        if num_classes == 1000:
            class_names = imagenet_class_names()
        else:
            class_names = [str(i) for i in range(num_classes)]
    if label_offset is None:
        label_offset = int(info.get("label_offset", 0))
    lengths = {}
    for split_info in info.get("splits", {}).values():
        for name, n in split_info.get("shard_lengths", {}).items():
            lengths[os.path.join(directory, name)] = int(n)

    def make(name, files):
        return TFRecordSplit(name, files, lengths or None, label_offset, shuffle_buffer)

    train = make("train", train_files)
    validation = None
    if str(val_split) != "none":
        pattern = default_val if val_split in (None, "auto") else str(val_split)
        val_files = _visible_files(pattern) if pattern else []
        if val_files:
            validation = make("validation", val_files)
        elif val_split not in (None, "auto"):
            raise ValueError(
                "No TFRecord files match the validation split (TFRecord sources take a glob "
                f"pattern or 'none'). Received: val_split={val_split!r}"
            )
    return Source("tfrecord", path, class_names, train, validation,
                  description=f"TFRecords {path}")
