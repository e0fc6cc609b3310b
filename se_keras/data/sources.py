"""Where images come from: the embedded digits, an image folder, TFRecords or tensorflow-datasets.

A *source* names a dataset and holds its splits (`train`, `validation`).
A *split* yields, for one pass over its data, a `tf.data.Dataset` of dicts

    {"image": encoded image bytes (tf.string), "label": int32,
     "pass": int64, "key": int64}

where `key` numbers the example within the pass. The training pipeline
derives each example's random augmentation from (seed, pass, key), and
resumes an interrupted run by rebuilding pass `p` and skipping the examples
already consumed: the data order is a function of (seed, global step), not
of the state of a live iterator, so it survives a `kill -9` and costs
nothing to checkpoint (tf.data's own iterator checkpoints would store the
shuffle and prefetch buffers, gigabytes of decoded images on ImageNet).

Source specifications (the `--data` option):

    digits                 the embedded default: scikit-learn's 1,797
                           handwritten digits (8x8, upscaled to 32x32)
    folder:PATH            one subfolder of JPEG/PNG/GIF/BMP files per class
                           (PATH/train and PATH/val are used when present)
    tfrecord:DIR|PATTERN   ImageNet-style sharded TFRecords (`image/encoded`,
                           `image/class/label`), DIR/train-* and
                           DIR/validation-*; `se-keras data to-tfrecords`
                           writes them
    tfds:NAME              a tensorflow-datasets dataset (`cifar10`,
                           `imagenette`, `imagenet2012`, ...)

Example:
>>> source = get_source("digits")
>>> source.class_names[:3], source.train.num_examples
(['0', '1', '2'], 1433)
"""

import functools
import glob
import logging
import math
import os
import pathlib

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

SOURCE_KINDS = ("digits", "folder", "tfrecord", "tfds")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# First bytes of each accepted format (JPEG, PNG, GIF, BMP).
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
DATASET_INFO = "dataset_info.json"
TRAIN_PREFIX = "train"
VALIDATION_PREFIX = "validation"
FEATURE_IMAGE = "image/encoded"
FEATURE_LABEL = "image/class/label"


def _shuffle_indices(n, seed, pass_index):
    seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(pass_index, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed, alg="philox")


def _shard_size(n, num_workers, worker):
    return len(range(worker, n, num_workers))


def _block_shuffle(ds, block_size, seed, pass_index):
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

    def dataset(
        self, *, pass_index=0, shuffle=False, seed=0, num_workers=1, worker=0, limit=None,
        shard_by="auto",
    ):
        data, labels = self._tensors
        n = self.num_examples
        indices = _shuffle_indices(n, seed, pass_index) if shuffle else tf.range(n, dtype=tf.int64)
        if limit is not None:
            indices = indices[:limit]
        pass_index = tf.cast(pass_index, tf.int64)
        ds = tf.data.Dataset.from_tensor_slices(indices).enumerate()
        if num_workers > 1:
            ds = ds.shard(num_workers, worker)
        from_files = self.paths is not None

        def load(key, index):
            item = tf.gather(data, index)
            image = tf.io.read_file(item) if from_files else item
            return {"image": image, "label": tf.gather(labels, index), "pass": pass_index,
                    "key": key}

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        n = self.num_examples if limit is None else min(limit, self.num_examples)
        return _shard_size(n, num_workers, worker)

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
        from se_keras.data.preprocessing import decode_image

        data = self.paths if self.paths is not None else self.images
        ds = tf.data.Dataset.from_tensor_slices(tf.range(len(data), dtype=tf.int64))
        from_files = self.paths is not None
        tensor = tf.constant(data, tf.string)

        def decode(index):
            item = tf.gather(tensor, index)
            image = decode_image(tf.io.read_file(item) if from_files else item)
            return index, tf.shape(image)[0]

        good = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
        decoded = {int(i) for i, _ in good.as_numpy_iterator()}
        bad = [i for i in range(len(data)) if i not in decoded]
        return [self.paths[i] if from_files else f"example {i}" for i in bad]

    def in_memory(self):
        """A copy that holds the encoded files in memory (the `cache` option)."""
        if self.paths is None:
            return self
        images = [pathlib.Path(p).read_bytes() for p in self.paths]
        return ArraySplit(self.name, self.labels, images=images)


