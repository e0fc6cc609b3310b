"""The files of a training run, a contract between training, evaluation and export.

A run directory holds:

    config.json     the resolved configuration; its "model" entry says how to
                    rebuild the network ({"name": builder name, "kwargs":
                    builder arguments}), its "preprocessing" entry how to
                    feed it (size, crop_pct, mean, std, interpolation) and
                    "class_names" what its outputs mean
    checkpoints/    `tf.train.CheckpointManager` files of a
                    `tf.train.Checkpoint` whose `model` attribute is the
                    Keras model (plus optimizer, step and iterator state)

`restore_model(run_dir)` rebuilds the model from config.json and restores
the latest checkpoint's weights, without the optimizer.
"""

import json
import pathlib

from se_keras._files import write_json_atomically  # noqa: F401 - part of this module's API

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"


def read_config(run_dir):
    """The run's config.json as a dict."""
    path = pathlib.Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise ValueError(
            f"No {CONFIG_NAME} in the run directory; is it a se-keras training run? "
            f"Received: run_dir={str(run_dir)!r}"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def build_model(model_config):
    """Builds a fresh model from a config's "model" entry ({"name", "kwargs"})."""
    from se_keras.applications import get_builder

    kwargs = dict(model_config.get("kwargs", {}))
    if "input_shape" in kwargs and kwargs["input_shape"] is not None:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    kwargs.setdefault("weights", None)
    return get_builder(model_config["name"])(**kwargs)


def restore_model(run_dir):
    """Rebuilds a run's model and loads the weights of its latest checkpoint.

    Args:
        run_dir: the training run's directory.

    Returns:
        `(model, config)`: the `keras.Model` (float32) and the run's config.

    Example:
    >>> model, config = restore_model("runs/se_resnet20")  # doctest: +SKIP
    """
    import tensorflow as tf

    config = read_config(run_dir)
    model = build_model(config["model"])
    directory = pathlib.Path(run_dir) / CHECKPOINT_DIR
    latest = tf.train.latest_checkpoint(str(directory))
    if latest is None:
        raise ValueError(
            f"No checkpoint in {directory}. Received: run_dir={str(run_dir)!r}"
        )
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model, config
