"""The tensorflow-datasets source, read without decoding the images.

The images stay encoded (`tfds.decode.SkipDecoding`) so that the training
pipeline can fuse decoding with the random crop, as for every other source.

Example:
>>> source = tfds_source("cifar10", data_dir="~/tensorflow_datasets")  # doctest: +SKIP
>>> source.validation.name  # doctest: +SKIP
'test'
"""

import os

import tensorflow as tf

from se_keras.data.splits import block_shuffle
from se_keras.data.splits import count_records
from se_keras.data.splits import number_examples
from se_keras.data.splits import parse_holdout
from se_keras.data.splits import Source
from se_keras.data.splits import Split


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
            ds = block_shuffle(ds, self.shuffle_buffer, seed, pass_index)
        image_key, label_key = self.image_key, self.label_key

        def parse(example):
            return example[image_key], tf.cast(example[label_key], tf.int32)

        return number_examples(ds, parse, pass_index, num_workers, worker)

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
                cardinality = count_records(ds)
            self._counts[key] = cardinality
        return self._counts[key]

    @property
    def num_examples(self):
        return self._count(1, 0)

    def pass_length(self, *, num_workers=1, worker=0, limit=None):
        return self._count(num_workers, worker)


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
    holdout = parse_holdout(val_split) if val_split not in (None, "auto", "none") else None
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
