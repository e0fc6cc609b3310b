"""Where images come from: `get_source` opens the dataset a `--data` spec names.

Each kind of source has its own module; this one dispatches a spec to it
and re-exports their public names:

    digits                 the embedded default: scikit-learn's 1,797
                           handwritten digits (8x8, upscaled to 32x32)
                           (`se_keras.data.digits`)
    folder:PATH            one subfolder of JPEG/PNG/GIF/BMP files per class
                           (PATH/train and PATH/val are used when present)
                           (`se_keras.data.folder`)
    tfrecord:DIR|PATTERN   ImageNet-style sharded TFRecords (`image/encoded`,
                           `image/class/label`), DIR/train-* and
                           DIR/validation-*; `se-keras data to-tfrecords`
                           writes them (`se_keras.data.tfrecord_source`,
                           `se_keras.data.tfrecords`)
    tfds:NAME              a tensorflow-datasets dataset (`cifar10`,
                           `imagenette`, `imagenet2012`, ...)
                           (`se_keras.data.tfds_source`)

Every source is a `Source` of `Split`s (`se_keras.data.splits`), whose
passes are a function of (seed, pass), so that runs resume exactly.

Example:
>>> source = get_source("digits")
>>> source.class_names[:3], source.train.num_examples
(['0', '1', '2'], 1433)
"""

import glob
import pathlib

from se_keras.data.arrays import ArraySplit
from se_keras.data.digits import digits_source
from se_keras.data.folder import folder_source
from se_keras.data.folder import IMAGE_EXTENSIONS
from se_keras.data.folder import list_image_folder
from se_keras.data.splits import Source
from se_keras.data.splits import Split
from se_keras.data.tfds_source import tfds_source
from se_keras.data.tfds_source import TFDSSplit
from se_keras.data.tfrecord_source import tfrecord_source
from se_keras.data.tfrecord_source import TFRecordSplit
from se_keras.data.tfrecords import DATASET_INFO
from se_keras.data.tfrecords import FEATURE_IMAGE
from se_keras.data.tfrecords import FEATURE_LABEL
from se_keras.data.tfrecords import parse_example
from se_keras.data.tfrecords import read_dataset_info
from se_keras.data.tfrecords import TRAIN_PREFIX
from se_keras.data.tfrecords import VALIDATION_PREFIX

__all__ = [
    "ArraySplit",
    "DATASET_INFO",
    "describe",
    "digits_source",
    "FEATURE_IMAGE",
    "FEATURE_LABEL",
    "folder_source",
    "get_source",
    "IMAGE_EXTENSIONS",
    "list_image_folder",
    "parse_example",
    "parse_spec",
    "read_dataset_info",
    "Source",
    "SOURCE_KINDS",
    "Split",
    "tfds_source",
    "TFDSSplit",
    "tfrecord_source",
    "TFRecordSplit",
    "TRAIN_PREFIX",
    "VALIDATION_PREFIX",
]

SOURCE_KINDS = ("digits", "folder", "tfrecord", "tfds")


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
