"""Training preprocessing: random crops fused with decoding, flips, batch augmentation.

Model Garden's split, kept here: `decode_and_random_crop` turns encoded
bytes into a cropped image (for JPEG without decoding the discarded
pixels), `train_preprocess` turns one example's bytes into a training image,
and `BatchAugmentation` applies core Keras' RandAugment, MixUp and CutMix to
whole batches. Normalization comes last (`se_keras.data.normalize`), after
the batch augmentations, which expect pixels in [0, 255].

Every random choice per example is a stateless op driven by a seed derived
from (run seed, pass over the data, example position). The same example at
the same position therefore gets the same crop and flip on any number of
workers and after a resume, which is what makes interrupted and distributed
runs reproducible.

Example:
>>> import tensorflow as tf
>>> png = tf.io.encode_png(tf.zeros((40, 30, 3), tf.uint8))
>>> image = train_preprocess(png, seed=[0, 1], size=24)
>>> tuple(image.shape), image.dtype.name
((24, 24, 3), 'float32')
"""

import tensorflow as tf

from se_keras.data.preprocessing import decode_image
from se_keras.data.preprocessing import INTERPOLATIONS

CROPS = ("inception", "pad", "resize")


def _crop_window(image_shape, seed, area_range, aspect_ratio_range, max_attempts=10):
    """An Inception-style crop window [y, x, height, width] for an image of `image_shape`.

    `use_image_if_no_bounding_boxes` with the whole image as the "object"
    makes `min_object_covered` a lower bound on the crop's area fraction;
    after `max_attempts` failed tries the op returns the whole image.
    """
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=whole,
        seed=seed,
        min_object_covered=area_range[0],
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    offset_y, offset_x, _ = tf.unstack(begin)
    height, width, _ = tf.unstack(size)
    return tf.stack([offset_y, offset_x, height, width])


def decode_and_random_crop(
    image_bytes, seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3)
):
    """Decodes an image and takes an Inception-style random crop of it.

    JPEG bytes go through `tf.image.decode_and_crop_jpeg`, which decodes only
    the crop window (the bulk of ImageNet decoding time saved); other
    formats are decoded whole, then cropped.

    Args:
        image_bytes: scalar `tf.string`, an encoded JPEG, PNG, GIF or BMP.
        seed: shape-[2] integer tensor for the stateless sampler.
        area_range: the crop's area as a fraction of the image's, (min, max).
        aspect_ratio_range: the crop's width / height, (min, max).

    Returns:
        A `uint8` tensor of shape (crop height, crop width, 3).

    Example:
    >>> jpeg = tf.io.encode_jpeg(tf.zeros((64, 48, 3), tf.uint8))
    >>> crop = decode_and_random_crop(jpeg, seed=[1, 2])
    >>> crop.shape.rank, crop.dtype.name
    (3, 'uint8')
    """

    def jpeg():
        shape = tf.image.extract_jpeg_shape(image_bytes)
        window = _crop_window(shape, seed, area_range, aspect_ratio_range)
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def other():
        image = decode_image(image_bytes)
        window = _crop_window(tf.shape(image), seed, area_range, aspect_ratio_range)
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def random_pad_crop(image, seed, size, padding=4):
    """The CIFAR ResNet augmentation: resize to `size`, zero-pad, random `size` crop.

    Args:
        image: uint8 or float tensor (H, W, 3).
        seed: shape-[2] integer tensor.
        size: output height and width.
        padding: zero pixels added on each side before cropping.

    Returns:
        float32 tensor (size, size, 3) in [0, 255].

    Example:
    >>> random_pad_crop(tf.zeros((32, 32, 3), tf.uint8), [0, 0], 32).shape
    TensorShape([32, 32, 3])
    """
    image = _resize(image, size, "bilinear")
    image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(image, [size, size, 3], seed=seed)


# The random-resized crop resizes with tf.image's fused kernels (speed matters
# more than PIL's exact rounding for a random augmentation); each PIL filter
# name maps to tf.image's nearest method.
_TF_METHODS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest",
               "box": "area", "hamming": "bilinear", "lanczos": "lanczos3"}


def _resize(image, size, interpolation):
    interpolation = _TF_METHODS[interpolation]
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)

    def resize(antialias):
        def apply():
            resized = tf.image.resize(image, [size, size], method=interpolation,
                                      antialias=antialias)
            return tf.clip_by_value(resized, 0.0, 255.0)

        return apply

    # Antialiasing (as in eval) only when shrinking: it changes nothing when
    # enlarging, where it would cost half the throughput on small images.
    shrink = tf.logical_or(shape[0] > size, shape[1] > size)
    same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
    image = tf.case([(same, lambda: image), (shrink, resize(True))], default=resize(False))
    image.set_shape([size, size, 3])
    return image


