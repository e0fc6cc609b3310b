"""tf.data input pipelines for training and evaluation (Model Garden's shape).

    source split --(read, shard per worker)--> {"image": bytes, "label", ...}
        --parse_train / parse_eval--> one image --batch--> batch augmentation
        --normalize--> (images, one-hot labels[, weights]) --prefetch-->

`preprocessing` is the model's record (`se_keras.get_preprocessing(model)`):
its size, crop, interpolation and normalization; a model that normalizes
itself (`normalize_in_model`) gets pixels in [0, 255], never normalized
twice. Every label is checked against `num_classes` as it is read: a
label outside [0, num_classes) stops the pipeline with an error naming it
(see `se_keras.data.errors`) instead of becoming an all-zero one-hot row.

`train_dataset` is infinite: pass after pass over the (reshuffled) data,
starting at any global step, so a resumed run sees exactly the batches it
would have seen. `eval_dataset` is finite and, for distributed evaluation,
padded with zero-weight examples so that every worker runs the same number
of full batches (an uneven last batch would hang a multi-worker all-reduce).

Both take an optional `tf.distribute.InputContext` and then yield this
worker's per-replica batches (for `strategy.distribute_datasets_from_function`);
without one they yield global batches (for `model.fit`).

Example:
>>> from se_keras.data import get_source
>>> source = get_source("digits")
>>> ds = train_dataset(source.train, num_classes=10, global_batch_size=8,
...                    preprocessing=Preprocessing(size=16, crop_pct=1.0))
>>> images, labels = next(iter(ds))
>>> tuple(images.shape), tuple(labels.shape)
((8, 16, 16, 3), (8, 10))
"""

import dataclasses
import math

import tensorflow as tf

from se_keras.data.arrays import ArraySplit
from se_keras.data.augment import BatchAugmentation
from se_keras.data.augment import CROPS
from se_keras.data.augment import train_preprocess
from se_keras.data.errors import checked_label
from se_keras.data.preprocessing import decode_image
from se_keras.data.preprocessing import normalize
from se_keras.data.preprocessing import preprocess_image
from se_keras.preprocessing import Preprocessing  # noqa: F401 - the pipelines' record


@dataclasses.dataclass
class Augmentation:
    """Training augmentation.

    Attributes:
        crop: "inception" (random-resized crop), "pad" (CIFAR pad and crop)
            or "resize".
        area_min: smallest crop area fraction of the Inception crop.
        aspect_ratio: (min, max) width / height of the Inception crop.
        padding: zero padding of the "pad" crop.
        flip: random horizontal flips.
        randaugment: core Keras RandAugment.
        randaugment_ops, randaugment_magnitude: its `num_ops` and `factor`.
        mixup_alpha, cutmix_alpha: core Keras MixUp / CutMix (0 = off).

    Example:
    >>> Augmentation(crop="pad", flip=False).crop
    'pad'
    """

    crop: str = "inception"
    area_min: float = 0.08
    aspect_ratio: tuple = (3 / 4, 4 / 3)
    padding: int = 4
    flip: bool = True
    randaugment: bool = False
    randaugment_ops: int = 2
    randaugment_magnitude: float = 0.5
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(
                f"`crop` must be one of {', '.join(map(repr, CROPS))}. Received: crop={self.crop!r}"
            )
        if not 0.0 < self.area_min <= 1.0:
            raise ValueError(f"`area_min` must be in (0, 1]. Received: area_min={self.area_min}")


