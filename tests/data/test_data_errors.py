"""Damaged or wrong data is an error that names it, from every source, at the first bad batch."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from se_keras import cli
from se_keras.data import Preprocessing
from se_keras.data import errors
from se_keras.data import eval_dataset
from se_keras.data import get_source
from se_keras.data import train_dataset
from se_keras.data.arrays import ArraySplit
from se_keras.training import resolve_config
from se_keras.training import train

TINY = {"image_size": 16, "batch_size": 8, "epochs": 1, "warmup_epochs": 0.0, "verbose": 0,
        "export": False, "val_split": "none"}


def _train(tmp_path, data, **overrides):
    config = resolve_config("default", {**TINY, "data": data, **overrides,
                                        "run_dir": str(tmp_path / "run")})
    return train(config)


def _records(small_cifar, tmp_path):
    output = tmp_path / "records"
    assert cli.main(["data", "to-tfrecords", str(small_cifar), str(output), "--shards", "3",
                     "--no-shuffle"]) == 0
    return output


def test_labels_held_in_memory_are_checked_at_once(small_cifar):
    split = get_source(f"folder:{small_cifar}", val_split="none").train
    bad = ArraySplit("train", np.where(split.labels == 9, 12, split.labels), paths=split.paths)
    for make in (train_dataset, eval_dataset):
        with pytest.raises(ValueError, match=r"train split \(.*truck.*6 such example\(s\)\): "
                                             r"labels must be in \[0, 10\).*Received: label=12"):
            make(bad, num_classes=10, global_batch_size=8,
                 preprocessing=Preprocessing(size=16, crop_pct=1.0))


def test_one_based_tfrecords_stop_at_the_first_batch(small_cifar, tmp_path):
    records = _records(small_cifar, tmp_path)
    info_path = records / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["label_offset"] = 1  # as if the records numbered their classes from 1
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"Label out of range.*\[0, 10\).*--label-offset -1 "
                                         r"\(label_offset=-1\). Received: label=10"):
        _train(tmp_path, f"tfrecord:{records}")
    # The same check in the evaluation pipeline (no silent all-zero rows).
    source = get_source(f"tfrecord:{records}")
    ds = eval_dataset(source.train, num_classes=10, global_batch_size=60,
                      preprocessing=Preprocessing(size=16, crop_pct=1.0), pad=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=errors.LABEL_TAG):
        next(iter(ds))


def test_tfds_labels_beyond_the_classes_are_named(small_cifar):
    import tensorflow_datasets as tfds

    paths = sorted(str(p) for p in small_cifar.rglob("*.jpg"))[:8]

    def as_dataset(builder, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices({
            "image": tf.constant([pathlib.Path(p).read_bytes() for p in paths]),
            "label": tf.constant([0, 1, 2, 3, 4, 5, 6, 11], tf.int64),
            "id": tf.constant([f"id{i}" for i in range(8)]),
        })

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        source = get_source("tfds:cifar10", val_split="test")
        ds = eval_dataset(source.validation, num_classes=10, global_batch_size=8,
                          preprocessing=Preprocessing(size=16, crop_pct=1.0), pad=False)
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            next(iter(ds))
    explained = errors.explain(caught.value)
    assert "Received: label=11" in str(explained) and "[0, 10)" in str(explained)


def test_a_shard_truncated_at_a_record_boundary_is_caught_in_the_first_epoch(
    small_cifar, tmp_path
):
    records = _records(small_cifar, tmp_path)
    shard = sorted(records.glob("train-*"))[1]
    kept = list(tf.data.TFRecordDataset(str(shard)).as_numpy_iterator())[:-3]
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in kept:
            writer.write(record)
    with pytest.raises(ValueError, match=rf"{shard.name} holds {len(kept)} records; "
                                         rf"dataset_info.json says {len(kept) + 3}"):
        _train(tmp_path, f"tfrecord:{records}", steps_per_epoch=7)


def test_a_shard_truncated_mid_record_is_named(small_cifar, tmp_path):
    records = _records(small_cifar, tmp_path)
    shard = sorted(records.glob("train-*"))[2]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match=rf"Damaged TFRecord data in .*{shard.name}"):
        _train(tmp_path, f"tfrecord:{records}", steps_per_epoch=7)


def test_a_folder_with_one_class_is_refused(small_cifar, tmp_path):
    folder = tmp_path / "one"
    shutil.copytree(small_cifar / "cat", folder / "cat")
    with pytest.raises(ValueError, match=r"at least 2 class subfolders.*'cat'"):
        get_source(f"folder:{folder}")


@pytest.mark.parametrize("flags, advice", [
    ({}, r"pass --verify-images --skip-bad-files"),
    ({"skip_bad_files": True}, r"add --verify-images"),
])
def test_an_undecodable_jpeg_is_named(small_cifar, tmp_path, flags, advice):
    folder = tmp_path / "photos"
    shutil.copytree(small_cifar, folder)
    broken = folder / "cat" / "0000.jpg"
    broken.write_bytes(broken.read_bytes()[:3] + b"\x00" * 200)  # a JPEG header, then junk
    with pytest.raises(ValueError, match=rf"Cannot decode {broken}: .*{advice}"):
        _train(tmp_path, f"folder:{folder}", steps_per_epoch=7, **flags)
    # Decoding every file first finds it, and --skip-bad-files then skips it.
    results = _train(tmp_path / "again", f"folder:{folder}", steps_per_epoch=7,
                     skip_bad_files=True, verify_images=True)
    assert results["steps"] == 7


def test_an_undecodable_validation_image_is_named_too(small_cifar, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(small_cifar, folder)
    broken = folder / "truck" / "0005.jpg"  # the last of its class: held out
    broken.write_bytes(broken.read_bytes()[:3] + b"\x00" * 200)
    with pytest.raises(ValueError, match=rf"Cannot decode {broken}"):
        _train(tmp_path, f"folder:{folder}", steps_per_epoch=2, val_split="1")
