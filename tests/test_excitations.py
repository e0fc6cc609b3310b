"""Excitation statistics against a direct NumPy computation; the plots are written."""

import keras
import numpy as np

from se_keras.applications import SEResNet20
from se_keras.excitations import collect_excitations
from se_keras.excitations import default_blocks
from se_keras.excitations import plot_excitations
from se_keras.excitations import se_layers


def _direct(model, images, labels):
    """Per-class means computed from each SE layer's weights with NumPy."""
    layers = se_layers(model)
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    features = [np.asarray(f, "float64") for f in probe(images)]
    result = {}
    for layer, f in zip(layers, features):
        w1, b1, w2, b2 = [np.asarray(w, "float64") for w in layer.get_weights()]
        z = f.mean(axis=(1, 2))
        s = 1.0 / (1.0 + np.exp(-(np.maximum(z @ w1 + b1, 0.0) @ w2 + b2)))
        result[layer.name] = np.stack([s[labels == c].mean(axis=0) for c in (0, 1, 2)])
    return result


def test_statistics_match_a_direct_computation(tmp_path):
    model = SEResNet20(classes=3)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(12, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 2, 2])
    batches = [(images[:5], labels[:5]), (images[5:], keras.utils.to_categorical(labels[5:], 3))]
    stats = collect_excitations(model, batches)
    assert stats.classes == [0, 1, 2] and stats.counts == [4, 3, 5]
    assert len(stats.blocks) == 9 and stats.blocks[0] == "stage1_block1_se"
    expected = _direct(model, images, labels)
    for block in stats.blocks:
        np.testing.assert_allclose(stats.means[block], expected[block], rtol=1e-5, atol=1e-6)
        weights = np.array(stats.counts)[:, None] / 12
        np.testing.assert_allclose(stats.overall[block], (expected[block] * weights).sum(0),
                                   rtol=1e-5, atol=1e-6)
    specificity = stats.class_specificity()
    for block in stats.blocks:
        assert abs(specificity[block] - np.mean(np.std(expected[block], axis=0))) < 1e-6

    paths = plot_excitations(stats, tmp_path / "plots", class_names=["a", "b", "c"])
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [f"{b}.png" for b in default_blocks(stats.blocks)] + ["class_specificity.png"]
    )
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_model_without_se_is_refused():
    model = SEResNet20(se=False)
    try:
        collect_excitations(model, [])
    except ValueError as error:
        assert "no SqueezeExcitation layers" in str(error)
    else:
        raise AssertionError("expected ValueError")


def test_cli_on_the_embedded_digits(tmp_path, capsys):
    from se_keras.cli import main

    out = tmp_path / "plots"
    assert main(["inspect", "--model", "SEResNet20", "--data", "digits", "--batches", "2",
                 "--batch-size", "16", "--size", "32", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "32 images, " in printed and "9 SE blocks" in printed
    assert (out / "class_specificity.png").exists() and (out / "stage3_block3_se.png").exists()