def parse_example(serialized, label_offset=0):
    """Parses one ImageNet-layout `tf.train.Example` to (encoded image, int32 label).

    Args:
        serialized: scalar `tf.string`, a serialized `tf.train.Example`.
        label_offset: added to `image/class/label`; -1 for TFRecords made by
            the Inception / TPU ImageNet scripts, whose labels start at 1.

    Returns:
        `(image_bytes, label)`.

    Example:
    >>> from se_keras.data.tfrecords import make_example
    >>> example = make_example(b"\\xff\\xd8\\xff", 3, height=1, width=1)
    >>> int(parse_example(example.SerializeToString())[1])
    3
    """
    features = tf.io.parse_single_example(
        serialized,
        {
            FEATURE_IMAGE: tf.io.FixedLenFeature((), tf.string),
            FEATURE_LABEL: tf.io.FixedLenFeature((), tf.int64),
        },
    )
    label = tf.cast(features[FEATURE_LABEL], tf.int32) + label_offset
    return features[FEATURE_IMAGE], label


def _checked_records(filename, expected):
    """The records of one shard, checking at its end that there were `expected` (-1: any).

    `dataset_info.json` records each shard's length, which resuming and
    sharding rely on; a shard truncated at a record boundary reads without
    any error, so the count is checked as the shard is read, at no cost.
    """
    from se_keras.data.errors import SHARD_TAG

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

    def _records(self, files, pass_index, shuffle, seed, deterministic_order=True):
        files_t = tf.constant(files, tf.string)
        # -1: no length recorded for the file (nothing to check).
        lengths = [int((self.shard_lengths or {}).get(f, -1)) for f in files]
        lengths_t = tf.constant(lengths, tf.int64)
        if shuffle:
            order = _shuffle_indices(len(files), seed, pass_index)
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
                tf.data.TFRecordDataset(name).reduce(np.int64(0), lambda c, _: c + 1)
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
            ds = _block_shuffle(ds, self.shuffle_buffer, seed, pass_index)
        pass_index = tf.cast(pass_index, tf.int64)
        offset = self.label_offset

        def load(key, serialized):
            image, label = parse_example(serialized, offset)
            # Distinct keys across workers, so that no two examples share a seed.
            return {"image": image, "label": label, "pass": pass_index,
                    "key": key * num_workers + worker}

        return ds.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE)

    def _count(self, files):
        key = tuple(files)
        if key not in self._counts:
            if self.shard_lengths and all(f in self.shard_lengths for f in files):
                self._counts[key] = sum(self.shard_lengths[f] for f in files)
            else:
                ds = tf.data.TFRecordDataset(list(files))
                self._counts[key] = int(ds.reduce(np.int64(0), lambda c, _: c + 1))
        return self._counts[key]

    @property
    def num_examples(self):
        return self._count(self.files)

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        files, by_example = self._worker_files(num_workers, worker, "auto")
        n = self._count(files)
        return _shard_size(n, num_workers, worker) if by_example else n


