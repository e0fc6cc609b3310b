"""applications/finetune_image_folder.py end to end: its run works with evaluate, predict and export."""

import importlib.util
import json
import pathlib

import pytest

from se_keras import cli
from se_keras.preprocessing import get_preprocessing
from se_keras.training import run_files
from tests.shared_data import cifar_train_folder

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    spec = importlib.util.spec_from_file_location(
        "finetune_image_folder", REPO / "applications" / "finetune_image_folder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run_dir = tmp_path_factory.mktemp("finetune") / "run"
    results = module.main([
        str(cifar_train_folder()), "--model", "SEResNet20", "--weights", "none",
        "--image-size", "32", "--max-per-class", "10", "--batch-size", "16", "--val-split", "2",
        "--head-epochs", "1", "--finetune-epochs", "1", "--output", str(run_dir)])
    return run_dir, results


def test_the_run_restores_strictly_and_evaluates_like_the_example(finetuned, capsys):
    """The example checkpoints a compiled model (its optimizer rides along);
    the strict restore reads only the layers."""
    run_dir, results = finetuned
    model, config = run_files.restore_model(run_dir)
    assert get_preprocessing(model).to_dict() == {
        **config["preprocessing"], "weights": get_preprocessing(model).weights}
    capsys.readouterr()
    assert cli.main(["evaluate", str(run_dir), "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # The same validation images through the same record: the example's own figure.
    assert metrics["examples"] == 20
    assert metrics["top1"] == pytest.approx(results["accuracy"], abs=1e-6)


def test_the_run_exports(finetuned, tmp_path):
    run_dir, _ = finetuned
    assert cli.main(["export", "--checkpoint", str(run_dir), "--output",
                     str(tmp_path / "served")]) == 0
    assert (tmp_path / "served" / "1" / "saved_model.pb").exists()
