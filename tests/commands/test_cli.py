"""The se-keras command line: help, version, weights list, convert."""

import json
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

from se_keras import __version__
from se_keras.cli import main
from se_keras.applications import from_timm
from tests.weights import checkpoint_generator as gen
from tests.weights.test_timm_converter import FIXTURES


def test_console_script_help_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "se_keras", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("models", "weights", "convert", "train", "evaluate", "predict", "data",
                    "benchmark", "inspect", "explain", "export", "serve-check"):
        assert command in out
    version = subprocess.run(
        [sys.executable, "-m", "se_keras", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.strip() == f"se-keras {__version__}"


def test_weights_list(capsys):
    assert main(["weights", "list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["builder"] == "SEResNet18"
    legacy50 = next(r for r in rows if r["timm name"] == "legacy_seresnet50.in1k")
    assert legacy50["hash"] == "sha256 ce0d4300..." and legacy50["top-1"] == 77.65
    # Every row is verified by a hash (the hub rows by timm's release file).
    assert all(r["hash"].startswith("sha256 ") for r in rows)
    ra2 = next(r for r in rows if r["timm name"] == "seresnet50.ra2_in1k")
    assert ra2["hash"] == "sha256 8efdb4bb..." and ra2["hub id"] == "timm/seresnet50.ra2_in1k"
    assert main(["weights", "list"]) == 0
    assert "| SENet154 | legacy_in1k |" in capsys.readouterr().out


def test_convert_writes_loadable_weights(tmp_path, capsys):
    path = next(p for p in FIXTURES if p.stem == "seresnext26d_32x4d")
    keys_shapes, stats, _, meta = gen.load_fixture(path)
    source = tmp_path / "ckpt.safetensors"
    save_file(gen.generate(keys_shapes, meta["seed"], meta["residual_bn"], stats), str(source))
    output = tmp_path / "out" / "x.weights.h5"
    assert main(["convert", "seresnext26d_32x4d", str(source), str(output)]) == 0
    assert "wrote" in capsys.readouterr().out
    from se_keras.applications import SEResNeXt26D

    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype("float32")
    converted = SEResNeXt26D(weights=str(output))
    reference = from_timm("seresnext26d_32x4d", source)
    np.testing.assert_array_equal(np.asarray(converted(x)), np.asarray(reference(x)))
    assert main(["convert", "seresnext26d_32x4d", str(source), str(tmp_path / "x.h5")]) == 2
    assert "Received: output=" in capsys.readouterr().err


def test_predict_answers_every_good_image_and_names_the_bad_one(tmp_path, capsys):
    from se_keras.data import get_source

    folder = tmp_path / "digits"
    (folder / "more").mkdir(parents=True)
    elements = list(get_source("digits").validation.dataset().take(2).as_numpy_iterator())
    (folder / "a.png").write_bytes(elements[0]["image"])
    (folder / "more" / "b.png").write_bytes(elements[1]["image"])
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(elements[0]["image"][:40])
    code = main(["predict", str(folder), str(truncated), "--model", "SEResNet20",
                 "--weights", "none", "--top", "2"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.out.splitlines()
    assert lines[0] == str(folder / "a.png") and lines[3] == str(folder / "more" / "b.png")
    assert len(lines) == 6  # two answers of two classes each
    assert captured.err.strip() == (
        f"se-keras predict: error: {truncated}: " + captured.err.split(": ", 3)[-1].strip())
    assert "not a decodable image" in captured.err


def test_serve_check_names_a_missing_image(tmp_path, capsys):
    assert main(["serve-check", str(tmp_path), "--image", str(tmp_path / "missing.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"se-keras serve-check: error: No such image file. Received: " \
                          f"image={str(tmp_path / 'missing.jpg')!r}"


def test_export_names_a_truncated_weights_file(tmp_path, capsys):
    from se_keras.applications import SEResNet20

    good = tmp_path / "good.weights.h5"
    SEResNet20(weights=None, classes=10).save_weights(good)
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    code = main(["export", "--model", "SEResNet20", "--weights", str(broken),
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"Cannot load the weights file {broken} (" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