class TFDSSplit(Split):
    """A split of a tensorflow-datasets builder, read without decoding the images."""

    def __init__(self, builder, split, image_key, label_key, shuffle_buffer=10_000):
        self.builder = builder
        self.name = split
        self.image_key = image_key
        self.label_key = label_key
        self.shuffle_buffer = shuffle_buffer
        self._counts = {}

    def _num_files(self):
        try:
            return len(self.builder.info.splits[self.name].file_instructions)
        except Exception:  # tfds' mock data and old metadata carry no file list.
            return None

    def _base(self, shuffle, seed, num_workers, worker, shard_by):
        import tensorflow_datasets as tfds

        num_files = self._num_files()
        by_files = (
            num_workers > 1 and shard_by == "auto" and num_files is not None
            and num_files >= num_workers
        )
        read_config = tfds.ReadConfig(
            shuffle_seed=int(seed),
            input_context=tf.distribute.InputContext(num_workers, worker, 1) if by_files else None,
            interleave_cycle_length=16,
            try_autocache=False,
        )
        ds = self.builder.as_dataset(
            split=self.name,
            decoders={self.image_key: tfds.decode.SkipDecoding()},
            shuffle_files=shuffle,
            read_config=read_config,
        )
        if num_workers > 1 and not by_files:
            ds = ds.shard(num_workers, worker)
        return ds

    def dataset(
        self, *, pass_index=0, shuffle=False, seed=0, num_workers=1, worker=0, limit=None,
        shard_by="auto",
    ):
        ds = self._base(shuffle, seed, num_workers, worker, shard_by)
        if shuffle:
            # The file order is fixed by tfds' integer seed; the block
            # shuffle makes each pass's order different.
            ds = _block_shuffle(ds, self.shuffle_buffer, seed, pass_index)
        pass_index = tf.cast(pass_index, tf.int64)
        image_key, label_key = self.image_key, self.label_key

        def load(key, example):
            return {"image": example[image_key], "label": tf.cast(example[label_key], tf.int32),
                    "pass": pass_index, "key": key * num_workers + worker}

        return ds.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE)

    def _count(self, num_workers, worker):
        if num_workers == 1:
            try:
                return int(self.builder.info.splits[self.name].num_examples)
            except Exception:  # Unknown in mock data; count instead.
                pass
        key = (num_workers, worker)
        if key not in self._counts:
            ds = self._base(False, 0, num_workers, worker, "auto")
            cardinality = int(ds.cardinality())
            if cardinality < 0:
                cardinality = int(ds.reduce(np.int64(0), lambda c, _: c + 1))
            self._counts[key] = cardinality
        return self._counts[key]

    @property
    def num_examples(self):
        return self._count(1, 0)

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        return self._count(num_workers, worker)


class Source:
    """A named dataset: class names plus `train` and (optional) `validation` splits.

    Example:
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


def parse_spec(spec):
    """Splits a `--data` spec into (kind, argument); a bare path is sniffed.

    Example:
    >>> parse_spec("tfds:cifar10")
    ('tfds', 'cifar10')
    """
    if spec is None or spec == "" or spec == "digits":
        return "digits", ""
    kind, sep, arg = str(spec).partition(":")
    if sep and kind in SOURCE_KINDS:
        return kind, arg
    path = pathlib.Path(spec)
    if path.is_dir():
        if glob.glob(str(path / f"{TRAIN_PREFIX}-*")) or (path / DATASET_INFO).exists():
            return "tfrecord", str(path)
        return "folder", str(path)
    raise ValueError(
        "`data` must be 'digits', 'folder:PATH', 'tfrecord:DIR_OR_PATTERN', "
        f"'tfds:NAME' or an existing folder. Received: data={spec!r}"
    )


def _holdout(labels, val_split):
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


def _parse_holdout(val_split):
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
    holdout = 0.2 if val_split in (None, "auto") else _parse_holdout(val_split)
    if holdout is None:
        raise ValueError(
            "The digits source takes a validation split of 'auto', 'none', a count per "
            f"class or a fraction. Received: val_split={val_split!r}"
        )
    train_idx, val_idx = _holdout(labels, holdout)
    return Source(
        "digits", "digits", [str(i) for i in range(10)],
        split.subset("train", train_idx), split.subset("validation", val_idx),
        description="scikit-learn digits (8x8 upscaled to 32x32)",
    )


def _sniff(path):
    """None if the file looks like an image, else why not."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file (extension {path.suffix or 'none'!r}; expected one of " \
               f"{', '.join(IMAGE_EXTENSIONS)})"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as error:
        return f"unreadable ({error})"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return f"not a JPEG, PNG, GIF or BMP image (it starts with {head[:8]!r})"
    return None


