"""Resuming and restoring runs: exact, strict, and never destroying the run's records."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from se_keras import cli
from se_keras.training import Callback
from se_keras.training import resolve_config
from se_keras.training import run_files
from se_keras.training import train

# 2 epochs of 4 steps, a checkpoint every 2 steps, no export (speed).
BASE = {"image_size": 16, "batch_size": 32, "steps_per_epoch": 4, "epochs": 2,
        "warmup_epochs": 0.0, "verbose": 0, "log_every_steps": 1, "export": False,
        "checkpoint_every_steps": 2, "deterministic": True, "keep_checkpoints": 5}


def _run(run_dir, resume=False, **overrides):
    keras.utils.set_random_seed(0)
    return train(resolve_config("default", {**BASE, **overrides, "run_dir": str(run_dir)}),
                 resume=resume)


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "whole"
    _run(run_dir)
    model, _ = run_files.restore_model(run_dir)
    return run_dir, model


def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights_and_history(
    uninterrupted, tmp_path
):
    whole_dir, whole_model = uninterrupted
    run_dir = tmp_path / "broken"
    _run(run_dir, max_steps=6)  # stops in the middle of epoch 2
    assert [r["step"] for r in _history(run_dir)] == [4, 6]
    _run(run_dir, resume=True)
    model, _ = run_files.restore_model(run_dir)
    for a, b in zip(model.get_weights(), whole_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    whole, resumed = _history(whole_dir), _history(run_dir)
    assert [r["step"] for r in resumed] == [4, 8]
    for a, b in zip(whole, resumed):
        # The resumed epoch's train loss averages all of its steps (their sums
        # are in the checkpoint), not only those after the resume.
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), key


def test_resume_without_checkpoints_is_an_error_that_keeps_the_records(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    before = {name: (run_dir / name).read_bytes() for name in ("config.json", "history.json")}
    with pytest.raises(ValueError, match=r"Nothing to resume.*left as they are"):
        _run(run_dir, resume=True)
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    # Nor may a new run (without --resume) write over them.
    with pytest.raises(ValueError, match=r"already holds a run \(config.json, history.json\)"):
        _run(run_dir)
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_a_garbage_checkpoint_index_still_resumes_from_the_newest(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run_dir)
    (run_dir / "checkpoints" / "checkpoint").write_text("garbage {{{ not a proto")
    results = _run(run_dir, resume=True, epochs=3)
    assert results["steps"] == 12
    assert [r["step"] for r in _history(run_dir)] == [4, 8, 12]
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-12")


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(uninterrupted, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run_dir)
    newest = run_files.checkpoint_files(run_dir / "checkpoints")[0]
    assert newest.endswith("ckpt-8")
    data = next((run_dir / "checkpoints").glob("ckpt-8.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    results = _run(run_dir, resume=True, verbose=2)
    printed = capsys.readouterr().out
    assert "ckpt-8 is damaged" in printed and "Resumed from" in printed and "ckpt-6" in printed
    assert results["steps"] == 8
    # evaluate / predict / export restore the same way.
    model, _ = run_files.restore_model(run_dir)
    assert model is not None


def test_a_checkpoint_that_does_not_fit_the_model_names_the_variables(uninterrupted, tmp_path,
                                                                      capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run_dir)
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text())
    # A model with more SE blocks than the checkpoint: missing variables.
    config["model"]["kwargs"]["se_ratio"] = 8
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"stage1_block1_se"):
        run_files.restore_model(run_dir)
    # A model with fewer: the checkpoint's extra variables are named.
    config["model"]["kwargs"].pop("se_ratio")
    config["model"]["kwargs"]["se_stages"] = [1, 2]
    config_path.write_text(json.dumps(config))
    with pytest.raises(run_files.CheckpointMismatchError,
                       match=r"holds 143 model variables, the model se_resnet20 \d+: \d+ variable"):
        run_files.restore_model(run_dir)
    assert cli.main(["evaluate", str(run_dir)]) == 2
    assert "se-keras evaluate: error: The checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("class_names"), r"lacks 'class_names'"),
    (None, r"config.json is not valid JSON"),
])
def test_broken_run_configs_are_named(uninterrupted, tmp_path, capsys, change, message):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run_dir)
    path = run_dir / "config.json"
    if change is None:
        path.write_text("{ not json")
    else:
        config = json.loads(path.read_text())
        change(config)
        path.write_text(json.dumps(config))
    assert cli.main(["evaluate", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("se-keras evaluate: error:") and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err)


def test_only_unreadable_checkpoints_are_passed_over():
    calls = []

    def restore(path):
        calls.append(path)
        if path == "new":
            raise RuntimeError("a bug, not damage")

    with pytest.raises(RuntimeError, match="a bug"):
        run_files.restore_newest_intact(["new", "old"], restore)
    assert calls == ["new"]

    def damaged_newest(path):
        if path == "new":
            raise tf.errors.DataLossError(None, None, "truncated record")

    assert run_files.restore_newest_intact(["new", "old"], damaged_newest) == "old"


def test_checkpoints_written_before_the_record_layer_still_restore(tmp_path):
    """Before models carried their preprocessing record, checkpoints numbered the
    layers without it; TensorFlow matches layers by that number."""
    from se_keras.applications import SEResNet20
    from se_keras.preprocessing import ImagePreprocessing

    keras.utils.set_random_seed(5)
    trained = SEResNet20(weights=None, input_shape=(16, 16, 3), classes=10)
    old_layers = [op for op in trained.operations if not isinstance(op, ImagePreprocessing)]
    view = tf.Module()
    view._operations = old_layers  # the old model's layer list
    path = tf.train.Checkpoint(model=view).write(str(tmp_path / "old" / "ckpt-1"))
    fresh = SEResNet20(weights=None, input_shape=(16, 16, 3), classes=10)
    run_files.restore_strictly(path, fresh)
    for a, b in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_does_not_need_the_initial_weights_again(tmp_path):
    """The checkpoint holds the weights: a deleted initial weights file (or a
    download) must not stop a resume, nor count as a preprocessing change."""
    from se_keras.applications import SEResNet20

    initial = tmp_path / "initial.weights.h5"
    SEResNet20(weights=None, input_shape=(16, 16, 3), classes=10).save_weights(initial)
    run_dir = tmp_path / "run"
    _run(run_dir, max_steps=2, weights=str(initial))
    initial.unlink()
    results = _run(run_dir, resume=True, max_steps=4, weights=str(initial))
    assert results["steps"] == 4


def test_the_layout_of_the_weights_is_recorded_and_rebuilt(tmp_path):
    """SE-ResNet-18's default layout is legacy; a run in the other layout must
    be restored in it (both have the same weight shapes). The layout is asked
    for by its deprecated name `variant`, and recorded as `layout`."""
    run_dir = tmp_path / "run"
    _run(run_dir, model="SEResNet18", model_kwargs={"variant": "timm"}, max_steps=1, image_size=32,
         batch_size=8, steps_per_epoch=1, epochs=1, checkpoint_every_steps=0)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["kwargs"]["layout"] == "timm"
    assert "variant" not in config["model"]["kwargs"]
    model, _ = run_files.restore_model(run_dir)
    # timm's layout: the stem pool pads 1 on each side (legacy: ceil mode).
    assert model.get_layer("stem_pool_pad").padding == ((1, 1), (1, 1))
    from se_keras.applications import resnet

    assert resnet.resolve_layout("seresnext50_32x4d", "legacy_in1k") == "legacy"
    assert resnet.resolve_layout("seresnet18") == "legacy"


def _budgeted_run(run_dir, callbacks=(), resume=False):
    """A 10-minute budget over 50 epochs of 4 steps, validated every 10th epoch."""
    config = {**BASE, "epochs": 50, "time_budget_min": 10.0, "eval_every_epochs": 10,
              "run_dir": str(run_dir)}
    keras.utils.set_random_seed(0)
    return train(resolve_config("default", config), callbacks=callbacks, resume=resume)


class SpendTheBudget(Callback):
    """Stands for one step that took the whole time budget (a stall, a slow disk)."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, trainer, step, logs):
        if step == self.at_step:
            trainer.train_seconds.assign_add(1e6)


