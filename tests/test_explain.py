"""Explaining one prediction against direct computations; the PNG and `se-keras explain`."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from se_keras import cli
from se_keras.applications import SEResNet20
from se_keras.data import decode_image
from se_keras.data import preprocess_image
from se_keras.explain import explain
from se_keras.explain import group_blocks
from se_keras.explain import last_stage
from se_keras.explain import load_image
from se_keras.explain import plot_explanation
from se_keras.excitations import se_layers
from se_keras.preprocessing import get_preprocessing


@pytest.fixture(scope="module")
def digit(tmp_path_factory):
    """A real digits validation image as a PNG file (8x8 upscaled to 32x32)."""
    from se_keras.data import get_source

    element = next(iter(get_source("digits").validation.dataset()))
    path = tmp_path_factory.mktemp("images") / "digit.png"
    path.write_bytes(element["image"].numpy())
    return path


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return SEResNet20(weights=None)


def _model_input(model, path):
    return preprocess_image(decode_image(tf.constant(path.read_bytes())), get_preprocessing(model))


def test_gates_and_probabilities_equal_direct_computations(model, digit):
    result = explain(model, digit, top=5)
    x = _model_input(model, digit)[None]
    # The probabilities are the model's on the shared eval path.
    probabilities = np.asarray(model(x, training=False))[0]
    np.testing.assert_allclose(result.probabilities, probabilities, rtol=1e-5, atol=1e-7)
    best = np.argsort(-probabilities)[:5]
    assert [i for i, _, _ in result.top] == list(best)
    assert [name for _, name, _ in result.top] == [str(i) for i in best]
    np.testing.assert_allclose([p for _, _, p in result.top], probabilities[best], rtol=1e-5)
    # Each gate vector is the layer's excitation of that layer's own input.
    layers = se_layers(model)
    assert list(result.gates) == [layer.name for layer in layers] and len(layers) == 9
    for layer in layers:
        feature = keras.Model(model.inputs, layer.input)(x, training=False)
        expected = np.asarray(layer.excitation(feature))[0]
        np.testing.assert_allclose(result.gates[layer.name], expected, rtol=1e-5, atol=1e-7)
        assert result.gates[layer.name].shape == (layer.input.shape[-1],)
    assert result.groups == {f"stage{s}": [f"stage{s}_block{b}_se" for b in (1, 2, 3)]
                             for s in (1, 2, 3)}
    # The input crop in pixels: the record's size, uint8.
    assert result.image.shape == (32, 32, 3) and result.image.dtype == np.uint8
    np.testing.assert_allclose(result.image, np.asarray(preprocess_image(
        decode_image(tf.constant(digit.read_bytes())),
        get_preprocessing(model).replace(normalize_in_model=True))), atol=0.5)
    # Encoded bytes and decoded pixels are the same image.
    for same in (digit.read_bytes(), np.asarray(decode_image(tf.constant(digit.read_bytes())))):
        again = explain(model, same, grad_cam=False)
        np.testing.assert_array_equal(again.probabilities, result.probabilities)
        assert again.cam is None and again.heatmap is None


def _reference_grad_cam(model, x, class_index):
    """The usual recipe (keras.io's Grad-CAM example) on a twin whose output is the logits."""
    logits_model = SEResNet20(weights=None, classifier_activation=None)
    logits_model.set_weights(model.get_weights())
    grad_model = keras.Model(logits_model.inputs, [
        logits_model.get_layer("stage3_block3_out").output, logits_model.output])
    with tf.GradientTape() as tape:
        features, logits = grad_model(x, training=False)
        score = logits[:, class_index]
    grads = tape.gradient(score, features)
    alpha = tf.reduce_mean(grads, axis=(0, 1, 2))
    return np.maximum(np.asarray(tf.reduce_sum(features[0] * alpha, axis=-1)), 0.0)


def test_grad_cam_has_the_last_stage_size_and_follows_the_target_class(model, digit):
    result = explain(model, digit)
    name, feature_map, channel_axis = last_stage(model)
    assert (name, channel_axis) == ("stage3_block3_out", -1)
    assert feature_map is model.get_layer("avg_pool").input
    assert result.cam_layer == "stage3_block3_out"
    assert result.cam.shape == (8, 8) == tuple(feature_map.shape[1:3])
    assert result.heatmap.shape == (32, 32) and result.heatmap.dtype == np.float32
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() == pytest.approx(1.0)
    assert result.target_class == result.top[0][0]
    x = _model_input(model, digit)[None]
    # The gradient of the pre-softmax score, as Selvaraju et al. define it.
    np.testing.assert_allclose(result.cam, _reference_grad_cam(model, x, result.target_class),
                               rtol=1e-4, atol=1e-6)
    other = result.top[-1][0]
    by_index = explain(model, digit, target_class=other)
    by_name = explain(model, digit, target_class=str(other))
    assert by_index.target_class == by_name.target_class == other
    np.testing.assert_array_equal(by_index.cam, by_name.cam)
    np.testing.assert_allclose(by_index.cam, _reference_grad_cam(model, x, other),
                               rtol=1e-4, atol=1e-6)
    assert np.abs(by_index.cam - result.cam).max() > 1e-3 * result.cam.max()
    # A model that outputs the logits itself needs no linear twin: the same map.
    logits_model = SEResNet20(weights=None, classifier_activation=None)
    logits_model.set_weights(model.get_weights())
    np.testing.assert_allclose(explain(logits_model, digit, target_class=other).cam,
                               by_index.cam, rtol=1e-5, atol=1e-7)
    # The target changes Grad-CAM only, not the forward pass.
    np.testing.assert_array_equal(by_index.probabilities, result.probabilities)


def test_a_model_that_normalizes_itself_gives_the_same_explanation(model, digit):
    raw = SEResNet20(weights=None, include_preprocessing=True)
    raw.set_weights(model.get_weights())
    assert get_preprocessing(raw).normalize_in_model
    a, b = explain(model, digit), explain(raw, digit)
    np.testing.assert_allclose(b.probabilities, a.probabilities, rtol=1e-4, atol=1e-6)
    for block in a.gates:
        np.testing.assert_allclose(b.gates[block], a.gates[block], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b.cam, a.cam, rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(b.image, a.image)


def test_block_selection_and_errors(model, digit):
    chosen = explain(model, digit, blocks="stage3_block2_se,stage1", grad_cam=False)
    assert list(chosen.gates) == ["stage1_block1_se", "stage1_block2_se", "stage1_block3_se",
                                  "stage3_block2_se"]
    assert list(chosen.groups) == ["stage1", "stage3"]
    with pytest.raises(ValueError, match=r"known: stage1_block1_se, .*stage3_block3_se; "
                       r"stages: stage1, stage2, stage3\. Received: blocks=\['stage9_se'\]"):
        explain(model, digit, blocks=["stage9_se"])
    with pytest.raises(ValueError, match=r"index from 0 to 9 .* Received: class=10"):
        explain(model, digit, target_class=10)
    with pytest.raises(ValueError, match=r"Received: class='cat'"):
        explain(model, digit, target_class="cat")
    with pytest.raises(ValueError, match=r"Received: image='.*missing\.jpg'"):
        load_image(digit.parent / "missing.jpg")
    text = digit.parent / "notes.png"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"Not a decodable image .* Received: image='.*notes"):
        explain(model, text)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 5\)"):
        load_image(np.zeros((2, 3, 5)))
    inputs = keras.Input((32, 32, 3))
    with pytest.raises(ValueError, match=r"inside the nested model"):
        explain(keras.Model(inputs, model(inputs)), digit)
    # A model without SE blocks still has classes and Grad-CAM.
    plain = explain(SEResNet20(weights=None, se=False), digit)
    assert plain.gates == {} and plain.groups == {} and plain.cam.shape == (8, 8)


