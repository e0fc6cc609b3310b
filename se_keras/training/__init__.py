"""Training: the distributed custom loop, recipes, checkpoints and run files.

- `config`: `TrainConfig` and `resolve_config`; `recipes`: the named
  `RECIPES`; `command_line`: the `--field-name` options (none of them
  imports TensorFlow, so the command line starts fast).
- `trainer`: `train(config)`, one loop for the default, mirrored,
  multi-worker and TPU strategies, with mixed precision; its parts:
  `build` (data, model, optimizer, inputs), `steps` (the compiled steps),
  `checkpointing` (the training state), `reporting` (TensorBoard, progress,
  curves), `time_budget` and `callbacks`.
- `evaluation`: `evaluate_run` and `predict_images` for finished runs.
- `run_files`: the run-directory contract shared with the export code.

Example:
>>> from se_keras.training import resolve_config, train
>>> config = resolve_config("default", {"epochs": 2})
>>> results = train(config)  # doctest: +SKIP
"""

from se_keras.training.config import RECIPES
from se_keras.training.config import resolve_config
from se_keras.training.config import TrainConfig

_LAZY = {
    "train": "se_keras.training.trainer",
    "Trainer": "se_keras.training.trainer",
    "Callback": "se_keras.training.callbacks",
    "evaluate_run": "se_keras.training.evaluation",
    "predict_images": "se_keras.training.evaluation",
    "TrainingSchedule": "se_keras.training.schedules",
    "make_strategy": "se_keras.training.distribute",
}

__all__ = ["RECIPES", "resolve_config", "TrainConfig", *_LAZY]


def __getattr__(name):
    # TensorFlow-heavy modules load on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'se_keras.training' has no attribute {name!r}")
