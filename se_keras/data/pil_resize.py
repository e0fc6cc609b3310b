"""PIL's `Image.resize`, bit for bit, in TensorFlow ops.

timm's eval transform (hence every accuracy timm publishes) resizes with
PIL. `tf.image.resize` cannot reproduce it: it computes in float and rounds
once at the end, while PIL works on uint8 pixels in two separable passes,
with filter weights quantized to 22-bit fixed point and the intermediate
image rounded and clipped to uint8. On photographs the two differ by up to
one uint8 level (bilinear) or several (bicubic), so a model evaluated
through `tf.image.resize` sees slightly different inputs than timm's and
cannot reproduce its published accuracy exactly. This module redoes PIL's
integer arithmetic (Pillow's `src/libImaging/Resample.c` and, for
"nearest", the affine scale of `Geometry.c`) with graph ops, so that it
runs in `tf.function`, `tf.data` and an exported SavedModel, on dynamic
sizes.

The filter weights are computed in float64 with Pillow's operations in
Pillow's order, then quantized as Pillow does, so they are the same
integers. "hamming" and "lanczos" call `sin`/`cos`, whose float64 results
may differ from the C library's in the last bit; a quantized weight changes
only if such a bit straddles a rounding boundary of the 22-bit weights
(about one weight in 10**9), which no test has met. The order of the two
passes is Pillow 13's (see `_separable`); Pillow 12 and earlier always
resize horizontally first, which differs on images shrunk much more in
height than in width.

Each output pixel of a pass reads a short window of input pixels (its
filter's support times the scale), so a pass gathers, for every output row
(or column), the input rows of its window and sums them with their
weights, a bounded chunk of window taps at a time: never an (output x
input) matrix, and for a large photo a few tens of megabytes at most.

Example:
>>> import tensorflow as tf
>>> image = tf.zeros((427, 640, 3), tf.uint8)
>>> tuple(pil_resize(image, 256, 383, "bicubic").shape)
(256, 383, 3)
"""

import functools
import math

import numpy as np
import tensorflow as tf

from se_keras._constants import INTERPOLATIONS

