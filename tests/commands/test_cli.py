"""The se-keras command line: help, version, weights list, convert."""

import json
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

from se_keras import __version__
from se_keras.cli import main
from se_keras.weights import from_timm
from tests.weights import checkpoint_generator as gen
from tests.weights.test_timm_converter import FIXTURES


def test_console_script_help_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "se_keras", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("models", "weights", "convert", "train", "evaluate", "predict", "data",
                    "benchmark", "inspect", "export", "serve-check"):
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
