"""The embedded digits source: real scans, offline."""

import tensorflow as tf

from se_keras.data import get_source


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
