"""tf.data pipelines on real images: crops, determinism, resume, sharding, padding."""

import time

import numpy as np
import pytest
import tensorflow as tf

from se_keras.data import Augmentation
from se_keras.data import BatchAugmentation
from se_keras.data import decode_and_random_crop
from se_keras.data import eval_dataset
from se_keras.data import get_source
from se_keras.data import Preprocessing
from se_keras.data import train_dataset
from se_keras.data import train_preprocess


def _batches(ds, n):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(n)]


def test_cifar_jpegs_full_folder(cifar_train):
    start = time.time()
    source = get_source(f"folder:{cifar_train}", val_split="500")
    listing_seconds = time.time() - start
    assert source.num_classes == 10
    assert source.train.num_examples == 45_000 and source.validation.num_examples == 5_000
    assert listing_seconds < 60
    preprocessing = Preprocessing(size=32, crop_pct=1.0)
    images, labels = next(iter(train_dataset(
        source.train, num_classes=10, global_batch_size=64, preprocessing=preprocessing,
        augmentation=Augmentation(crop="inception"),
    )))
    assert images.shape == (64, 32, 32, 3) and labels.shape == (64, 10)
    assert np.isfinite(images.numpy()).all()
    # Normalized with the ImageNet mean and std: roughly zero-centred.
    assert -2.2 < float(tf.reduce_min(images)) and float(tf.reduce_max(images)) < 2.7
    assert len(set(np.argmax(labels, -1))) > 5  # shuffled across classes
    images, labels, weights = next(iter(eval_dataset(
        source.validation, num_classes=10, global_batch_size=100, preprocessing=preprocessing,
    )))
    assert images.shape == (100, 32, 32, 3) and float(weights.numpy().sum()) == 100


def test_fused_jpeg_crop_equals_decode_then_crop(cifar_train):
    jpeg = tf.io.read_file(str(sorted((cifar_train / "cat").glob("*.jpg"))[0]))
    for seed in ([1, 2], [3, 4], [5, 6]):
        fused = decode_and_random_crop(jpeg, tf.constant(seed, tf.int64))
        # The same window through the generic (non-JPEG) branch.
        png = tf.io.encode_png(tf.io.decode_jpeg(jpeg, channels=3))
        generic = decode_and_random_crop(png, tf.constant(seed, tf.int64))
        assert fused.shape == generic.shape
        assert fused.shape[0] * fused.shape[1] >= 0.08 * 32 * 32 - 1
        # libjpeg's cropped decoding upsamples chroma at the crop's edge
        # slightly differently; everywhere else the pixels are identical.
        diff = np.abs(fused.numpy().astype(int) - generic.numpy().astype(int))
        assert diff.max() <= 4 and (diff > 0).mean() < 0.02


def test_train_preprocess_is_a_function_of_the_seed(cifar_train):
    jpeg = tf.io.read_file(str(sorted((cifar_train / "dog").glob("*.jpg"))[0]))
    for crop in ("inception", "pad", "resize"):
        a = train_preprocess(jpeg, tf.constant([7, 8], tf.int64), size=24, crop=crop)
        b = train_preprocess(jpeg, tf.constant([7, 8], tf.int64), size=24, crop=crop)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert a.shape == (24, 24, 3) and a.dtype == tf.float32
    with pytest.raises(ValueError, match="Received: crop='random'"):
        train_preprocess(jpeg, [0, 0], crop="random")