def _verify(path):
    """Fully decodes an image with Pillow; None if it decodes, else the error."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # Pillow raises many types for broken files.
        return f"not decodable ({error})"
    return None


def list_image_folder(root, skip_bad_files=False, verify_images=False):
    """Lists a folder of class subfolders: (paths, labels, class_names).

    Class names are the sorted subfolder names; files are found recursively
    inside each class folder and sorted. Hidden files are ignored. Every
    other file must be an image: its extension and first bytes are checked
    (and with `verify_images` it is decoded with Pillow), and a file that
    fails raises an error naming it, or is skipped with a warning when
    `skip_bad_files` is set.

    Args:
        root: the folder.
        skip_bad_files: warn and skip instead of raising.
        verify_images: decode every image (slow; catches truncated files).

    Returns:
        `(paths, labels, class_names)`.

    Raises:
        ValueError: no class subfolders, no images, or a bad file.

    Example:
    >>> paths, labels, names = list_image_folder("photos")  # doctest: +SKIP
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"The image folder does not exist. Received: folder={str(root)!r}")
    class_names = sorted(
        d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith(".")
    )
    if not class_names:
        raise ValueError(
            "An image folder needs one subfolder per class (e.g. photos/cat/1.jpg). "
            f"Received: folder={str(root)!r}"
        )
    paths, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = pathlib.Path(dirpath) / filename
                problem = _sniff(path) or (_verify(path) if verify_images else None)
                if problem is not None:
                    if not skip_bad_files:
                        raise ValueError(
                            f"{path} is {problem}. Remove it, or pass skip_bad_files=True "
                            f"(--skip-bad-files) to skip such files with a warning. "
                            f"Received: folder={str(root)!r}"
                        )
                    skipped.append(path)
                    log.warning("Skipping %s: %s", path, problem)
                    continue
                paths.append(str(path))
                labels.append(label)
    if not paths:
        raise ValueError(f"No images in the class subfolders. Received: folder={str(root)!r}")
    if len(class_names) < 2:
        # One class trains to 100% accuracy on nothing; usually the folder
        # given is one level too deep (photos/cat instead of photos).
        raise ValueError(
            "An image folder needs at least 2 class subfolders; this one has only "
            f"{class_names[0]!r}. Point it at the folder above the class folders. "
            f"Received: folder={str(root)!r}"
        )
    if skipped:
        log.warning("Skipped %d bad file(s) in %s.", len(skipped), root)
    return paths, np.asarray(labels, np.int32), class_names


