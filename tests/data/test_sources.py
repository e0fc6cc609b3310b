"""The `--data` dispatcher: spec parsing, every source yielding the same batches, `data info`."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from se_keras import cli
from se_keras.data import eval_dataset
from se_keras.data import get_source
from se_keras.data import Preprocessing
from se_keras.data import sources
from se_keras.data import train_dataset


def test_parse_spec():
    assert sources.parse_spec(None) == ("digits", "")
    assert sources.parse_spec("tfds:imagenette/320px-v2") == ("tfds", "imagenette/320px-v2")
    assert sources.parse_spec("folder:/x") == ("folder", "/x")
    with pytest.raises(ValueError, match="Received: data='nope-not-a-path'"):
        sources.parse_spec("nope-not-a-path")


def _batches_summary(source, num_classes=10):
    preprocessing = Preprocessing(size=24, crop_pct=1.0)
    ds = eval_dataset(source.validation, num_classes=num_classes, global_batch_size=8,
                      preprocessing=preprocessing, pad=False)
    shapes, dtypes, labels = set(), set(), []
    for images, one_hot in ds:
        shapes.add((tuple(images.shape[1:]), tuple(one_hot.shape[1:])))
        dtypes.add((images.dtype, one_hot.dtype))
        labels.extend(np.argmax(one_hot.numpy(), axis=-1).tolist())
    train = train_dataset(source.train, num_classes=num_classes, global_batch_size=8,
                          preprocessing=preprocessing)
    images, one_hot = next(iter(train))
    return {"eval_shapes": shapes, "eval_dtypes": dtypes, "labels": sorted(labels),
            "train": (tuple(images.shape), images.dtype, tuple(one_hot.shape), one_hot.dtype)}


def test_folder_tfrecord_and_tfds_sources_agree(small_cifar, tmp_path, write_tfrecords):
    import tensorflow_datasets as tfds

    folder = get_source(f"folder:{small_cifar}", val_split="3")
    output = tmp_path / "records"
    write_tfrecords(small_cifar, output, "--val-split", "3")
    records = get_source(f"tfrecord:{output}")

    # tfds through its mock: the same validation images as cifar10 examples.
    val_paths = folder.validation.paths
    val_labels = folder.validation.labels

    def as_dataset(builder, *args, **kwargs):
        images = [pathlib.Path(p).read_bytes() for p in val_paths]
        return tf.data.Dataset.from_tensor_slices({
            "image": tf.constant(images), "label": tf.constant(val_labels, tf.int64),
            "id": tf.constant([f"id{i}" for i in range(len(images))]),
        })

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        from_tfds = get_source("tfds:cifar10", val_split="test")
        # (Without tfds' metadata files the mock names the classes "0".."9".)
        assert from_tfds.num_classes == 10
        summaries = [_batches_summary(s) for s in (folder, records, from_tfds)]
    assert summaries[0] == summaries[1] == summaries[2]
    assert summaries[0]["labels"] == sorted(list(range(10)) * 3)
    assert summaries[0]["train"] == ((8, 24, 24, 3), tf.float32, (8, 10), tf.float32)


def test_data_info_command(capsys):
    assert cli.main(["data", "info", "digits"]) == 0
    out = capsys.readouterr().out
    assert "10 classes" in out and "validation: 364 examples" in out