def train_preprocess(
    image_bytes,
    seed,
    size=224,
    crop="inception",
    area_range=(0.08, 1.0),
    aspect_ratio_range=(3 / 4, 4 / 3),
    padding=4,
    flip=True,
    interpolation="bilinear",
):
    """One example's training transform: random crop (fused with decoding), resize, flip.

    Args:
        image_bytes: scalar `tf.string` with an encoded image.
        seed: shape-[2] integer tensor; the same seed gives the same result.
        size: output height and width.
        crop: "inception" (random-resized crop, the paper's), "pad" (the
            CIFAR ResNets' pad-and-crop) or "resize" (no crop).
        area_range, aspect_ratio_range: the Inception crop's ranges.
        padding: pixels of zero padding for `crop="pad"`.
        flip: random horizontal flip (turn off for digits or text).
        interpolation: resize filter, one of PIL's names ("bilinear",
            "bicubic", "nearest", "box", "hamming", "lanczos"; tf.image's
            nearest equivalent is used).

    Returns:
        float32 tensor (size, size, 3) with pixels in [0, 255], not yet
        normalized.

    Example:
    >>> png = tf.io.encode_png(tf.zeros((32, 32, 3), tf.uint8))
    >>> train_preprocess(png, [0, 0], size=32, crop="pad").shape
    TensorShape([32, 32, 3])
    """
    if crop not in CROPS:
        raise ValueError(
            f"`crop` must be one of {', '.join(map(repr, CROPS))}. Received: crop={crop!r}"
        )
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {', '.join(map(repr, INTERPOLATIONS))}. "
            f"Received: interpolation={interpolation!r}"
        )
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    if crop == "inception":
        image = decode_and_random_crop(image_bytes, crop_seed, area_range, aspect_ratio_range)
        image = _resize(image, size, interpolation)
    elif crop == "pad":
        image = random_pad_crop(decode_image(image_bytes), crop_seed, size, padding)
    else:
        image = _resize(decode_image(image_bytes), size, interpolation)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


class BatchAugmentation:
    """RandAugment, MixUp and CutMix from core Keras, applied to a batch in tf.data.

    MixUp and CutMix mix labels, so labels must be one-hot. With both
    enabled each batch gets one of the two, chosen at random (timm's
    `switch_prob` of 0.5).

    Args:
        randaugment: apply `keras.layers.RandAugment` to each image.
        randaugment_ops: RandAugment's `num_ops`.
        randaugment_magnitude: RandAugment's `factor` in [0, 1].
        mixup_alpha: MixUp's alpha; 0 disables MixUp.
        cutmix_alpha: CutMix's factor; 0 disables CutMix.
        seed: integer seed of the Keras layers.

    Example:
    >>> augment = BatchAugmentation(mixup_alpha=0.2)
    >>> images, labels = augment(tf.zeros((4, 8, 8, 3)), tf.one_hot([0, 1, 2, 3], 4))
    >>> tuple(labels.shape)
    (4, 4)
    """

    def __init__(
        self,
        randaugment=False,
        randaugment_ops=2,
        randaugment_magnitude=0.5,
        mixup_alpha=0.0,
        cutmix_alpha=0.0,
        seed=0,
    ):
        import keras

        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                "`mixup_alpha` and `cutmix_alpha` must be >= 0. "
                f"Received: mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}"
            )
        self.randaugment = (
            keras.layers.RandAugment(
                value_range=(0, 255), num_ops=randaugment_ops,
                factor=randaugment_magnitude, seed=seed,
            )
            if randaugment
            else None
        )
        self.mixup = keras.layers.MixUp(alpha=mixup_alpha, seed=seed) if mixup_alpha else None
        self.cutmix = keras.layers.CutMix(factor=cutmix_alpha, seed=seed) if cutmix_alpha else None
        self.seed = seed

    @property
    def enabled(self):
        return any(x is not None for x in (self.randaugment, self.mixup, self.cutmix))

    def __call__(self, images, labels, batch_seed=None):
        if self.randaugment is not None:
            images = self.randaugment(images, training=True)
        mixers = [m for m in (self.mixup, self.cutmix) if m is not None]
        if not mixers:
            return images, labels

        def mix(layer):
            def apply():
                out = layer({"images": images, "labels": labels}, training=True)
                return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)

            return apply

        if len(mixers) == 1:
            return mix(mixers[0])()
        if batch_seed is None:
            batch_seed = tf.constant([self.seed, 0], tf.int64)
        coin = tf.random.stateless_uniform([], seed=batch_seed)
        return tf.cond(coin < 0.5, mix(self.mixup), mix(self.cutmix))
