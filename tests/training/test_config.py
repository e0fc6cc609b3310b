"""Recipes, overrides and the `se-keras train` command line (no training)."""

import json

import pytest

from se_keras import cli
from se_keras.training import config as config_lib
from se_keras.training import RECIPES
from se_keras.training import resolve_config


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_resolves(recipe):
    config = resolve_config(recipe)
    assert config.recipe == recipe


def test_paper_recipe_is_the_papers():
    config = resolve_config("paper")
    assert (config.optimizer, config.momentum, config.lr, config.lr_batch_size) == (
        "sgd", 0.9, 0.6, 1024)
    assert (config.schedule, config.lr_boundaries, config.lr_decay) == ("step", [0.3, 0.6, 0.9],
                                                                        0.1)
    assert (config.epochs, config.weight_decay, config.image_size) == (100, 1e-4, 224)
    # Linear scaling of the learning rate with the batch size.
    assert resolve_config("paper", {"batch_size": 256}).scaled_lr == pytest.approx(0.15)
    modern = resolve_config("modern")
    assert (modern.schedule, modern.label_smoothing) == ("cosine", 0.1)
    assert modern.warmup_epochs > 0


def test_overrides_are_parsed_like_the_command_line():
    config = resolve_config("cifar", {"model_kwargs": "se=false,se_ratio=8", "epochs": "3",
                                      "lr_boundaries": "0.5,0.8", "flip": "false",
                                      "time_budget_min": "none", "weights": "none"})
    assert config.model_kwargs == {"se": False, "se_ratio": 8}
    assert config.epochs == 3 and config.lr_boundaries == [0.5, 0.8] and config.flip is False
    assert config.time_budget_min is None


@pytest.mark.parametrize("overrides, message", [
    ({"strategy": "horovod"}, "Received: strategy='horovod'"),
    ({"batch_size": 0}, "Received: batch_size=0"),
    ({"lr_boundaries": [0.9, 0.5]}, "Received: lr_boundaries="),
    ({"label_smoothing": 1.0}, "Received: label_smoothing=1.0"),
    ({"learning_rate": 0.1}, "Received: learning_rate=0.1"),
    ({"flip": "maybe"}, "Received: flip='maybe'"),
])
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("default", overrides)


def test_recipe_from_json_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"model": "SEResNet32", "epochs": 7}))
    config = resolve_config(str(path))
    assert (config.model, config.epochs) == ("SEResNet32", 7)
    with pytest.raises(ValueError, match="Unknown recipe"):
        resolve_config("imaginary")


def test_train_command_prints_the_resolved_config(capsys):
    code = cli.main(["train", "--recipe", "cifar", "--data", "folder:/data/cifar10/train",
                     "--val-split", "500", "--model-kwargs", "se=false", "--no-flip",
                     "--batch-size", "256", "--print-config"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model_kwargs"] == {"se": False}
    assert printed["flip"] is False and printed["batch_size"] == 256
    assert printed["val_split"] == "500" and printed["schedule"] == "step"
    # Every TrainConfig field is an option.
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for field in config_lib.TrainConfig.__dataclass_fields__:
        if field != "recipe":
            assert "--" + field.replace("_", "-") in help_text


def test_resume_needs_a_run(capsys):
    assert cli.main(["train", "--resume"]) == 2
    assert "--resume needs the run" in capsys.readouterr().err


def test_a_warmup_longer_than_the_run_is_accepted_and_shortened(tmp_path, capsys):
    # The default recipe warms up for 1 epoch; `se-keras train --epochs 1` must still run.
    config = resolve_config("default", {"epochs": 1})
    assert config.warmup_epochs == 1.0
    from se_keras.training import train

    results = train(resolve_config("default", {
        "epochs": 1, "steps_per_epoch": 2, "image_size": 16, "export": False, "verbose": 2,
        "val_split": "none", "run_dir": str(tmp_path / "run")}))
    assert results["steps"] == 2
    assert "does not fit the 2-step run; shortened to 1 steps" in capsys.readouterr().out


def test_bad_numbers_name_the_flag(capsys):
    assert cli.main(["train", "--batch-size", "abc", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "`batch_size` (--batch-size) takes an integer. Received: batch_size='abc'" in err
    assert cli.main(["train", "--lr", "fast", "--print-config"]) == 2
    assert "(--lr) takes a number" in capsys.readouterr().err


def test_recipes_decay_weights_as_the_paper_means(tmp_path):
    """The paper's and the CIFAR recipes use coupled L2 on every parameter; the
    modern one leaves BatchNorm and biases undecayed (timm, Bag of Tricks)."""
    import keras

    from se_keras.applications import SEResNet20
    from se_keras.training.optimizers import L2SGD
    from se_keras.training.optimizers import make_optimizer

    for name, excluded in (("paper", False), ("cifar", False), ("modern", True)):
        config = resolve_config(name)
        assert config.weight_decay == 1e-4 and config.weight_decay_mode == "coupled"
        model = SEResNet20(weights=None, input_shape=(16, 16, 3), classes=3)
        optimizer = make_optimizer(
            config.optimizer, 0.1, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay,
            weight_decay_mode=config.resolved_weight_decay_mode,
            decay_bn_and_bias=config.decay_bn_and_bias, model=model)
        assert isinstance(optimizer, L2SGD) and not isinstance(optimizer, keras.optimizers.SGD)
        gamma = model.get_layer("stem_bn1").gamma
        kernel = model.get_layer("stem_conv1").kernel
        assert optimizer._decays(kernel)
        assert optimizer._decays(gamma) != excluded
    # Each optimizer's own meaning by default; coupled decay with AdamW is refused.
    assert resolve_config("default", {"optimizer": "adamw"}).resolved_weight_decay_mode == \
        "decoupled"
    assert resolve_config("default").resolved_weight_decay_mode == "coupled"
    with pytest.raises(ValueError, match="Received: weight_decay_mode='coupled'"):
        resolve_config("default", {"optimizer": "adamw", "weight_decay_mode": "coupled"})