def test_groups_are_data_driven():
    assert list(group_blocks([f"block{b}_se" for b in range(1, 14)])) == ["block"]
    names = ["mixed_5b_se", "block35_1_se", "block35_2_se", "mixed_6a_se", "block17_1_se"]
    assert group_blocks(names) == {"mixed_5b": ["mixed_5b_se"],
                                   "block35": ["block35_1_se", "block35_2_se"],
                                   "mixed_6a": ["mixed_6a_se"], "block17": ["block17_1_se"]}


def test_png_is_written_atomically_and_shows_something(model, digit, tmp_path):
    from PIL import Image

    path = plot_explanation(explain(model, digit), tmp_path / "out" / "digit.png", title="x")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(path).convert("RGB"), "float32")
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000
    # Not blank: many distinct colors (image, heatmap, bars), not one background.
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert [p.name for p in path.parent.iterdir()] == ["digit.png"]


def test_cli_with_a_builder(digit, tmp_path, capsys):
    out = tmp_path / "explained"
    assert cli.main(["explain", str(digit), "--model", "SEResNet20", "--weights", "none",
                     "--blocks", "stage3", "--class", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(digit) and len(printed) == 7
    assert "Grad-CAM of '3' at stage3_block3_out" in printed[-1]
    assert (out / "digit.explain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    missing = tmp_path / "x.jpg"
    assert cli.main(["explain", str(missing), "--model", "SEResNet20", "--weights", "none",
                     "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"se-keras explain: error: No such image file. Received: image='{missing}'"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert cli.main(["explain", str(digit), str(broken), "--model", "SEResNet20",
                     "--weights", "none", "--output", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert f"Received: image='{broken}'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()  # checked before anything is written
    assert cli.main(["explain", str(digit), "--model", "SEResNet20", "--weights", "none",
                     "--blocks", "stage4", "--output", str(out)]) == 2
    assert "known: stage1_block1_se, stage1_block2_se" in capsys.readouterr().err


def test_cli_with_a_run_uses_its_record_and_class_names(digit, tmp_path, capsys):
    from se_keras.training import resolve_config
    from se_keras.training import train
    from se_keras.training.evaluation import predict_images

    run_dir = tmp_path / "run"
    keras.utils.set_random_seed(0)
    # The smallest real run: 16 px, one step, no validation and no export.
    train(resolve_config("default", {"image_size": 16, "batch_size": 32, "steps_per_epoch": 1,
                                     "epochs": 1, "warmup_epochs": 0.0, "verbose": 0,
                                     "export": False, "val_split": "none",
                                     "run_dir": str(run_dir)}))
    capsys.readouterr()
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "digit.png").write_bytes(digit.read_bytes())
    out = tmp_path / "explained"
    assert cli.main(["explain", str(digit), str(folder), "--run", str(run_dir),
                     "--output", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    # The same top-5 as `se-keras predict`: one preprocessing path.
    (expected,) = predict_images([digit], run_dir=run_dir)
    for (name, prob), line in zip(expected.top, printed[1:6]):
        assert line.split()[1:] == [name, f"{prob:.4f}"]
    assert "at stage3_block3_out" in printed[6]
    # The folder held the same file again: a second, numbered PNG.
    assert sorted(p.name for p in out.iterdir()) == ["digit-2.explain.png", "digit.explain.png"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preprocessing"]["size"] == 16
    assert cli.main(["explain", str(digit), "--run", str(run_dir), "--weights", "imagenet"]) == 2
    assert "--weights applies to --model only" in capsys.readouterr().err
