"""The files of a training run, a contract between training, evaluation and export.

A run directory holds:

    config.json     the resolved configuration; its "model" entry says how to
                    rebuild the network ({"name": builder name, "kwargs":
                    builder arguments, among them the model's full
                    preprocessing record}), "preprocessing" the same record
                    (for reading without Keras) and "class_names" what its
                    outputs mean
    checkpoints/    `tf.train.CheckpointManager` files of a
                    `tf.train.Checkpoint` whose `model` attribute is the
                    Keras model (plus optimizer, step, the epoch's running
                    sums and the preprocessing record as a string)
    history.json    one row per epoch

`restore_model(run_dir)` rebuilds the model from config.json and restores
its weights from the newest intact checkpoint, strictly: a variable of the
model that the checkpoint lacks, or a model variable in the checkpoint that
the model lacks, is an error that names them, so a restored model never
carries random weights. A damaged newest checkpoint (truncated, unreadable)
is reported and the previous one is used.
"""

import json
import logging
import pathlib
import re

from se_keras._files import read_json
from se_keras._files import write_json_atomically  # noqa: F401 - part of this module's API

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
HISTORY_NAME = "history.json"
CHECKPOINT_DIR = "checkpoints"
# What config.json must hold for evaluate / predict / export to use a run.
REQUIRED_KEYS = ("model", "preprocessing", "class_names")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold exactly the model's variables."""


def read_config(run_dir, required=REQUIRED_KEYS):
    """The run's config.json as a dict, checked for the keys a run's users need.

    Raises:
        ValueError: no config.json, invalid JSON, or a missing key, naming it.
    """
    path = pathlib.Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise ValueError(
            f"No {CONFIG_NAME} in the run directory; is it a se-keras training run? "
            f"Received: run_dir={str(run_dir)!r}"
        )
    config = read_json(path, "run config", "run_dir")
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object. Received: run_dir={str(run_dir)!r}")
    missing = [key for key in required if key not in config]
    if missing:
        raise ValueError(
            f"{path} lacks {', '.join(repr(k) for k in missing)}, which "
            f"{'are' if len(missing) > 1 else 'is'} needed to use the run; it was not "
            f"written by se-keras train, or was edited. Received: run_dir={str(run_dir)!r}"
        )
    return config


def build_model(model_config):
    """Builds a fresh model from a config's "model" entry ({"name", "kwargs"})."""
    from se_keras.applications import get_builder

    if not isinstance(model_config, dict) or "name" not in model_config:
        raise ValueError(
            "A run's model entry must be {'name': builder, 'kwargs': {...}}. "
            f"Received: model={model_config!r}"
        )
    kwargs = dict(model_config.get("kwargs", {}))
    if "input_shape" in kwargs and kwargs["input_shape"] is not None:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    kwargs.setdefault("weights", None)
    return get_builder(model_config["name"])(**kwargs)


def checkpoint_files(directory):
    """The checkpoints in `directory`, newest (highest number) first.

    Found from the `*.index` files themselves, not from the `checkpoint`
    state file that `tf.train.latest_checkpoint` reads: that small file can
    be deleted or damaged while the checkpoints are intact.

    Example:
    >>> checkpoint_files("runs/x/checkpoints")  # doctest: +SKIP
    ['runs/x/checkpoints/ckpt-200', 'runs/x/checkpoints/ckpt-100']
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for index in directory.glob("*.index"):
        match = re.fullmatch(r"(.+)-(\d+)\.index", index.name)
        if match and not index.name.startswith("."):
            found.append((int(match.group(2)), str(directory / index.name[: -len(".index")])))
    return [path for _, path in sorted(found, reverse=True)]


def _checkpoint_model_variables(reader, root_name, model):
    """The checkpoint's variables under `root_name`, as (readable path, shape, matched).

    Walks the checkpoint's object graph (TF's TrackableObjectGraph proto)
    from the root's child `root_name`; a variable is matched when the
    model has a variable of the same shape at the same attribute path.
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    shapes = reader.get_variable_to_shape_map()
    start = [c.node_id for c in graph.nodes[0].children if c.local_name == root_name]
    if not start:
        return []
    operations = list(getattr(model, "operations", []) or [])
    seen, found, stack = set(), [], [(start[0], [])]
    while stack:
        node_id, path = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                found.append((path, tuple(shapes.get(attribute.checkpoint_key, ()))))
        for child in reversed(node.children):
            if child.local_name not in ("_inbound_nodes", "_outbound_nodes", "_losses"):
                stack.append((child.node_id, path + [child.local_name]))
    results = []
    for path, shape in found:
        target, readable = model, []
        for i, part in enumerate(path):
            if part == "_operations" and i + 1 < len(path) and path[i + 1].isdigit():
                continue
            if i > 0 and path[i - 1] == "_operations" and part.isdigit():
                index = int(part)
                target = operations[index] if index < len(operations) else None
                readable.append(target.name if target is not None else f"<operation {index}>")
                continue
            target = getattr(target, part, None) if target is not None else None
            readable.append(part.lstrip("_"))
        matched = target is not None and tuple(getattr(target, "shape", ())) == shape
        results.append(("/".join(readable), shape, matched))
    return results


