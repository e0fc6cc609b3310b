"""What every dataset source provides, and the seeded order helpers they share.

A *source* (`Source`) names a dataset and holds its splits (`train`,
`validation`). A *split* (`Split`) yields, for one pass over its data, a
`tf.data.Dataset` of dicts

    {"image": encoded image bytes (tf.string), "label": int32,
     "pass": int64, "key": int64}

where `key` numbers the example within the pass. The training pipeline
derives each example's random augmentation from (seed, pass, key), and
resumes an interrupted run by rebuilding pass `p` and skipping the examples
already consumed: the data order is a function of (seed, global step), not
of the state of a live iterator, so it survives a `kill -9` and costs
nothing to checkpoint (tf.data's own iterator checkpoints would store the
shuffle and prefetch buffers, gigabytes of decoded images on ImageNet).

Example:
>>> order = shuffle_indices(5, seed=0, pass_index=1)
>>> sorted(order.numpy().tolist())
[0, 1, 2, 3, 4]
"""

import math

import numpy as np
import tensorflow as tf


def shuffle_indices(n, seed, pass_index):
    """A permutation of `range(n)` that is a function of (seed, pass_index)."""
    seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(pass_index, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed, alg="philox")


def shard_size(n, num_workers, worker):
    """How many of `n` examples worker `worker` of `num_workers` gets by example sharding."""
    return len(range(worker, n, num_workers))


def block_shuffle(ds, block_size, seed, pass_index):
    """Shuffles consecutive blocks of `block_size` records, seeded by (seed, pass, block).

    `Dataset.shuffle` takes only a Python seed, so inside the per-pass
    `flat_map` it would repeat the same pattern every pass; a stateless
    permutation of each block is a function of the pass index instead.
    """
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(pass_index, tf.int64)])

    def permute(index, block):
        n = tf.shape(tf.nest.flatten(block)[0])[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), tf.random.experimental.stateless_fold_in(base, index), alg="philox"
        )
        return tf.nest.map_structure(lambda t: tf.gather(t, order), block)

    return ds.batch(block_size).enumerate().map(permute).unbatch()


def number_examples(ds, parse, pass_index, num_workers, worker):
    """One worker's records as example dicts, numbered so that keys differ across workers.

    Args:
        ds: this worker's records, in pass order.
        parse: a graph function from one record to (encoded image, int32 label).
        pass_index: int or scalar tensor; which pass this is.
        num_workers, worker: the input pipelines and this one's index.

    Returns:
        A `tf.data.Dataset` of {"image", "label", "pass", "key"}.
    """
    pass_index = tf.cast(pass_index, tf.int64)

    def load(key, record):
        image, label = parse(record)
        # Distinct keys across workers, so that no two examples share a seed.
        return {"image": image, "label": label, "pass": pass_index,
                "key": key * num_workers + worker}

    return ds.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE)


def count_records(ds):
    """Counts the elements of a dataset by reading it once."""
    return int(ds.reduce(np.int64(0), lambda c, _: c + 1))


class Split:
    """One split of a source; subclasses implement `dataset` and `num_examples`."""

    name = ""

    @property
    def num_examples(self):
        raise NotImplementedError

    def dataset(
        self, *, pass_index=0, shuffle=False, seed=0, num_workers=1, worker=0, limit=None,
        shard_by="auto",
    ):
        """One pass over this worker's part of the split.

        Args:
            pass_index: int or scalar tensor; which pass (epoch) this is.
            shuffle: shuffle the examples (a different order each pass).
            seed: integer seed of the order.
            num_workers, worker: the input pipelines and this one's index.
            limit: keep only the first `limit` examples of the (shuffled)
                pass before sharding, so that every worker gets the same
                number (index splits only).
            shard_by: "auto" (files when there are enough, else examples)
                or "example" (exact, equal shares; used for evaluation).

        Returns:
            A `tf.data.Dataset` of {"image", "label", "pass", "key"}.
        """
        raise NotImplementedError

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        """How many examples one pass of `dataset(...)` yields on this worker."""
        raise NotImplementedError


class Source:
    """A named dataset: class names plus `train` and (optional) `validation` splits.

    Example:
    >>> from se_keras.data.sources import get_source
    >>> source = get_source("digits")
    >>> source.num_classes
    10
    """

    def __init__(self, kind, name, class_names, train, validation=None, description=""):
        self.kind = kind
        self.name = name
        self.class_names = list(class_names)
        self.train = train
        self.validation = validation
        self.description = description

    @property
    def num_classes(self):
        return len(self.class_names)

    def __repr__(self):
        val = self.validation.name if self.validation is not None else None
        return (f"Source({self.kind}:{self.name}, classes={self.num_classes}, "
                f"train={self.train.name}, validation={val})")


def holdout_indices(labels, val_split):
    """Indices of the last `val_split` examples (int) or fraction (float) of each class."""
    labels = np.asarray(labels)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if isinstance(val_split, float):
            k = int(math.ceil(val_split * len(idx)))
        else:
            k = int(val_split)
        if k >= len(idx):
            raise ValueError(
                f"The validation split would take every example of class {c} "
                f"({len(idx)} examples). Received: val_split={val_split!r}"
            )
        train.extend(idx[: len(idx) - k])
        val.extend(idx[len(idx) - k:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


def parse_holdout(val_split):
    """'500' -> 500 per class, '0.1' -> 10% per class, anything else -> None."""
    if isinstance(val_split, (int, float)) and not isinstance(val_split, bool):
        return val_split
    try:
        return int(val_split)
    except (TypeError, ValueError):
        pass
    try:
        value = float(val_split)
    except (TypeError, ValueError):
        return None
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"A fractional validation split must be in (0, 1). Received: val_split={val_split!r}"
        )
    return value
