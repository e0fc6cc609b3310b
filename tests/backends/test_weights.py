"""The weights path on this backend: timm checkpoints converted into the builders,
against timm's own logits (tests/fixtures/timm), and `se-keras convert`.

The checkpoints are regenerated from the fixtures' seeds with NumPy
(tests/weights/checkpoint_generator.py), written as safetensors and read by
the torch-free reader, as tests/weights/test_timm_converter.py does on
TensorFlow.
"""

import json
import pathlib

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

import se_keras
from se_keras import cli
from se_keras.applications import SEResNet18
from se_keras.applications import from_timm
from tests.backends.references import relative_error
from tests.weights import checkpoint_generator as gen

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "timm"


def _checkpoint(timm_name, tmp_path):
    keys_shapes, stats, logits, meta = gen.load_fixture(FIXTURES / f"{timm_name}.npz")
    state = gen.generate(keys_shapes, meta["seed"], meta["residual_bn"], stats)
    file = tmp_path / f"{timm_name}.safetensors"
    save_file(state, str(file))
    return file, state, logits, meta


def _inputs(meta, size):
    return np.transpose(gen.inputs(meta["seed"], size), (0, 2, 3, 1))


@pytest.mark.parametrize("timm_name", ["seresnet50", "legacy_seresnet50", "seresnext50_32x4d"])
def test_logits_match_timm(timm_name, tmp_path, record_difference):
    """At 224 and at 193 (an odd size shows padding and ceil-mode pooling errors),
    from one model without a top (the classifier applied in float64)."""
    file, state, logits, meta = _checkpoint(timm_name, tmp_path)
    features = from_timm(timm_name, file, include_top=False, pooling="avg")
    head = "last_linear" if timm_name.startswith("legacy_") else "fc"
    weight, bias = state[f"{head}.weight"].astype("float64"), state[f"{head}.bias"]
    for size in meta["sizes"]:
        pooled = np.asarray(features.predict(_inputs(meta, size), verbose=0), "float64")
        error = relative_error(pooled @ weight.T + bias, logits[size])
        assert record_difference("logits vs timm (float32)", error) <= 1e-5, (size, error)


def test_convert_command_then_the_builder_reads_its_file(tmp_path, capsys):
    """`se-keras convert` writes the weights and the record; the builder reads both."""
    file, _, logits, meta = _checkpoint("legacy_seresnet18", tmp_path)
    output = tmp_path / "out" / "legacy_seresnet18.weights.h5"
    assert cli.main(["convert", "legacy_seresnet18", str(file), str(output)]) == 0
    assert "wrote" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "out" / "legacy_seresnet18.preprocessing.json").read_text())
    assert sidecar["weights"] == str(file)
    model = SEResNet18(weights=str(output), layout="legacy", classifier_activation=None)
    record = se_keras.get_preprocessing(model)
    assert (record.interpolation, record.crop_pct, record.weights) == (
        sidecar["interpolation"], sidecar["crop_pct"], str(file))
    out = keras.ops.convert_to_numpy(model(_inputs(meta, 224), training=False))
    assert relative_error(out, logits[224]) <= 1e-5