@pytest.mark.parametrize("kind", ["folder", "tfrecord"])
def test_resume_and_worker_shards_replay_the_same_batches(kind, small_cifar, tmp_path):
    if kind == "tfrecord":
        from se_keras.data.to_tfrecords import write_tfrecords

        write_tfrecords(str(small_cifar), tmp_path / "records", num_shards=4)
        source = get_source(f"tfrecord:{tmp_path / 'records'}", val_split="none",
                            shuffle_buffer=16)
    else:
        source = get_source(f"folder:{small_cifar}", val_split="none")
    options = dict(num_classes=10, global_batch_size=8,
                   preprocessing=Preprocessing(size=16, crop_pct=1.0), seed=5,
                   steps_per_epoch=6)
    stream = _batches(train_dataset(source.train, **options), 20)
    # A run resumed at step 13 (in the third pass) sees what it would have seen.
    resumed = _batches(train_dataset(source.train, start_step=13, **options), 7)
    for a, b in zip(stream[13:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # Passes differ (reshuffled, new augmentation).
    assert not np.array_equal(stream[0][0], stream[6][0])
    if kind == "folder":
        # Two workers' half batches make up the one-process global batches.
        halves = [_batches(train_dataset(
            source.train, input_context=tf.distribute.InputContext(2, w, 2), **options), 4)
            for w in (0, 1)]
        for step in range(4):
            together = np.concatenate([halves[0][step][0], halves[1][step][0]])
            key = lambda images: sorted(images.reshape(len(images), -1).sum(1).round(3))
            assert key(together) == key(stream[step][0])


def test_eval_padding_gives_every_worker_whole_batches():
    source = get_source("digits")
    counts, batches = [], []
    for worker in range(2):
        ds = eval_dataset(source.validation, num_classes=10, global_batch_size=48,
                          preprocessing=Preprocessing(size=16),
                          input_context=tf.distribute.InputContext(2, worker, 2))
        weights = [w.numpy() for _, _, w in ds]
        batches.append(len(weights))
        assert all(len(w) == 24 for w in weights)
        counts.append(sum(float(w.sum()) for w in weights))
    assert batches[0] == batches[1] == 8  # ceil(364 / 48)
    assert sum(counts) == 364


def test_batch_augmentation_keeps_labels_distributions():
    augment = BatchAugmentation(randaugment=True, mixup_alpha=0.2, cutmix_alpha=1.0, seed=1)
    images = tf.random.stateless_uniform((8, 16, 16, 3), [1, 2], 0, 255)
    labels = tf.one_hot([0, 1, 2, 3, 0, 1, 2, 3], 4)
    for batch_seed in ([0, 1], [0, 2], [0, 3]):
        out_images, out_labels = augment(images, labels, tf.constant(batch_seed, tf.int64))
        assert out_images.shape == (8, 16, 16, 3) and out_labels.shape == (8, 4)
        np.testing.assert_allclose(out_labels.numpy().sum(-1), 1.0, atol=1e-5)
    source = get_source("digits")
    ds = train_dataset(source.train, num_classes=10, global_batch_size=8,
                       preprocessing=Preprocessing(size=16),
                       augmentation=Augmentation(crop="pad", flip=False, randaugment=True,
                                                 mixup_alpha=0.2))
    images, labels = next(iter(ds))
    assert np.isfinite(images.numpy()).all()
    np.testing.assert_allclose(labels.numpy().sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("height, width, size, crop_pct", [
    (375, 500, 224, 0.875), (451, 300, 224, 0.875), (300, 451, 224, 0.95),
    (97, 131, 28, 0.875), (32, 32, 32, 1.0),
])
def test_eval_preprocess_resizes_and_crops_like_timm(height, width, size, crop_pct):
    """timm's eval transform: torchvision Resize(int(size / crop_pct)) with PIL's bilinear
    filter, bit for bit, then CenterCrop(size)."""
    import math

    from PIL import Image

    from se_keras.data import eval_preprocess

    target = math.floor(size / crop_pct)
    if width <= height:
        new_w, new_h = target, int(target * height / width)
    else:
        new_h, new_w = target, int(target * width / height)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    image = tf.random.stateless_uniform((height, width, 3), [4, 2], 0, 256, tf.int32)
    image = tf.cast(image, tf.uint8)
    expected = Image.fromarray(image.numpy()).resize((new_w, new_h), Image.BILINEAR)
    expected = np.asarray(expected)[top:top + size, left:left + size]
    got = eval_preprocess(image, size=size, crop_pct=crop_pct, mean=(0, 0, 0), std=(1, 1, 1))
    np.testing.assert_array_equal(np.rint(got.numpy() * 255.0), expected)