def folder_source(path, val_split="auto", skip_bad_files=False, verify_images=False,
                  cache=False):
    """A folder of class subfolders of images.

    If `path` has `train/` and `val/` (or `validation/`) subfolders that are
    themselves class folders, they are the two splits. Otherwise the
    validation split is held out from the end of each class: `val_split` is
    a count per class ("500"), a fraction ("0.1"), another folder, "auto"
    (10% per class) or "none".

    Args:
        path: the folder.
        val_split: see above.
        skip_bad_files, verify_images: see `list_image_folder`.
        cache: read every file into memory once (small datasets).

    Returns:
        A `Source`.

    Example:
    >>> source = folder_source("cifar10/train", val_split="500")  # doctest: +SKIP
    """
    root = pathlib.Path(path)
    no_val = str(val_split).lower() == "none"
    holdout = None if no_val or val_split in (None, "auto") else _parse_holdout(val_split)
    train_dir, val_dir = root, None
    if not no_val and holdout is None and val_split not in (None, "auto"):
        val_dir = pathlib.Path(val_split)
    elif (root / "train").is_dir():
        # The ImageNet folder layout: root/train/<class>, root/val/<class>.
        for candidate in ("val", "validation"):
            if (root / candidate).is_dir():
                train_dir = root / "train"
                val_dir = None if no_val or holdout is not None else root / candidate
                break
    options = dict(skip_bad_files=skip_bad_files, verify_images=verify_images)
    paths, labels, class_names = list_image_folder(train_dir, **options)
    train = ArraySplit("train", labels, paths=paths)
    validation = None
    if val_dir is not None:
        val_paths, val_labels, val_names = list_image_folder(val_dir, **options)
        if val_names != class_names:
            raise ValueError(
                "The validation folder's classes differ from the training folder's: "
                f"{val_names[:5]}... vs {class_names[:5]}... Received: val_split={str(val_dir)!r}"
            )
        validation = ArraySplit("validation", val_labels, paths=val_paths)
    elif not no_val:
        train_idx, val_idx = _holdout(labels, 0.1 if holdout is None else holdout)
        validation = train.subset("validation", val_idx)
        train = train.subset("train", train_idx)
    if cache:
        train = train.in_memory()
        validation = validation.in_memory() if validation is not None else None
    return Source("folder", str(root), class_names, train, validation,
                  description=f"image folder {root}")


def read_dataset_info(directory):
    """The `dataset_info.json` that `write_tfrecords` leaves beside the shards, or {}."""
    from se_keras._files import read_json

    path = pathlib.Path(directory) / DATASET_INFO
    if not path.exists():
        return {}
    return read_json(path, "TFRecord metadata (write the TFRecords again or delete it)", "data")


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
        train_files = glob.glob(os.path.join(path, f"{TRAIN_PREFIX}-*"))
        default_val = os.path.join(path, f"{VALIDATION_PREFIX}-*")
    else:
        directory = os.path.dirname(path) or "."
        train_files = glob.glob(path)
        default_val = None
    train_files = [f for f in train_files if not os.path.basename(f).startswith(".")]
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
            from se_keras.applications import imagenet_class_names

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
        val_files = [f for f in glob.glob(pattern) if not os.path.basename(f).startswith(".")] \
            if pattern else []
        if val_files:
            validation = make("validation", val_files)
        elif val_split not in (None, "auto"):
            raise ValueError(
                "No TFRecord files match the validation split (TFRecord sources take a glob "
                f"pattern or 'none'). Received: val_split={val_split!r}"
            )
    return Source("tfrecord", path, class_names, train, validation,
                  description=f"TFRecords {path}")


def _tfds_keys(builder):
    import tensorflow_datasets as tfds

    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not images or not labels:
        raise ValueError(
            "A tensorflow-datasets source needs an Image feature and a ClassLabel feature. "
            f"Received: features={list(features)}"
        )
    image_key = "image" if "image" in images else images[0]
    label_key = "label" if "label" in labels else labels[0]
    return image_key, label_key