def test_a_spent_time_budget_ends_the_run_validated_and_complete(tmp_path):
    # The budget runs out mid epoch 2 (step 6); the run stops at that epoch's
    # end, and the last row, the results and the checkpoint all say so.
    run_dir = tmp_path / "budget"
    results = _budgeted_run(run_dir, [SpendTheBudget(6)])
    assert results["steps"] == 8
    history = _history(run_dir)
    assert [row["step"] for row in history] == [4, 8]
    assert "val_accuracy" not in history[0]
    assert history[-1]["val_accuracy"] == results["val_accuracy"]
    checkpoint = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    assert checkpoint.get_tensor("schedule_total_steps/.ATTRIBUTES/VARIABLE_VALUE") == 8
    # A resume finds the run complete instead of training past the budget.
    again = _budgeted_run(run_dir, resume=True)
    assert again["steps"] == 8
    assert _history(run_dir) == history


class SpendTheBudgetAtEpochEnd(Callback):
    """Stands for an epoch end (evaluation, checkpoint) that overran the budget."""

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == 1:
            trainer.train_seconds.assign_add(1e6)


def test_a_budget_spent_after_the_row_ends_the_run_within_the_next_epoch(tmp_path):
    run_dir = tmp_path / "overrun"
    results = _budgeted_run(run_dir, [SpendTheBudgetAtEpochEnd()])
    history = _history(run_dir)
    assert 4 < results["steps"] < 8
    assert [row["step"] for row in history] == [4, results["steps"]]
    assert "val_accuracy" in history[-1]
