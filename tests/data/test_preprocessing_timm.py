"""The eval preprocessing against timm's eval transform, and `pil_resize` against PIL.

timm's outputs come from tests/fixtures/images/timm_eval.npz, written by
tests/fixtures/make_preprocessing_fixtures.py (torch and timm are not
needed here). The sources are scikit-learn's two photographs, read from the
installed package, and the variants in tests/fixtures/images/.
"""

import hashlib
import io
import math
import pathlib

import numpy as np
import PIL
import pytest
import sklearn
import tensorflow as tf
from PIL import Image

from se_keras._constants import IMAGENET_MEAN
from se_keras._constants import IMAGENET_STD
from se_keras.data.pil_resize import pil_resize
from se_keras.data.preprocessing import decode_image
from se_keras.data.preprocessing import eval_preprocess

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "images"
SKLEARN_IMAGES = pathlib.Path(sklearn.__file__).parent / "datasets" / "images"
MEAN = np.array(IMAGENET_MEAN, np.float32)
STD = np.array(IMAGENET_STD, np.float32)
FILTERS = {
    "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING, "lanczos": Image.Resampling.LANCZOS,
}
# Pillow 13 resizes vertically first when the height loses more than twice
# as many pixels as the width; pil_resize follows it, earlier Pillows do not.
PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13


def _load_fixtures():
    data = np.load(FIXTURES / "timm_eval.npz")
    return {
        "digests": dict(zip(data["names"].tolist(), data["digests"].tolist())),
        "small": dict(zip(data["small_names"].tolist(), data["small"])),
        "sources": dict(zip(data["source_names"].tolist(), data["source_digests"].tolist())),
    }


TIMM = _load_fixtures()
# {interpolation: [(image name, size, crop_pct, fixture key)]}
CASES = {}
for _key in TIMM["digests"]:
    _name, _interpolation, _size, _crop_pct = _key.split("|")
    CASES.setdefault(_interpolation, []).append((_name, int(_size), float(_crop_pct), _key))


def _sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _source_bytes(name):
    """The image's bytes, or None if the installed scikit-learn ships another photograph."""
    path = FIXTURES / name if (FIXTURES / name).exists() else SKLEARN_IMAGES / name
    data = path.read_bytes()
    return data if hashlib.sha256(data).hexdigest() == TIMM["sources"][name] else None


def _pil_reference_crop(data, size, crop_pct, interpolation):
    """timm's eval Resize + CenterCrop with PIL alone (the fixture script's recipe)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    target = math.floor(size / crop_pct)
    if width <= height:
        new_width, new_height = target, int(target * height / width)
    else:
        new_height, new_width = target, int(target * width / height)
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), FILTERS[interpolation])
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return np.asarray(image)[top:top + size, left:left + size]


def _timm_crop(key, data, size, crop_pct, interpolation, ours):
    """timm's uint8 crop: stored (small size), or ours or PIL's when its digest is timm's."""
    if key in TIMM["small"]:
        return TIMM["small"][key]
    if _sha256(ours) == TIMM["digests"][key]:
        return ours
    reference = _pil_reference_crop(data, size, crop_pct, interpolation)
    assert _sha256(reference) == TIMM["digests"][key], (
        f"{key}: Pillow {PIL.__version__} no longer reproduces timm's crop; regenerate the "
        "fixtures with tests/fixtures/make_preprocessing_fixtures.py"
    )
    return reference


# One test per interpolation, not per image: the suite's autouse seed
# fixture clears TensorFlow's kernel cache, so every test re-instantiates the
# resize graph (a few tenths of a second).
@pytest.mark.parametrize("interpolation", sorted(CASES))
def test_eval_preprocess_matches_timm(interpolation):
    """Every image x size: at most 1 uint8 level and 0.002 mean off timm (in fact, exact)."""
    checked, failures = 0, []
    for name, size, crop_pct, key in CASES[interpolation]:
        data = _source_bytes(name)
        if data is None:
            continue  # a scikit-learn release with other sample photographs
        pixels = decode_image(tf.constant(data))
        ours = eval_preprocess(pixels, size=size, crop_pct=crop_pct,
                               interpolation=interpolation).numpy()
        assert ours.shape == (size, size, 3) and ours.dtype == np.float32
        ours_uint8 = np.rint((ours * STD + MEAN) * 255.0).astype(np.uint8)
        expected = _timm_crop(key, data, size, crop_pct, interpolation, ours_uint8)
        # timm's tensor: ToTensor (x / 255 in float32), then Normalize.
        expected_normalized = (expected.astype(np.float32) / np.float32(255.0) - MEAN) / STD
        levels = np.abs(ours_uint8.astype(np.int32) - expected.astype(np.int32)).max()
        mean = np.abs(ours - expected_normalized).mean()
        # Lossless sources decode identically, so only the resize could
        # differ, and it must not.
        exact = np.array_equal(ours, expected_normalized)
        if levels > 1 or mean > 0.002 or (name.endswith(".png") and not exact):
            failures.append(f"{key}: max {levels} levels, mean {mean:.5f} normalized")
        checked += 1
    assert checked >= len(CASES[interpolation]) - 6  # at most the two originals skipped
    assert not failures, "\n".join(failures)


def test_eval_preprocess_rounds_float_pixels_to_uint8():
    image = np.random.default_rng(3).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    noisy = image.astype(np.float32) + np.float32(0.3)
    noisy[0, 0] = [-7.0, 300.0, 254.6]
    clipped = image.copy()
    clipped[0, 0] = [0, 255, 255]
    for interpolation in ("bilinear", "bicubic"):
        expected = eval_preprocess(clipped, size=24, interpolation=interpolation)
        got = eval_preprocess(tf.constant(noisy), size=24, interpolation=interpolation)
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_eval_preprocess_rejects_unknown_interpolation():
    with pytest.raises(ValueError, match="Received: interpolation='area'"):
        eval_preprocess(tf.zeros((8, 8, 3), tf.uint8), size=4, interpolation="area")


