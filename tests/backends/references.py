"""TensorFlow's outputs for the backend tests: written by a TensorFlow process, read by any.

The backend tests (this folder) compare JAX and torch against TensorFlow on
the same weights without importing TensorFlow as their backend: a process on
KERAS_BACKEND=tensorflow (the runner, tests/test_backends.py, or the
`references` fixture) writes here, for each case, the weights it used and
its output; the other backend loads the same weights and compares.

    KERAS_BACKEND=tensorflow python -m tests.backends.references DIR
"""

import pathlib
import sys

import numpy as np

# Set by tests/test_backends.py to the folder its TensorFlow process wrote.
ENV = "SE_KERAS_TF_REFERENCES"

# One small build per family, the smallest variant at a small size. The
# classifier gives logits (softmax would hide differences); 7 classes so
# that a head shape mixed up with another family's fails.
FAMILIES = {
    "resnet": ("SEResNet18", dict(input_shape=(64, 64, 3))),
    "cifar_resnet": ("SEResNet20", dict(input_shape=(32, 32, 3))),
    "inception": ("SEBNInception", dict(input_shape=(64, 64, 3))),
    "mobilenet": ("SEMobileNetV2", dict(alpha=0.35, input_shape=(64, 64, 3))),
    "shufflenet": ("SEShuffleNet", dict(scale=0.5, input_shape=(64, 64, 3))),
    "vgg": ("SEVGG16", dict(input_shape=(32, 32, 3))),
}

# (case id, layer class name, constructor arguments, input rank, data format).
LAYER_CASES = [
    (f"{name}_{rank}d_{fmt}", cls, kwargs, rank, fmt)
    for rank in (3, 4, 5)
    for fmt in ("channels_last", "channels_first")
    for name, cls, kwargs in (
        ("se", "SqueezeExcitation", dict(ratio=16)),
        ("se_hard_max", "SqueezeExcitation", dict(ratio=8, gate="hard_sigmoid", squeeze="max")),
        ("sse", "SpatialSqueezeExcitation", {}),
        ("scse", "ChannelSpatialSqueezeExcitation", dict(ratio=8, combine="max")),
    )
] + [
    (f"se_{gate}", "SqueezeExcitation", dict(ratio=4, gate=gate), 4, "channels_last")
    for gate in ("tanh", "relu")
] + [
    (f"scse_{combine}", "ChannelSpatialSqueezeExcitation", dict(ratio=4, combine=combine), 4,
     "channels_last")
    for combine in ("add", "multiply")
]

_LAYER_SHAPES = {3: (2, 7, 32), 4: (2, 5, 6, 32), 5: (2, 3, 4, 5, 32)}


def family_model(family):
    """The family's model with random weights: (builder name, model)."""
    from se_keras import applications

    name, kwargs = FAMILIES[family]
    model = applications.MODELS[name](
        weights=None, classes=7, classifier_activation=None, **kwargs
    )
    return name, model


def family_input(family):
    """A batch of two normalized images (channels_last) for the family's model."""
    size = FAMILIES[family][1]["input_shape"][0]
    return np.random.default_rng([7, size]).normal(0.0, 1.0, (2, size, size, 3)).astype(
        "float32"
    )


def layer_case(case_id):
    """(layer, input) of a layer case, the layer built with seeded float32 weights."""
    from se_keras import layers

    _, cls, kwargs, rank, data_format = next(c for c in LAYER_CASES if c[0] == case_id)
    rng = np.random.default_rng(sum(map(ord, case_id)))
    x = rng.normal(0.0, 2.0, _LAYER_SHAPES[rank]).astype("float32")
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1).copy()
    layer = getattr(layers, cls)(data_format=data_format, **kwargs)
    layer.build(x.shape)
    layer.set_weights(
        [rng.normal(0.0, 0.3, w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer, x


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|, in float64 (`actual` any backend's tensor)."""
    import keras

    actual = np.asarray(keras.ops.convert_to_numpy(actual), "float64")
    expected = np.asarray(expected, "float64")
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def write(directory, kinds=("layers", "families")):
    """Writes TensorFlow's references into `directory` (a TensorFlow process only)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "References are TensorFlow's: run with KERAS_BACKEND=tensorflow. "
            f"Received: backend={keras.backend.backend()!r}"
        )
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if "layers" in kinds:
        outputs = {}
        for case_id, *_ in LAYER_CASES:
            layer, x = layer_case(case_id)
            outputs[case_id] = keras.ops.convert_to_numpy(layer(x))
        np.savez(directory / "layers.npz", **outputs)
    if "families" in kinds:
        for family in FAMILIES:
            _, model = family_model(family)
            model.save_weights(directory / f"{family}.weights.h5")
            np.save(directory / f"{family}.npy",
                    keras.ops.convert_to_numpy(model(family_input(family), training=False)))
            keras.backend.clear_session()
    return directory


if __name__ == "__main__":
    write(sys.argv[1])