def example_seed(seed, pass_index, key):
    """The stateless seed of one example: a function of (run seed, pass, position)."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5E, tf.int64)])
    base = tf.random.experimental.stateless_fold_in(base, tf.cast(pass_index, tf.int64))
    return tf.random.experimental.stateless_fold_in(base, tf.cast(key, tf.int64))


def parse_train(element, num_classes, seed, preprocessing, augmentation):
    """One training example: random crop and flip; float32 pixels in [0, 255], one-hot label."""
    label = checked_label(element["label"], num_classes)
    image = train_preprocess(
        element["image"],
        example_seed(seed, element["pass"], element["key"]),
        size=preprocessing.size,
        crop=augmentation.crop,
        area_range=(augmentation.area_min, 1.0),
        aspect_ratio_range=tuple(augmentation.aspect_ratio),
        padding=augmentation.padding,
        flip=augmentation.flip,
        interpolation=preprocessing.interpolation,
    )
    return image, tf.one_hot(label, num_classes, dtype=tf.float32)


def parse_eval(element, num_classes, preprocessing):
    """One evaluation example through the shared `preprocess_image` (the model's record)."""
    label = checked_label(element["label"], num_classes)
    image = preprocess_image(decode_image(element["image"]), preprocessing)
    return image, tf.one_hot(label, num_classes, dtype=tf.float32)


def _context(input_context, global_batch_size):
    if input_context is None:
        return 1, 0, global_batch_size, global_batch_size
    num_workers = input_context.num_input_pipelines
    replicas = input_context.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size must be divisible by the {replicas} replicas in sync. "
            f"Received: global_batch_size={global_batch_size}"
        )
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    return num_workers, input_context.input_pipeline_id, global_batch_size // num_workers, \
        per_replica


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    # Sharding is done per worker above; tf.distribute must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def train_dataset(
    split,
    *,
    num_classes,
    global_batch_size,
    preprocessing,
    augmentation=None,
    input_context=None,
    seed=0,
    start_step=0,
    steps_per_epoch=None,
    shuffle=True,
    deterministic=True,
):
    """The infinite training stream, starting at `start_step`.

    Args:
        split: a `se_keras.data.splits.Split` (from `get_source`).
        num_classes: width of the one-hot labels.
        global_batch_size: examples per step over all replicas.
        preprocessing: the model's `se_keras.Preprocessing` record (size,
            interpolation, normalization unless the model normalizes).
        augmentation: an `Augmentation` (default: Inception crop + flip).
        input_context: `tf.distribute.InputContext`, or None for one process.
        seed: run seed; fixes the order and every augmentation.
        start_step: global steps already taken (resume).
        steps_per_epoch: for splits held in memory or as file lists, each
            pass is cut to `steps_per_epoch * global_batch_size` examples so
            that passes and epochs line up on every worker.
        shuffle: reshuffle every pass.
        deterministic: keep the element order of parallel maps (needed for
            reproducible and resumable runs; off is a little faster).

    Returns:
        A `tf.data.Dataset` of `(images, one_hot_labels)`, float32, images
        normalized (pixels in [0, 255] for a model that normalizes itself),
        batches of the per-replica size.

    Raises:
        ValueError: at once, for a split held in memory whose labels do not
            fit `num_classes`; record sources fail at the first bad batch.

    Example:
    >>> from se_keras.data import get_source
    >>> ds = train_dataset(get_source("digits").train, num_classes=10,
    ...                    global_batch_size=4, preprocessing=Preprocessing(size=16))
    >>> next(iter(ds))[0].shape
    TensorShape([4, 16, 16, 3])
    """
    augmentation = augmentation or Augmentation()
    preprocessing = Preprocessing.from_dict(preprocessing)
    check_split_labels(split, num_classes)
    num_workers, worker, worker_batch, per_replica = _context(input_context, global_batch_size)
    limit = None
    if steps_per_epoch and isinstance(split, ArraySplit):
        limit = int(steps_per_epoch) * global_batch_size
        if limit > split.num_examples:
            raise ValueError(
                f"steps_per_epoch * global_batch_size ({limit}) exceeds the {split.num_examples} "
                f"training examples. Received: steps_per_epoch={steps_per_epoch}"
            )
    if split.num_examples < global_batch_size:
        raise ValueError(
            f"The training split has {split.num_examples} examples, fewer than one global "
            f"batch. Received: global_batch_size={global_batch_size}"
        )

    def one_pass(pass_index):
        return split.dataset(
            pass_index=pass_index, shuffle=shuffle, seed=seed, num_workers=num_workers,
            worker=worker, limit=limit,
        )

    first_pass, offset = 0, 0
    if start_step:
        length = split.pass_length(num_workers=num_workers, worker=worker, limit=limit)
        first_pass, offset = divmod(int(start_step) * worker_batch, length)
    ds = one_pass(first_pass).skip(offset)
    ds = ds.concatenate(tf.data.Dataset.range(first_pass + 1, 2**62).flat_map(one_pass))
    ds = ds.map(
        lambda element: parse_train(element, num_classes, seed, preprocessing, augmentation),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    ds = ds.batch(per_replica, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=deterministic)
    batch_augment = BatchAugmentation(
        randaugment=augmentation.randaugment,
        randaugment_ops=augmentation.randaugment_ops,
        randaugment_magnitude=augmentation.randaugment_magnitude,
        mixup_alpha=augmentation.mixup_alpha,
        cutmix_alpha=augmentation.cutmix_alpha,
        seed=seed,
    )
    if batch_augment.enabled:
        def augment(index, batch):
            batch_seed = tf.stack([tf.cast(seed, tf.int64), index + int(start_step) * 1_000_003])
            return batch_augment(batch[0], batch[1], batch_seed)

        ds = ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE,
                                deterministic=deterministic)
    if not preprocessing.normalize_in_model:
        mean, std = preprocessing.mean, preprocessing.std
        ds = ds.map(lambda images, labels: (normalize(images, mean, std), labels),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic))


