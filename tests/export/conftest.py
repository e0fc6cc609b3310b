"""Shared fixtures of the export tests: a small CIFAR model, real JPEGs, one export."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from tests.shared_data import cifar_train_folder

CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Not ImageNet's: proves the export uses the preprocessing it is given.
CIFAR_PREPROCESSING = {
    "size": 32, "crop_pct": 0.875, "mean": (0.49, 0.48, 0.45), "std": (0.25, 0.24, 0.26),
    "interpolation": "bilinear",
}
# Largest served-vs-Keras probability difference allowed.
ATOL = 1e-5


def encode(array, fmt="JPEG", mode=None, **kwargs):
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def make_model(**kwargs):
    """SE-ResNet-20 whose random head is sharpened, so that probabilities are far from
    uniform and any preprocessing error moves them visibly."""
    from se_keras.applications import SEResNet20

    model = SEResNet20(classes=10, **kwargs)
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 25.0, bias])
    return model


def cifar_jpegs(count_per_class=1):
    folder = cifar_train_folder()
    images = []
    for name in CIFAR_CLASSES:
        files = sorted((folder / name).glob("*.jpg"))[:count_per_class]
        images += [f.read_bytes() for f in files]
    return images


def large_jpeg(cifar_bytes):
    """A larger, non-square JPEG made from a CIFAR image (exercises the resize and crop)."""
    image = Image.open(io.BytesIO(cifar_bytes)).convert("RGB").resize((131, 97), Image.BICUBIC)
    return encode(np.asarray(image), quality=92)


@pytest.fixture(scope="session")
def images():
    """Real CIFAR-10 JPEGs (one per class) plus a larger JPEG made by the test."""
    jpegs = cifar_jpegs()
    return jpegs + [large_jpeg(jpegs[3])]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(model, version folder) of one export shared by the read-only tests."""
    from se_keras.export import export_for_serving

    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    model = make_model()
    base = tmp_path_factory.mktemp("export") / "se_resnet20"
    path = export_for_serving(
        model, base, preprocessing=CIFAR_PREPROCESSING, labels=CIFAR_CLASSES, verbose=False
    )
    return model, path


@pytest.fixture(scope="session")
def loaded(exported):
    import tensorflow as tf

    return tf.saved_model.load(str(exported[1]))


def keras_probabilities(model, images, preprocessing=CIFAR_PREPROCESSING, use_predict=False):
    """The reference: the Keras model on the package's eval preprocessing."""
    import tensorflow as tf

    from se_keras.data.preprocessing import decode_image
    from se_keras.data.preprocessing import eval_preprocess

    batch = np.stack([
        eval_preprocess(decode_image(tf.constant(b)), **preprocessing).numpy() for b in images
    ])
    if use_predict:
        return model.predict(batch, verbose=0)
    # A direct call: model.predict traces a new function for every model.
    return np.asarray(model(batch, training=False))
