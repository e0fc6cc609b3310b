"""Splits held as arrays: a list of image file paths or of encoded images, with labels.

The image folder and the embedded digits are such splits. The whole order
of a pass is a permutation of indices, so shuffling is exact (no shuffle
buffer) and every worker's share is known in advance.

Example:
>>> import numpy as np
>>> split = ArraySplit("train", np.array([0, 1]), images=[b"a", b"b"])
>>> split.pass_length(num_workers=2, worker=1)
1
"""

import functools
import pathlib

import numpy as np
import tensorflow as tf

from se_keras.data.preprocessing import decode_image
from se_keras.data.splits import shard_size
from se_keras.data.splits import shuffle_indices
from se_keras.data.splits import Split


class ArraySplit(Split):
    """A split held as a list of file paths or of encoded images, with labels.

    The whole order is a permutation of indices, so shuffling is exact (no
    shuffle buffer) and every worker's share is known in advance.
    """

    def __init__(self, name, labels, paths=None, images=None):
        self.name = name
        self.labels = np.asarray(labels, np.int32)
        self.paths = None if paths is None else [str(p) for p in paths]
        self.images = images
        if (paths is None) == (images is None):
            raise ValueError("Give exactly one of `paths` and `images`.")

    @property
    def num_examples(self):
        return len(self.labels)

    @functools.cached_property
    def _tensors(self):
        data = self.paths if self.paths is not None else self.images
        return tf.constant(data, tf.string), tf.constant(self.labels, tf.int32)

    def _reader(self):
        """A graph function from an example's index to its encoded image."""
        data, _ = self._tensors
        from_files = self.paths is not None

        def encoded(index):
            item = tf.gather(data, index)
            return tf.io.read_file(item) if from_files else item

        return encoded

    def dataset(
        self, *, pass_index=0, shuffle=False, seed=0, num_workers=1, worker=0, limit=None,
        shard_by="auto",
    ):
        _, labels = self._tensors
        encoded = self._reader()
        n = self.num_examples
        indices = shuffle_indices(n, seed, pass_index) if shuffle else tf.range(n, dtype=tf.int64)
        if limit is not None:
            indices = indices[:limit]
        pass_index = tf.cast(pass_index, tf.int64)
        ds = tf.data.Dataset.from_tensor_slices(indices).enumerate()
        if num_workers > 1:
            ds = ds.shard(num_workers, worker)

        def load(key, index):
            return {"image": encoded(index), "label": tf.gather(labels, index),
                    "pass": pass_index, "key": key}

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        n = self.num_examples if limit is None else min(limit, self.num_examples)
        return shard_size(n, num_workers, worker)

    def subset(self, name, indices):
        indices = np.asarray(indices, np.int64)
        return ArraySplit(
            name,
            self.labels[indices],
            paths=None if self.paths is None else [self.paths[i] for i in indices],
            images=None if self.images is None else [self.images[i] for i in indices],
        )

    def find_undecodable(self):
        """The examples TensorFlow cannot decode: file paths, or "example N" for bytes.

        Called after a decoding error stopped a pipeline, to name the file;
        decodes every example once (in parallel), so it costs one pass.
        """
        n = len(self.paths if self.paths is not None else self.images)
        ds = tf.data.Dataset.from_tensor_slices(tf.range(n, dtype=tf.int64))
        encoded = self._reader()

        def decode(index):
            return index, tf.shape(decode_image(encoded(index)))[0]

        good = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
        decoded = {int(i) for i, _ in good.as_numpy_iterator()}
        bad = [i for i in range(n) if i not in decoded]
        return [self.paths[i] if self.paths is not None else f"example {i}" for i in bad]

    def in_memory(self):
        """A copy that holds the encoded files in memory (the `cache` option)."""
        if self.paths is None:
            return self
        images = [pathlib.Path(p).read_bytes() for p in self.paths]
        return ArraySplit(self.name, self.labels, images=images)