def eval_dataset(
    split,
    *,
    num_classes,
    global_batch_size,
    preprocessing,
    input_context=None,
    pad=True,
    cache=False,
    deterministic=True,
):
    """One pass over an evaluation split through the shared `eval_preprocess`.

    Args:
        split: a `se_keras.data.splits.Split` (from `get_source`).
        num_classes: width of the one-hot labels.
        global_batch_size: examples per step over all replicas.
        preprocessing: the model's `se_keras.Preprocessing` record.
        input_context: `tf.distribute.InputContext`, or None.
        pad: pad with zero-weight examples to whole global batches and
            yield `(images, labels, weights)`; without it the last batch is
            short and there are no weights (for `model.fit`).
        cache: keep the preprocessed images in memory after the first pass
            (evaluating every epoch then costs no decoding).
        deterministic: keep the element order.

    Returns:
        A finite `tf.data.Dataset`.

    Example:
    >>> from se_keras.data import get_source
    >>> ds = eval_dataset(get_source("digits").validation, num_classes=10,
    ...                   global_batch_size=100, preprocessing=Preprocessing(size=16))
    >>> sum(int(w.numpy().sum()) for _, _, w in ds)
    364
    """
    preprocessing = Preprocessing.from_dict(preprocessing)
    check_split_labels(split, num_classes)
    num_workers, worker, worker_batch, per_replica = _context(input_context, global_batch_size)
    ds = split.dataset(num_workers=num_workers, worker=worker, shard_by="example")
    ds = ds.map(lambda element: parse_eval(element, num_classes, preprocessing),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if cache:
        ds = ds.cache()
    if pad:
        n = split.num_examples
        mine = len(range(worker, n, num_workers))
        padded = math.ceil(n / global_batch_size) * worker_batch
        ds = ds.map(lambda image, label: (image, label, tf.constant(1.0)))
        size = preprocessing.size
        dummy = (tf.zeros([size, size, 3]), tf.zeros([num_classes]), tf.constant(0.0))
        ds = ds.concatenate(tf.data.Dataset.from_tensors(dummy).repeat(padded - mine))
        ds = ds.batch(per_replica, drop_remainder=True)
    else:
        ds = ds.batch(per_replica)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic))


def check_split_labels(split, num_classes):
    """Checks the labels of a split held in memory at once (record sources: as they are read).

    Raises:
        ValueError: naming the first label outside [0, num_classes).
    """
    import numpy as np

    labels = getattr(split, "labels", None)
    if labels is None or not len(labels):
        return
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        index = int(bad[0])
        where = split.paths[index] if getattr(split, "paths", None) else f"example {index}"
        raise ValueError(
            f"Label out of range in the {split.name} split ({where}, {bad.size} such "
            f"example(s)): labels must be in [0, {num_classes}) for {num_classes} classes. "
            f"Received: label={int(labels[index])}"
        )


def steps_for(num_examples, global_batch_size):
    """Whole training steps in one epoch (the remainder is dropped, as in Model Garden)."""
    return max(1, num_examples // global_batch_size)
