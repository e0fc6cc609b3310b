"""In-process training runs: the run directory contract, commands on a run, mixed precision."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from se_keras import cli
from se_keras.preprocessing import get_preprocessing
from se_keras.training import Callback
from se_keras.training import resolve_config
from se_keras.training import run_files
from se_keras.training import train

TINY = {"image_size": 16, "batch_size": 32, "steps_per_epoch": 2, "epochs": 2,
        "warmup_epochs": 0.0, "verbose": 2, "log_every_steps": 1}


class Keep(Callback):
    def on_train_begin(self, trainer):
        self.trainer = trainer


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run with a time budget (the schedule is refitted) and an export."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    keras.utils.set_random_seed(0)
    keep = Keep()
    config = resolve_config("default", {**TINY, "epochs": 50, "time_budget_min": 0.25,
                                        "eval_every_epochs": 10, "run_dir": str(run_dir)})
    results = train(config, callbacks=[keep])
    return run_dir, results, keep.trainer


def test_run_directory_contract(finished_run):
    run_dir, results, trainer = finished_run
    config = json.loads((run_dir / "config.json").read_text())
    record = get_preprocessing(trainer.model)
    # The model entry rebuilds the model with the record it was trained with.
    assert config["model"] == {"name": "SEResNet20",
                               "kwargs": {"classes": 10, "input_shape": [16, 16, 3],
                                          "preprocessing": record.to_dict()}}
    assert config["preprocessing"] == record.to_dict()
    assert (record.size, record.crop_pct, record.interpolation) == (16, 1.0, "bilinear")
    assert config["class_names"] == [str(i) for i in range(10)]
    assert config["train"]["time_budget_min"] == 0.25
    assert config["results"]["val_examples"] == 364
    # The time budget cut the 100 nominal steps and refitted the schedule to them.
    assert results["steps"] < 100
    assert int(trainer.schedule.total_steps.numpy()) == results["steps"]
    assert 0.0 <= results["val_accuracy"] <= 1.0 and results["val_top5"] >= results["val_accuracy"]
    # restore_model, the export code's entry point, rebuilds the trained model.
    model, _ = run_files.restore_model(run_dir)
    images = tf.random.stateless_normal((4, 16, 16, 3), [1, 2])
    np.testing.assert_allclose(model(images), trainer.model(images, training=False), atol=1e-6)
    restored = get_preprocessing(model)
    assert restored == record.replace(weights=restored.weights)
    assert restored.weights.endswith(f"checkpoints/ckpt-{results['steps']}")
    checkpoint = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    assert checkpoint.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == results["steps"]
    # The checkpoint carries the record too.
    saved = checkpoint.get_tensor("preprocessing/.ATTRIBUTES/VARIABLE_VALUE")
    assert json.loads(saved) == record.to_dict()


def test_logs_curves_and_saved_model(finished_run):
    run_dir, results, trainer = finished_run
    tags = set()
    for event_file in (run_dir / "logs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"loss", "accuracy", "learning_rate", "images_per_second",
            "top5_accuracy"} <= tags
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((run_dir / "history.json").read_text())
    assert history[-1]["step"] == results["steps"] and "val_accuracy" in history[-1]
    # The one SavedModel format: export_for_serving's (image bytes in), which
    # equals the model on the run's own eval preprocessing.
    from se_keras.data import get_source
    from se_keras.data import preprocess_image
    from se_keras.export import read_metadata

    version = run_dir / "saved_model" / "1"
    assert read_metadata(version)["preprocessing"]["size"] == 16
    loaded = tf.saved_model.load(str(version))
    assert set(loaded.signatures) == {"serving_default", "preprocessed"}
    element = next(iter(get_source("digits").validation.dataset()))
    served = loaded.signatures["serving_default"](images=tf.stack([element["image"]]))
    pixels = preprocess_image(tf.io.decode_png(element["image"], channels=3),
                              get_preprocessing(trainer.model))
    expected = trainer.model(pixels[None], training=False)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert served["top_k_labels"].numpy()[0, 0].decode() in [str(i) for i in range(10)]
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


def test_evaluate_and_predict_commands(finished_run, tmp_path, capsys):
    run_dir, results, _ = finished_run
    assert cli.main(["evaluate", str(run_dir), "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # The same images through the same shared eval preprocessing.
    assert metrics["examples"] == 364
    assert metrics["top1"] == pytest.approx(results["val_accuracy"], abs=1e-6)
    assert metrics["top5"] == pytest.approx(results["val_top5"], abs=1e-6)

    from se_keras.data import get_source

    element = next(iter(get_source("digits").validation.dataset()))
    image = tmp_path / "digit.png"
    image.write_bytes(element["image"].numpy())
    assert cli.main(["predict", str(image), "--run", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image) and len(lines) == 6
    assert lines[1].split()[1] in [str(i) for i in range(10)]
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    assert cli.main(["predict", str(not_an_image), "--run", str(run_dir)]) == 2


def test_refuses_to_overwrite_a_run(finished_run):
    run_dir, _, _ = finished_run
    with pytest.raises(ValueError, match="--resume"):
        train(resolve_config("default", {**TINY, "run_dir": str(run_dir)}))


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_without_nan(precision, tmp_path):
    keep = Keep()
    config = resolve_config("default", {**TINY, "precision": precision, "export": False,
                                        "val_split": "none", "run_dir": str(tmp_path / "run")})
    results = train(config, callbacks=[keep])
    trainer = keep.trainer
    assert np.isfinite(results["train_loss"])
    assert all(np.isfinite(np.asarray(w)).all() for w in trainer.model.get_weights())
    # Compute in 16 bits, the head's softmax and the loss in float32.
    assert trainer.model.get_layer("stem_conv1").compute_dtype == precision.split("_")[1]
    assert trainer.model.get_layer("predictions").compute_dtype == "float32"
    scaled = isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")
    # The global policy is restored after training.
    assert keras.config.dtype_policy().name == "float32"
    saved = json.loads((pathlib.Path(tmp_path / "run") / "config.json").read_text())
    assert saved["runtime"]["precision"] == precision
