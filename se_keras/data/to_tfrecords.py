"""Any `--data` source written as sharded TFRecords (`se-keras data to-tfrecords`).

Above both the dispatcher (`sources.get_source`, which reads TFRecords
among other sources) and the format (`tfrecords`), so neither imports the
other back.
"""

import pathlib

from se_keras._files import write_json_atomically
from se_keras.data.sources import get_source
from se_keras.data.tfrecords import DATASET_INFO
from se_keras.data.tfrecords import TRAIN_PREFIX
from se_keras.data.tfrecords import VALIDATION_PREFIX
from se_keras.data.tfrecords import read_dataset_info
from se_keras.data.tfrecords import write_split


def write_tfrecords(data, output_dir, val_split="none", num_shards=None, val_shards=None,
                    shuffle=True, seed=0, skip_bad_files=False):
    """Writes a dataset (an image folder, usually) as sharded TFRecords plus metadata.

    Args:
        data: a `--data` spec or folder path ("photos", "folder:photos",
            "digits").
        output_dir: destination folder.
        val_split: as for the folder source: "none" (every image in the
            train split; the default), a count or fraction per class held
            out as the validation split, or "auto" (the folder's own
            train/ and val/ subfolders, else 10% per class).
        num_shards, val_shards: shard counts (default: ~100 MiB shards).
        shuffle: mix the classes across shards (seeded).
        seed: the order's seed.
        skip_bad_files: skip unreadable files with a warning.

    Returns:
        The `dataset_info.json` contents.

    Example:
    >>> import tempfile
    >>> info = write_tfrecords("digits", tempfile.mkdtemp())
    >>> info["splits"]["train"]["num_examples"]
    1797
    """
    source = get_source(data, val_split=val_split, skip_bad_files=skip_bad_files)
    root = pathlib.Path(source.name) if source.kind == "folder" else None
    output_dir = pathlib.Path(output_dir)
    info = read_dataset_info(output_dir)
    if info.get("class_names") not in (None, source.class_names):
        raise ValueError(
            f"{output_dir} already holds TFRecords with other classes; choose an empty "
            f"folder. Received: output_dir={str(output_dir)!r}"
        )
    info.update({"class_names": source.class_names, "label_offset": 0,
                 "source": source.description or source.name})
    splits = info.setdefault("splits", {})
    splits[TRAIN_PREFIX] = write_split(
        source.train, output_dir, TRAIN_PREFIX, source.class_names, num_shards,
        shuffle, seed, root,
    )
    if source.validation is not None:
        splits[VALIDATION_PREFIX] = write_split(
            source.validation, output_dir, VALIDATION_PREFIX, source.class_names,
            val_shards, shuffle, seed, root,
        )
    write_json_atomically(output_dir / DATASET_INFO, info)
    return info
