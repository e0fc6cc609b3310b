"""TFRecords written by `se-keras data to-tfrecords` and read back by the tfrecord source."""

import json

import tensorflow as tf

from se_keras.data import get_source


def test_to_tfrecords_reads_back_identically(small_cifar, tmp_path, write_tfrecords):
    output = tmp_path / "records"
    write_tfrecords(small_cifar, output, "--val-split", "1", "--val-shards", "2")
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