def tfds_source(name, data_dir=None, val_split="auto", download=True, shuffle_buffer=10_000):
    """A tensorflow-datasets image classification dataset.

    The images are read still encoded (`tfds.decode.SkipDecoding`) so that
    the training pipeline can fuse decoding with the random crop. Datasets
    that need a manual download (ImageNet: put the tar files in
    `DATA_DIR/downloads/manual/`) are prepared from `data_dir`.

    Args:
        name: the tfds name, optionally with a config (`imagenette/320px-v2`).
        data_dir: the tfds data directory (default: tfds' own).
        val_split: "auto" ("validation", else "test", else the last 10% of
            "train"), a tfds split string such as "train[-5000:]", an int or
            fraction held out from the end of "train", or "none".
        download: try `download_and_prepare` if the data is not prepared.
        shuffle_buffer: examples in the training shuffle buffer.

    Returns:
        A `Source`.

    Raises:
        ValueError: when the dataset is not prepared and cannot be
            downloaded, pointing to `--data-dir`.

    Example:
    >>> source = tfds_source("cifar10", data_dir="~/tensorflow_datasets")  # doctest: +SKIP
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise ValueError(f"Unknown tensorflow-datasets dataset ({error}). Received: data={name!r}")
    if not builder.is_prepared():
        root = os.path.expanduser(
            data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        )
        manual_dir = os.path.join(root, "downloads", "manual")
        hint = (
            f"The tensorflow-datasets dataset {name!r} is not prepared in "
            f"{root} and could not be downloaded (no network?). Prepare it "
            "on a machine with network access and point --data-dir at that tfds data "
            "directory"
            + (f", or put its manual download in {manual_dir}" if getattr(
                builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) else "")
            + "."
        )
        if not download:
            raise ValueError(f"{hint} Received: data={name!r}, data_dir={data_dir!r}")
        try:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
            )
        except Exception as error:
            raise ValueError(
                f"{hint} ({type(error).__name__}: {str(error)[:300]}) "
                f"Received: data={name!r}, data_dir={data_dir!r}"
            ) from error
    image_key, label_key = _tfds_keys(builder)
    class_names = list(builder.info.features[label_key].names)
    splits = list(builder.info.splits.keys())
    train_split, val_name = "train", None
    holdout = _parse_holdout(val_split) if val_split not in (None, "auto", "none") else None
    if str(val_split) == "none":
        val_name = None
    elif holdout is not None:
        if isinstance(holdout, float):
            pct = int(round(holdout * 100))
            train_split, val_name = f"train[:-{pct}%]", f"train[-{pct}%:]"
        else:
            train_split, val_name = f"train[:-{holdout}]", f"train[-{holdout}:]"
    elif val_split in (None, "auto"):
        for candidate in ("validation", "test"):
            if candidate in splits:
                val_name = candidate
                break
        else:
            # No metadata (tfds' mock data): the usual name.
            val_name = "test" if not splits else None
            if splits:
                train_split, val_name = "train[:90%]", "train[90%:]"
    else:
        val_name = str(val_split)

    def make(split):
        return TFDSSplit(builder, split, image_key, label_key, shuffle_buffer)

    return Source("tfds", name, class_names, make(train_split),
                  make(val_name) if val_name else None,
                  description=f"tensorflow-datasets {name}")


def get_source(
    spec="digits",
    *,
    data_dir=None,
    val_split="auto",
    skip_bad_files=False,
    verify_images=False,
    cache=False,
    num_classes=None,
    label_offset=None,
    shuffle_buffer=10_000,
    download=True,
):
    """Opens the dataset named by a `--data` spec (see the module docstring).

    Args:
        spec: "digits", "folder:PATH", "tfrecord:PATH", "tfds:NAME" or a path.
        data_dir: tensorflow-datasets data directory.
        val_split: the validation split (meaning depends on the source).
        skip_bad_files, verify_images: image folder checks.
        cache: hold an image folder's files in memory.
        num_classes, label_offset: for TFRecords without metadata.
        shuffle_buffer: record sources' shuffle buffer.
        download: let tfds try to download.

    Returns:
        A `Source`.

    Example:
    >>> get_source("digits").num_classes
    10
    """
    kind, arg = parse_spec(spec)
    if kind == "digits":
        return digits_source(val_split)
    if kind == "folder":
        return folder_source(arg, val_split, skip_bad_files, verify_images, cache)
    if kind == "tfrecord":
        return tfrecord_source(arg, val_split, num_classes, label_offset, shuffle_buffer)
    return tfds_source(arg, data_dir, val_split, download, shuffle_buffer)


def describe(source):
    """A short human-readable summary (for logs and `se-keras data info`)."""
    lines = [f"{source.description or source.name}: {source.num_classes} classes"]
    for split in (source.train, source.validation):
        if split is not None:
            lines.append(f"  {split.name}: {split.num_examples} examples")
    return "\n".join(lines)

