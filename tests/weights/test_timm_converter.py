"""The converter against timm: logits of timm on seeded random checkpoints (fixtures).

Each fixture (tests/fixtures/make_timm_fixtures.py, run with timm) holds a
checkpoint's keys and shapes, BatchNorm statistics calibrated in timm, and
timm's eval-mode logits at 224x224 and 193x193. The test regenerates the
checkpoint with NumPy, writes it as safetensors, loads it through the real
loader (`from_timm`) and compares logits. The odd size catches padding and
ceil-mode pooling errors that even sizes hide.
"""

import pathlib

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

from se_keras.applications import from_timm
from se_keras.weights.timm_converter import ConversionError
from tests.weights import checkpoint_generator as gen

FIXTURES = sorted((pathlib.Path(__file__).parents[1] / "fixtures" / "timm").glob("*.npz"))


def _checkpoint(path, tmp_path):
    keys_shapes, stats, logits, meta = gen.load_fixture(path)
    state = gen.generate(keys_shapes, meta["seed"], meta["residual_bn"], stats)
    file = tmp_path / f"{meta['timm_name']}.safetensors"
    save_file(state, str(file))
    return file, state, logits, meta


def test_every_registry_architecture_has_a_fixture():
    from se_keras.weights import registry

    names = {p.stem for p in FIXTURES}
    for c in registry.CHECKPOINTS:
        expected = f"legacy_{c.arch}" if c.layout == "legacy" else c.arch
        assert expected in names, f"no timm fixture for {c.name} ({expected})"


def _assert_close(out, reference):
    error = np.max(np.abs(out - reference))
    assert error <= 1e-4 * np.max(np.abs(reference)), error


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_logits_match_timm(path, tmp_path):
    """Whole network at both sizes from one model (the classifier applied in NumPy).

    The Keras head itself is checked against timm in
    `test_classifier_head_matches_timm`; building each large model once
    keeps this suite fast.
    """
    file, state, logits, meta = _checkpoint(path, tmp_path)
    features = from_timm(meta["timm_name"], file, include_top=False, pooling="avg")
    head = "last_linear" if meta["timm_name"].startswith("legacy_") else "fc"
    for size in meta["sizes"]:
        reference = logits[size]
        # Not a collapsed network: the two inputs get clearly different logits.
        assert np.std(reference[0] - reference[1]) > 0.05 * np.std(reference)
        x = np.transpose(gen.inputs(meta["seed"], size), (0, 2, 3, 1))
        pooled = np.asarray(features(x, training=False), dtype="float64")
        out = pooled @ state[f"{head}.weight"].T.astype("float64") + state[f"{head}.bias"]
        _assert_close(out, reference)
    keras.backend.clear_session()


@pytest.mark.parametrize("timm_name", ["legacy_seresnet18", "seresnet50"])
def test_classifier_head_matches_timm(timm_name, tmp_path):
    path = next(p for p in FIXTURES if p.stem == timm_name)
    file, _, logits, meta = _checkpoint(path, tmp_path)
    model = from_timm(timm_name, file, classifier_activation=None)
    assert model.input.shape == (None, 224, 224, 3)
    x = np.transpose(gen.inputs(meta["seed"], 224), (0, 2, 3, 1))
    _assert_close(np.asarray(model(x, training=False)), logits[224])
    probabilities = from_timm(timm_name, file, input_shape=(193, 193, 3))
    x = np.transpose(gen.inputs(meta["seed"], 193), (0, 2, 3, 1))
    expected = np.exp(logits[193]) / np.exp(logits[193]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(probabilities(x)), expected, atol=1e-6)


def _small_fixture(tmp_path):
    return _checkpoint(
        next(p for p in FIXTURES if p.stem == "legacy_seresnet18"), tmp_path
    )


def test_include_top_false_drops_only_the_head(tmp_path):
    file, state, _, _ = _small_fixture(tmp_path)
    model = from_timm("legacy_seresnet18", file, include_top=False, pooling="avg",
                      input_shape=(64, 64, 3))
    assert model.output.shape == (None, 512)
    np.testing.assert_array_equal(
        model.get_layer("stage4_block2_se").reduce_kernel.numpy(),
        state["layer4.1.se_module.fc1.weight"][:, :, 0, 0].T,
    )


def test_missing_unused_and_misshaped_tensors_are_errors(tmp_path):
    _, state, _, _ = _small_fixture(tmp_path)
    cases = {
        "missing": {k: v for k, v in state.items() if k != "layer2.0.conv1.weight"},
        "unused": {**state, "layer5.0.conv1.weight": np.zeros((1, 1, 1, 1), "float32")},
        "shape": {**state, "layer1.0.bn1.weight": np.zeros((3,), "float32")},
    }
    messages = {
        "missing": r"1 tensors missing \(layer2\.0\.conv1\.weight\)",
        "unused": r"1 unused \(layer5\.0\.conv1\.weight\)",
        "shape": r"Shape mismatch for layer1\.0\.bn1\.weight",
    }
    for case, bad in cases.items():
        file = tmp_path / f"{case}.safetensors"
        save_file(bad, str(file))
        with pytest.raises(ConversionError, match=messages[case]):
            from_timm("legacy_seresnet18", file, input_shape=(64, 64, 3))


def test_wrong_layout_is_an_error(tmp_path):
    file, _, _, _ = _small_fixture(tmp_path)
    # A legacy (senet.py) checkpoint into the timm (resnet.py) layout.
    with pytest.raises(ConversionError, match="does not match the 'timm' layout"):
        from_timm("seresnet18", file, input_shape=(64, 64, 3))


def test_unknown_timm_name(tmp_path):
    file, _, _, _ = _small_fixture(tmp_path)
    with pytest.raises(ValueError, match="Received: timm_name='vit_base_patch16_224'"):
        from_timm("vit_base_patch16_224", file)