# Resample.c's filters and their supports (half-widths, in source pixels at
# scale 1); "nearest" is not one of them (Geometry.c scales instead).
_KERNELS = ("box", "bilinear", "hamming", "bicubic", "lanczos")
_SUPPORT = {"box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0, "lanczos": 3.0}
# The graph takes the filter as a number: an index into _KERNELS, or this.
_NEAREST = len(_KERNELS)
# 32 - 8 - 2: room for 8-bit pixels times weights whose sum of absolute
# values exceeds 1, in an int32 accumulator.
_PRECISION_BITS = 22
# Largest gathered window chunk, in pixel values (int32: 4 bytes each).
_CHUNK_ELEMENTS = 1 << 21
# Resample.c writes the Hamming window's constants as C floats (0.54f,
# 0.46f), which are promoted to these doubles, not to 0.54 and 0.46.
_HAMMING_A = float(np.float32(0.54))
_HAMMING_B = float(np.float32(0.46))


def _sinc(x):
    # tf.where computes both branches: a nonzero divisor keeps the unused
    # one free of 0 / 0 (which would trip tf.debugging's NaN checks).
    safe = tf.where(tf.equal(x, 0.0), tf.ones_like(x), x) * math.pi
    return tf.where(tf.equal(x, 0.0), tf.ones_like(x), tf.sin(safe) / safe)


def _filter(name, x):
    """Resample.c's filter `name` at float64 positions `x`, operation for operation."""
    one, zero = tf.ones_like(x), tf.zeros_like(x)
    if name == "box":
        return tf.where(tf.logical_and(x > -0.5, x <= 0.5), one, zero)
    if name == "lanczos":
        # Not symmetric at the edges: [-3, 3), as Pillow writes it.
        inside = tf.logical_and(x >= -3.0, x < 3.0)
        return tf.where(inside, _sinc(x) * _sinc(x / 3.0), zero)
    x = tf.abs(x)
    if name == "bilinear":
        return tf.where(x < 1.0, 1.0 - x, zero)
    if name == "bicubic":
        # Keys' cubic with a = -0.5, in Pillow's evaluation order; (a + 2)
        # and (a + 3) are exact, as in the C source.
        a = -0.5
        near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
        return tf.where(x < 1.0, near, tf.where(x < 2.0, far, zero))
    # hamming
    safe = tf.where(tf.equal(x, 0.0), one, x) * math.pi
    value = tf.sin(safe) / safe * (_HAMMING_A + _HAMMING_B * tf.cos(safe))
    return tf.where(tf.equal(x, 0.0), one, tf.where(x >= 1.0, zero, value))


def _coefficients(kernel, in_size, out_size, start, count):
    """Windows and fixed-point weights of outputs `start .. start + count - 1`.

    `kernel` is an int32 scalar tensor, an index into `_KERNELS`.

    Returns:
        (first, index, weight): `index` (count, taps) int32 input positions
        relative to `first`, the first input position any window reads;
        `weight` (count, taps) int32 weights in units of 2**-22, zero past
        each window's end.
    """
    scale = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    filterscale = tf.maximum(scale, 1.0)
    supports = tf.constant([_SUPPORT[name] for name in _KERNELS], tf.float64)
    support = tf.gather(supports, kernel) * filterscale
    center = (tf.cast(tf.range(start, start + count), tf.float64) + 0.5) * scale
    # C's (int) casts truncate toward zero; tf.cast does the same, and the
    # clamp to 0 makes trunc and floor agree on negative values.
    xmin = tf.maximum(tf.cast(center - support + 0.5, tf.int32), 0)
    xmax = tf.minimum(tf.cast(center + support + 0.5, tf.int32), in_size)
    length = xmax - xmin
    taps = tf.reduce_max(length)
    tap = tf.range(taps)
    position = xmin[:, None] + tap[None, :]
    x = (tf.cast(position, tf.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    inside = tap[None, :] < length[:, None]
    weight = tf.switch_case(kernel, [functools.partial(_filter, name, x) for name in _KERNELS])
    weight = tf.where(inside, weight, tf.zeros_like(x))
    # The normalizing sum in C's order, left to right: a scan adds each tap
    # to the running sum, as C does (reduce_sum adds in a tree order whose
    # last bit differs, and that bit can flip a weight's rounding below).
    total = tf.math.cumsum(weight, axis=1)[:, -1]
    nonzero = tf.not_equal(total, 0.0)
    divisor = tf.where(nonzero, total, tf.ones_like(total))
    weight = tf.where(nonzero[:, None], weight / divisor[:, None], weight)
    # normalize_coeffs_8bpc: to 22-bit fixed point, halves away from zero
    # (scaling by a power of two is exact, so this is C's rounding).
    fixed = tf.sign(weight) * tf.floor(tf.abs(weight) * float(1 << _PRECISION_BITS) + 0.5)
    first = xmin[0]
    # Taps past a window's end carry weight 0; clamping keeps them in range.
    index = tf.minimum(position, in_size - 1) - first
    return first, index, tf.cast(fixed, tf.int32)


def _pass(image, index, weight):
    """One separable pass along axis 0: output row i = sum_t weight[i, t] * image[index[i, t]]."""
    out, taps = tf.shape(index)[0], tf.shape(index)[1]
    # Taps are gathered a chunk at a time, as many as fit in _CHUNK_ELEMENTS
    # (at least one): a typical photo's window is one chunk, a large
    # photo's long window is walked a few taps at a time in bounded memory.
    per_tap = out * tf.reduce_prod(tf.shape(image)[1:])
    chunk = tf.clip_by_value(_CHUNK_ELEMENTS // tf.maximum(per_tap, 1), 1, taps)
    chunks = (taps + chunk - 1) // chunk
    padding = [[0, 0], [0, chunks * chunk - taps]]

    def by_chunk(values):
        # Padded taps read row 0 with weight 0.
        values = tf.reshape(tf.pad(values, padding), [out, chunks, chunk])
        return tf.transpose(values, [1, 0, 2])

    index, weight = by_chunk(index), by_chunk(weight)
    # Fixed point: 2**21 is the rounding half of the final >> 22 (Pillow's
    # accumulator start); int32 is exact, as in C (|sum| < 2**31).
    acc = tf.fill(tf.concat([[out], tf.shape(image)[1:]], 0),
                  tf.constant(1 << (_PRECISION_BITS - 1), tf.int32))

    def body(c, acc):
        pixels = tf.cast(tf.gather(image, index[c]), tf.int32)
        return c + 1, acc + tf.reduce_sum(pixels * weight[c][:, :, None, None], axis=1)

    _, acc = tf.while_loop(lambda c, _: c < chunks, body, (0, acc), parallel_iterations=2)
    # clip8: an arithmetic shift (a floor), then clipping to [0, 255]; the
    # intermediate image of a two-pass resize is uint8, as in PIL.
    return tf.cast(tf.clip_by_value(tf.bitwise.right_shift(acc, _PRECISION_BITS), 0, 255),
                   tf.uint8)


def _nearest_index(in_size, out_size):
    """Geometry.c's ImagingScaleAffine: source index = (int) of a running sum.

    PIL starts at scale / 2 and adds the scale once per output pixel; the
    running sum rounds differently from (i + 0.5) * scale exactly where the
    product is an integer, so the sum is replayed step by step (a scan).
    """
    scale = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    steps = tf.concat([[scale * 0.5], tf.fill([out_size - 1], scale)], 0)
    position = tf.math.cumsum(steps)
    # The running sum stays below in_size by far more than its rounding
    # error, so the clamp never changes an index; it only proves the bound.
    return tf.minimum(tf.cast(position, tf.int32), in_size - 1)


def _resample(image, kernel, height, width, top, left, crop_height, crop_width):
    """Rows top .. top + crop_height - 1, columns left .. of PIL's (height, width) resize."""
    in_height, in_width = tf.shape(image)[0], tf.shape(image)[1]
    checks = [
        tf.debugging.assert_positive(tf.stack([in_height, in_width]),
                                     message="pil_resize: the image is empty"),
        tf.debugging.assert_positive(tf.stack([height, width, crop_height, crop_width]),
                                     message="pil_resize: sizes must be positive"),
        tf.debugging.assert_non_negative(
            tf.stack([top, left, height - top - crop_height, width - left - crop_width]),
            message="pil_resize: crop_window must lie inside the resized image"),
    ]
    # Every later op reads one of these, so none runs before the checks.
    with tf.control_dependencies(checks):
        image, in_height, in_width, height, width, top, left, crop_height, crop_width = (
            tf.identity(v) for v in (image, in_height, in_width, height, width, top, left,
                                     crop_height, crop_width))

    def nearest():
        rows = _nearest_index(in_height, height)[top:top + crop_height]
        cols = _nearest_index(in_width, width)[left:left + crop_width]
        return tf.gather(tf.gather(image, rows), cols, axis=1)

    def separable():
        return _separable(image, kernel, in_height, in_width, height, width, top, left,
                          crop_height, crop_width)

    return tf.cond(tf.equal(kernel, _NEAREST), nearest, separable)


def _separable(image, kernel, in_height, in_width, height, width, top, left, crop_height,
               crop_width):
    """Resample.c's two passes, for the requested window of the output."""
    row_first, row_index, row_weight = _coefficients(kernel, in_height, height, top, crop_height)
    col_first, col_index, col_weight = _coefficients(kernel, in_width, width, left, crop_width)
    # Each pass reads only the input rows and columns that some window of
    # the requested outputs uses (Pillow's box logic, also the crop's).
    image = image[row_first:row_first + tf.reduce_max(row_index) + 1,
                  col_first:col_first + tf.reduce_max(col_index) + 1]
    # Pillow skips the pass of an axis whose size does not change. Here it
    # runs: at scale 1 every filter's quantized window is a single 2**22
    # weight, so the pass copies its input exactly, and one graph serves
    # all sizes. Pillow 13 resizes vertically first when the height loses
    # more than twice as many pixels as the width (before, always
    # horizontally first); with the uint8 intermediate the two orders
    # differ by a level here and there. In the eval transform, which keeps
    # the aspect ratio, only images over twice as tall as wide do this.
    vertical_first = tf.logical_and(
        tf.logical_and(height < in_height, tf.not_equal(width, in_width)),
        in_height - height > 2 * (in_width - width))
    first_index, first_weight, second_index, second_weight = tf.cond(
        vertical_first,
        lambda: (row_index, row_weight, col_index, col_weight),
        lambda: (col_index, col_weight, row_index, row_weight))
    # Both passes run along axis 0: gathering whole rows (contiguous
    # memory) is far faster than gathering 3-byte pixels along axis 1, so
    # the horizontal pass works on the transposed image.
    image = tf.cond(vertical_first, lambda: image, lambda: _transpose(image))
    image = _transpose(_pass(image, first_index, first_weight))
    image = _pass(image, second_index, second_weight)
    return tf.cond(vertical_first, lambda: _transpose(image), lambda: image)


def _transpose(image):
    return tf.transpose(image, [1, 0, 2])


# One graph for every filter, traced once: eager callers pay no per-op
# Python cost in the loops, and graph callers (tf.data, a SavedModel) call it.
_RESAMPLE = tf.function(
    _resample,
    input_signature=[tf.TensorSpec([None, None, None], tf.uint8)]
    + [tf.TensorSpec([], tf.int32)] * 7,
    autograph=False,
)


def _check_size(name, value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def pil_resize(image, height, width, interpolation="bilinear", crop_window=None):
    """Resizes uint8 pixels exactly as `PIL.Image.resize((width, height), resample)` does.

    Args:
        image: `uint8` tensor of shape (H, W, channels), e.g. RGB.
        height: output height, a Python int or an int32 scalar tensor.
        width: output width, likewise.
        interpolation: PIL's filter: "bilinear", "bicubic", "nearest",
            "box", "hamming" or "lanczos".
        crop_window: optional (top, left, crop_height, crop_width) of the
            output: computes only that window of the resized image, equal
            to `pil_resize(...)[top:top + crop_height, left:left + crop_width]`
            at a fraction of the cost (the eval transform's center crop).

    Returns:
        `uint8` tensor of shape (height, width, channels), or
        (crop_height, crop_width, channels) with `crop_window`.

    Raises:
        ValueError: for an unknown `interpolation`, a non-uint8 or
            non-3-D `image`, or a Python int size below 1.
        tf.errors.InvalidArgumentError: at run time, for an empty image, a
            size tensor below 1 or a `crop_window` outside the output.

    Example:
    >>> import tensorflow as tf
    >>> image = tf.reshape(tf.cast(tf.range(12) * 20, tf.uint8), (2, 2, 3))
    >>> pil_resize(image, 1, 1, "box").numpy().tolist()
    [[[90, 110, 130]]]
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {', '.join(map(repr, INTERPOLATIONS))}. "
            f"Received: interpolation={interpolation!r}"
        )
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(f"`image` must be uint8. Received: image.dtype={image.dtype.name}")
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(
            f"`image` must have shape (height, width, channels). Received: "
            f"image.shape={tuple(image.shape)}"
        )
    _check_size("height", height)
    _check_size("width", width)
    if crop_window is None:
        crop_window = (0, 0, height, width)
    top, left, crop_height, crop_width = (tf.cast(v, tf.int32) for v in crop_window)
    kernel = _NEAREST if interpolation == "nearest" else _KERNELS.index(interpolation)
    resized = _RESAMPLE(image, tf.constant(kernel, tf.int32), tf.cast(height, tf.int32),
                        tf.cast(width, tf.int32), top, left, crop_height, crop_width)
    channels = image.shape[-1] if image.shape.rank == 3 else None
    static = [tf.get_static_value(v) for v in (crop_height, crop_width)]
    resized.set_shape([None if v is None else int(v) for v in static] + [channels])
    return resized