def restore_strictly(path, model, root_name="model"):
    """Restores `model` from the checkpoint `path`, requiring an exact match.

    Args:
        path: a checkpoint prefix (`.../ckpt-100`).
        model: the Keras model, built as it was trained.
        root_name: the model's attribute name in the checkpoint.

    Raises:
        CheckpointMismatchError: a model variable the checkpoint lacks, a
            model variable in the checkpoint that the model lacks, or a
            shape mismatch; the message names them.
        Any reading error of a damaged checkpoint (the caller decides).
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    listed = _checkpoint_model_variables(reader, root_name, model)
    unmatched = [(p, s) for p, s, ok in listed if not ok]
    own = len({id(v) for v in model.variables})
    if len(listed) > own:
        # Checked before reading: TensorFlow matches variables by position,
        # so extra ones would first show up as a confusing shape mismatch.
        shown = ", ".join(f"{p} {list(s)}" for p, s in unmatched[:8])
        raise CheckpointMismatchError(
            f"The checkpoint {path} holds {len(listed)} model variables, the model "
            f"{model.name} {own}: {len(listed) - own} variable(s) the model lacks, among "
            f"those that do not fit it: {shown}{', ...' if len(unmatched) > 8 else ''}. The "
            "model was built differently from the one that was trained (config.json "
            f"edited?). Received: checkpoint={path!r}"
        )
    try:
        status = tf.train.Checkpoint(**{root_name: model}).read(path)
        status.assert_existing_objects_matched()
    except AssertionError as error:
        names = re.findall(r"path=([^,]+),", str(error))
        raise CheckpointMismatchError(
            f"The checkpoint {path} lacks {len(names) or 'some'} variable(s) of the model "
            f"{model.name}: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}. The "
            "model was built differently from the one that was trained (config.json "
            f"edited?). Received: checkpoint={path!r}"
        ) from error
    except ValueError as error:
        raise CheckpointMismatchError(
            f"The checkpoint {path} does not fit the model {model.name}: "
            f"{str(error).splitlines()[0][:300]}. Received: checkpoint={path!r}"
        ) from error
    if unmatched:
        shown = ", ".join(f"{p} {list(s)}" for p, s in unmatched[:8])
        raise CheckpointMismatchError(
            f"The checkpoint {path} holds {len(unmatched)} variable(s) that the model "
            f"{model.name} lacks: {shown}{', ...' if len(unmatched) > 8 else ''}. The model "
            "was built differently from the one that was trained (config.json edited?). "
            f"Received: checkpoint={path!r}"
        )
    return status


def restore_newest_intact(candidates, restore, say=log.warning):
    """Calls `restore(path)` on the newest candidate that reads; returns that path.

    A damaged checkpoint (truncated, unreadable) is reported through `say`
    and the next older one is tried; a mismatch with the model is not
    damage and is raised at once.

    Raises:
        ValueError: when no candidate can be read, naming each and why.
    """
    failures = []
    for path in candidates:
        try:
            restore(path)
        except CheckpointMismatchError:
            raise
        except Exception as error:  # noqa: BLE001 - any read failure means "damaged"
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
            failures.append(f"{path} ({reason})")
            say(f"Checkpoint {path} is damaged ({reason}); trying the previous one.")
            continue
        if failures:
            say(f"Restored {path} instead of the damaged newer checkpoint(s).")
        return path
    raise ValueError(
        "No intact checkpoint: " + ("; ".join(failures) if failures else "none found") + "."
    )


def restore_model(run_dir):
    """Rebuilds a run's model and loads the weights of its newest intact checkpoint.

    Args:
        run_dir: the training run's directory.

    Returns:
        `(model, config)`: the `keras.Model` (float32) and the run's config.
        The model's preprocessing record is the run's, with the restored
        checkpoint as its weights' origin.

    Raises:
        ValueError: no usable config or checkpoint, or a checkpoint that does
            not match the model (naming the variables).

    Example:
    >>> model, config = restore_model("runs/se_resnet20")  # doctest: +SKIP
    """
    from se_keras._validation import require_tensorflow_backend

    require_tensorflow_backend("Restoring a training run")
    config = read_config(run_dir)
    directory = pathlib.Path(run_dir) / CHECKPOINT_DIR
    candidates = checkpoint_files(directory)
    if not candidates:
        raise ValueError(f"No checkpoint in {directory}. Received: run_dir={str(run_dir)!r}")
    model_config = {**config["model"], "kwargs": dict(config["model"].get("kwargs", {}))}
    holder = {}

    def restore(path):
        kwargs = model_config["kwargs"]
        record = kwargs.get("preprocessing") or config["preprocessing"]
        kwargs["preprocessing"] = {**record, "weights": path}
        holder["model"] = model = build_model(model_config)
        restore_strictly(path, model)

    restore_newest_intact(candidates, restore)
    return holder["model"], config