def _vertical_first(height, width, out_height, out_width):
    return (out_height != height and out_width != width and out_height < height
            and height - out_height > 2 * (width - out_width))


def _assert_same_as_pil(image, height, width, interpolation, crop_window=None):
    if _vertical_first(*image.shape[:2], height, width) and not PILLOW_13:
        return  # Pillow < 13 resizes these horizontally first.
    expected = np.asarray(Image.fromarray(image).resize((width, height), FILTERS[interpolation]))
    if crop_window is not None:
        top, left, crop_height, crop_width = crop_window
        expected = expected[top:top + crop_height, left:left + crop_width]
    got = pil_resize(image, height, width, interpolation, crop_window=crop_window).numpy()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(
        got, expected, err_msg=f"{interpolation} {image.shape[:2]} -> {(height, width)}")


# (input height, width, output height, width): sizes 1 and 2, one axis kept
# (Pillow skips that pass), enlarging and shrinking, odd and prime sizes,
# integer and other scales; for 2 -> 7 and 2 -> 15, nearest's running sum
# picks other pixels than floor((i + 0.5) * scale) would.
EDGE_SIZES = [
    (1, 1, 1, 1), (1, 1, 3, 5), (4, 6, 1, 1), (1, 9, 1, 4), (9, 1, 4, 1), (2, 2, 1, 1),
    (2, 2, 7, 15),
    (2, 3, 5, 2), (20, 12, 6, 6), (12, 20, 6, 12), (37, 41, 37, 17), (37, 41, 13, 41),
    (7, 40, 3, 40), (40, 7, 40, 3), (3, 5, 61, 47), (97, 89, 5, 4), (64, 48, 32, 24),
    (48, 64, 96, 128), (31, 17, 31, 17), (90, 20, 30, 15),
]


def test_pil_resize_equals_pil():
    """Every filter, bit for bit (one test: each test re-instantiates the graph)."""
    rng = np.random.default_rng(0)
    for interpolation in FILTERS:
        for height, width, out_height, out_width in EDGE_SIZES:
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            _assert_same_as_pil(image, out_height, out_width, interpolation)
        for _ in range(12):
            height, width, out_height, out_width = (int(v) for v in rng.integers(1, 90, 4))
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            _assert_same_as_pil(image, out_height, out_width, interpolation)
        # Black and white pixels make lanczos and bicubic overshoot: the clipping.
        image = (rng.integers(0, 2, (23, 29, 3)) * 255).astype(np.uint8)
        _assert_same_as_pil(image, 51, 13, interpolation)
        _assert_same_as_pil(image, 9, 61, interpolation)
        image = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
        _assert_same_as_pil(image, 30, 47, interpolation, crop_window=(3, 5, 24, 24))
        _assert_same_as_pil(image, 90, 140, interpolation, crop_window=(0, 139, 90, 1))


@pytest.mark.skipif(not PILLOW_13, reason="Pillow < 13 always resizes horizontally first")
def test_pil_resize_follows_pillow_13_pass_order():
    image = np.random.default_rng(7).integers(0, 256, (101, 80, 3), dtype=np.uint8)
    # Height loses 41 (then 39) pixels, the width 20: vertical first (then not).
    _assert_same_as_pil(image, 60, 60, "bicubic")
    _assert_same_as_pil(image[:99], 60, 60, "bicubic")
    horizontal = np.asarray(Image.fromarray(image).resize((60, 101), Image.BICUBIC))
    two_passes = np.asarray(Image.fromarray(horizontal).resize((60, 60), Image.BICUBIC))
    got = pil_resize(image, 60, 60, "bicubic").numpy()
    assert not np.array_equal(got, two_passes), "the orders should differ on this image"


def test_pil_resize_in_graph_mode_and_tf_data():
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in
              [(50, 70, 3), (70, 50, 3), (16, 9, 3)]]
    sizes = [(20, 28), (61, 43), (16, 33)]

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def resize(image, height, width):
        return pil_resize(image, height, width, "bicubic")

    for image, (height, width) in zip(images, sizes):
        expected = np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))
        np.testing.assert_array_equal(resize(image, height, width).numpy(), expected)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(zip(images, sizes)),
        output_signature=(tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([2], tf.int32)))
    dataset = dataset.map(lambda image, size: pil_resize(image, size[0], size[1], "bilinear"))
    for got, image, (height, width) in zip(dataset, images, sizes):
        expected = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
        np.testing.assert_array_equal(got.numpy(), expected)
    # eval_preprocess in a tf.data map, as the evaluation pipeline runs it.
    data = (FIXTURES / "flower_odd.png").read_bytes()
    dataset = tf.data.Dataset.from_tensors(tf.constant(data)).map(
        lambda image_bytes: eval_preprocess(decode_image(image_bytes), size=32,
                                            interpolation="bicubic"))
    eager = eval_preprocess(decode_image(tf.constant(data)), size=32, interpolation="bicubic")
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), eager.numpy())


def test_pil_resize_errors_name_the_argument():
    image = tf.zeros((4, 5, 3), tf.uint8)
    with pytest.raises(ValueError, match="Received: interpolation='area'"):
        pil_resize(image, 2, 2, "area")
    with pytest.raises(ValueError, match="Received: image.dtype=float32"):
        pil_resize(tf.zeros((4, 5, 3)), 2, 2)
    with pytest.raises(ValueError, match="Received: height=0"):
        pil_resize(image, 0, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="crop_window"):
        pil_resize(image, 3, 3, crop_window=(1, 1, 3, 3))
