"""Dataset sources: digits, image folders, TFRecords written by `se-keras data`, tfds."""

import json
import logging
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


def test_digits_source_is_real_and_offline():
    source = get_source("digits")
    assert source.class_names == [str(i) for i in range(10)]
    assert source.train.num_examples + source.validation.num_examples == 1797
    # The last 20% of each class is held out.
    assert source.validation.num_examples == 364
    assert set(source.validation.labels) == set(range(10))
    element = next(iter(source.train.dataset()))
    assert tf.io.is_jpeg(element["image"]).numpy() == 0  # PNG bytes
    assert tf.io.decode_png(element["image"]).shape == (32, 32, 1)


def test_parse_spec():
    assert sources.parse_spec(None) == ("digits", "")
    assert sources.parse_spec("tfds:imagenette/320px-v2") == ("tfds", "imagenette/320px-v2")
    assert sources.parse_spec("folder:/x") == ("folder", "/x")
    with pytest.raises(ValueError, match="Received: data='nope-not-a-path'"):
        sources.parse_spec("nope-not-a-path")


def test_folder_holdout_per_class(small_cifar):
    source = get_source(f"folder:{small_cifar}", val_split="2")
    assert source.num_classes == 10
    assert source.train.num_examples == 40 and source.validation.num_examples == 20
    # The held-out images are the last two of each class (sorted names).
    val_names = {pathlib.Path(p).name for p in source.validation.paths}
    assert val_names == {"0004.jpg", "0005.jpg"}
    fraction = get_source(f"folder:{small_cifar}", val_split="0.5")
    assert fraction.validation.num_examples == 30
    with pytest.raises(ValueError, match="every example of class"):
        get_source(f"folder:{small_cifar}", val_split="6")


def _write_tfrecords(folder, output, *extra):
    assert cli.main(["data", "to-tfrecords", str(folder), str(output), "--shards", "3",
                     *extra]) == 0


def test_to_tfrecords_reads_back_identically(small_cifar, tmp_path):
    output = tmp_path / "records"
    _write_tfrecords(small_cifar, output, "--val-split", "1", "--val-shards", "2")
    names = sorted(p.name for p in output.iterdir())
    assert names == ["dataset_info.json", "train-00000-of-00003", "train-00001-of-00003",
                     "train-00002-of-00003", "validation-00000-of-00002",
                     "validation-00001-of-00002"]
    info = json.loads((output / "dataset_info.json").read_text())
    assert info["splits"]["train"]["num_examples"] == 50
    assert info["splits"]["validation"]["num_examples"] == 10
    assert sum(info["splits"]["train"]["shard_lengths"].values()) == 50

    feature_spec = {
        "image/encoded": tf.io.FixedLenFeature((), tf.string),
        "image/class/label": tf.io.FixedLenFeature((), tf.int64),
        "image/class/text": tf.io.FixedLenFeature((), tf.string),
        "image/filename": tf.io.FixedLenFeature((), tf.string),
        "image/height": tf.io.FixedLenFeature((), tf.int64),
        "image/format": tf.io.FixedLenFeature((), tf.string),
    }
    seen = {}
    for record in tf.data.TFRecordDataset(sorted(str(p) for p in output.glob("*-of-*"))):
        example = tf.io.parse_single_example(record, feature_spec)
        seen[example["image/filename"].numpy().decode()] = example
    assert len(seen) == 60
    class_names = sorted(p.name for p in small_cifar.iterdir())
    for path in small_cifar.rglob("*.jpg"):
        example = seen[str(path.relative_to(small_cifar))]
        assert example["image/encoded"].numpy() == path.read_bytes()
        assert class_names[int(example["image/class/label"])] == path.parent.name
        assert example["image/class/text"].numpy().decode() == path.parent.name
        assert int(example["image/height"]) == 32
        assert example["image/format"].numpy() == b"JPEG"

    # The tfrecord source sees the same classes, counts and labels.
    source = get_source(f"tfrecord:{output}")
    assert source.class_names == class_names
    assert source.train.num_examples == 50 and source.validation.num_examples == 10
    labels = [int(e["label"]) for e in source.validation.dataset().as_numpy_iterator()]
    assert sorted(labels) == list(range(10))
    # Shard lengths come from the metadata; no need to read the files.
    assert source.train.pass_length(num_workers=2, worker=1) == sum(
        info["splits"]["train"]["shard_lengths"][f"train-0000{i}-of-00003"] for i in (1,))


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


def test_folder_tfrecord_and_tfds_sources_agree(small_cifar, tmp_path):
    import tensorflow_datasets as tfds

    folder = get_source(f"folder:{small_cifar}", val_split="3")
    output = tmp_path / "records"
    _write_tfrecords(small_cifar, output, "--val-split", "3")
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


def test_bad_files_are_named_or_skipped(small_cifar, tmp_path, caplog):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(small_cifar, folder)
    corrupt = folder / "cat" / "broken.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    notes = folder / "dog" / "notes.txt"
    notes.write_text("labels")
    (folder / "dog" / ".DS_Store").write_bytes(b"\0\0")  # hidden: ignored
    with pytest.raises(ValueError, match=r"broken\.jpg is not a JPEG, PNG, GIF or BMP image"):
        get_source(f"folder:{folder}")
    corrupt.unlink()
    with pytest.raises(ValueError, match=r"notes\.txt is not an image file"):
        get_source(f"folder:{folder}")
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a JPEG header, then garbage
    notes.unlink()
    with pytest.raises(ValueError, match=r"broken\.jpg is not decodable"):
        get_source(f"folder:{folder}", verify_images=True)
    notes.write_text("labels")
    with caplog.at_level(logging.WARNING):
        source = get_source(f"folder:{folder}", skip_bad_files=True, verify_images=True,
                            val_split="none")
    assert source.train.num_examples == 60
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text
    # The command line reports the same error without a traceback.
    assert cli.main(["data", "to-tfrecords", str(folder), str(tmp_path / "out")]) == 2


def test_tfds_without_network_points_to_data_dir(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    with pytest.raises(ValueError, match="--data-dir"):
        sources.tfds_source("cifar10", data_dir=str(tmp_path), download=False)

    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(ValueError, match=r"could not be downloaded.*--data-dir.*"
                                         r"ConnectionError: Failed to resolve host"):
        get_source("tfds:cifar10", data_dir=str(tmp_path))


def test_data_info_command(capsys):
    assert cli.main(["data", "info", "digits"]) == 0
    out = capsys.readouterr().out
    assert "10 classes" in out and "validation: 364 examples" in out
