"""The named training recipes: each one the set of `TrainConfig` fields it changes.

A recipe is a name in `RECIPES` or a JSON file of field values (optionally
under a "train" key); `load_recipe` returns its overrides of the defaults.

Example:
>>> RECIPES["cifar"]["epochs"]
164
>>> load_recipe("paper")["batch_size"]
1024
"""

import os
import pathlib

# A recipe is the set of fields it changes from the defaults (the digits demo).
RECIPES = {
    # `se-keras train` with no arguments: SE-ResNet-20 on the embedded digits,
    # a few minutes on a laptop CPU.
    "default": {},
    # The paper (Hu et al., Sec. 6.1): synchronous SGD with momentum 0.9,
    # lr 0.6 at batch 1024, divided by 10 every 30 epochs, 100 epochs,
    # random-size crops of 224 and flips; weight decay 1e-4 as L2 on every
    # parameter (the authors' Caffe solver, as torch.optim.SGD does it).
    "paper": dict(
        model="SEResNet50", data="tfds:imagenet2012", image_size=224, crop_pct=0.875,
        crop="inception", area_min=0.08, flip=True, label_smoothing=0.0,
        batch_size=1024, epochs=100, optimizer="sgd", lr=0.6, lr_batch_size=1024,
        momentum=0.9, nesterov=False, weight_decay=1e-4, weight_decay_mode="coupled",
        decay_bn_and_bias=True, schedule="step",
        lr_boundaries=[0.3, 0.6, 0.9], lr_decay=0.1, warmup_epochs=0.0,
        checkpoint_every_steps=5000, eval_every_epochs=1, log_every_steps=100,
    ),
    # A modern ImageNet recipe ("Bag of Tricks", He et al. 2019): lr 0.1 per
    # 256 images, 5-epoch linear warmup, cosine decay, label smoothing 0.1,
    # Nesterov momentum, L2 weight decay 1e-4 on weights only (no decay of
    # biases and BatchNorm parameters, also timm's default).
    "modern": dict(
        model="SEResNet50", data="tfds:imagenet2012", image_size=224, crop_pct=0.875,
        crop="inception", area_min=0.08, flip=True, label_smoothing=0.1,
        batch_size=1024, epochs=100, optimizer="sgd", lr=0.4, lr_batch_size=1024,
        momentum=0.9, nesterov=True, weight_decay=1e-4, weight_decay_mode="coupled",
        decay_bn_and_bias=False, schedule="cosine",
        warmup_epochs=5.0, checkpoint_every_steps=5000, eval_every_epochs=1,
        log_every_steps=100,
    ),
    # CIFAR (He et al. 2016, as in the paper's CIFAR tables): pad-4 crops
    # and flips, SGD 0.1 at batch 128, L2 weight decay 1e-4, divided by 10
    # at 50% and 75% of training (32k and 48k of 64k iterations, ~164 epochs).
    "cifar": dict(
        model="SEResNet20", data="tfds:cifar10", image_size=32, crop_pct=1.0,
        crop="pad", padding=4, flip=True, label_smoothing=0.0,
        batch_size=128, epochs=164, optimizer="sgd", lr=0.1, lr_batch_size=128,
        momentum=0.9, nesterov=False, weight_decay=1e-4, weight_decay_mode="coupled",
        decay_bn_and_bias=True, schedule="step",
        lr_boundaries=[0.5, 0.75], lr_decay=0.1, warmup_epochs=0.0,
        cache=True, checkpoint_every_steps=1000, log_every_steps=50,
    ),
}



def load_recipe(recipe):
    """A recipe's overrides: a name in `RECIPES` or a JSON file of field values."""
    if recipe in RECIPES:
        return dict(RECIPES[recipe])
    path = pathlib.Path(os.path.expanduser(str(recipe)))
    if path.suffix == ".json" and path.exists():
        from se_keras._files import read_json

        data = read_json(path, "recipe file", "recipe")
        if not isinstance(data, dict):
            raise ValueError(f"The recipe file {path} must hold a JSON object. "
                             f"Received: recipe={recipe!r}")
        return dict(data.get("train", data))
    raise ValueError(
        f"Unknown recipe; known recipes: {', '.join(RECIPES)}, or a .json file of "
        f"TrainConfig fields. Received: recipe={recipe!r}"
    )
