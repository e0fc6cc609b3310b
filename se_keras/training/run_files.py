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


# Children of a model in a checkpoint that are not its layers: a compiled
# model (the fine-tuning example saves one) also tracks its optimizer and
# metrics, which are not the model's weights.
_NOT_LAYERS = ("optimizer", "_compile_metrics", "_compile_loss", "_loss_tracker", "_metrics",
               "_tracked", "_inbound_nodes", "_outbound_nodes", "_losses", "_losses_override")


def _checkpoint_model_variables(reader, root_name, model, root_operations=None):
    """The checkpoint's layer variables under `root_name`, as (readable path, shape, matched).

    Walks the checkpoint's object graph (TF's TrackableObjectGraph proto)
    from the root's child `root_name` alongside the model: a model's layers
    are its `_operations` by index (nested models resolved against their
    own), a layer's variables are its attributes. A variable is matched when
    the model has a variable of the same shape at the same place.
    `root_operations` replaces the model's own layer list (old checkpoints,
    see `_restore_target`).
    """
    import keras
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    shapes = reader.get_variable_to_shape_map()
    start = [c.node_id for c in graph.nodes[0].children if c.local_name == root_name]
    if not start:
        return []
    results, seen = [], set()
    stack = [(start[0], model, [])]
    while stack:
        node_id, target, readable = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                shape = tuple(shapes.get(attribute.checkpoint_key, ()))
                matched = target is not None and tuple(getattr(target, "shape", ())) == shape
                results.append(("/".join(readable), shape, matched))
        is_model = isinstance(target, keras.Model)
        for child in reversed(node.children):
            name = child.local_name
            if is_model and name != "_operations":
                continue
            if name in _NOT_LAYERS:
                continue
            if name == "_operations":
                operations = list(getattr(target, "operations", []) or [])
                if target is model and root_operations is not None:
                    operations = root_operations
                for op_child in reversed(graph.nodes[child.node_id].children):
                    index = int(op_child.local_name) if op_child.local_name.isdigit() else -1
                    layer = operations[index] if 0 <= index < len(operations) else None
                    label = layer.name if layer is not None else f"<operation {index}>"
                    stack.append((op_child.node_id, layer, readable + [label]))
                continue
            child_target = getattr(target, name, None) if target is not None else None
            stack.append((child.node_id, child_target, readable + [name.lstrip("_")]))
    return results


def _checkpoint_operation_count(reader, root_name):
    """How many layers the checkpoint's model has (its `_operations` list), or None."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    for child in graph.nodes[0].children:
        if child.local_name == root_name:
            for grandchild in graph.nodes[child.node_id].children:
                if grandchild.local_name == "_operations":
                    return len(graph.nodes[grandchild.node_id].children)
    return None


def _restore_target(reader, model, root_name):
    """What to restore into: the model, or a view of it for checkpoints older than its record.

    Checkpoints written before models carried their preprocessing record
    number the layers without the `ImagePreprocessing` layer (second in the
    model, weightless); TensorFlow matches layers by that number. A
    `tf.Module` holding the other layers in the old order restores them.
    """
    import tensorflow as tf

    from se_keras.preprocessing import ImagePreprocessing

    operations = list(getattr(model, "operations", []) or [])
    count = _checkpoint_operation_count(reader, root_name)
    record = [i for i, op in enumerate(operations) if isinstance(op, ImagePreprocessing)]
    if count is not None and record and count == len(operations) - 1:
        view = tf.Module(name=model.name)
        view._operations = [op for i, op in enumerate(operations) if i != record[0]]
        return view, operations[: record[0]] + operations[record[0] + 1:]
    return model, None


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
    target, old_order = _restore_target(reader, model, root_name)
    if old_order is not None:
        log.warning("%s was written before models carried their preprocessing record; its "
                    "layers are restored in the old order.", path)
    listed = _checkpoint_model_variables(reader, root_name, model, old_order)
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
        status = tf.train.Checkpoint(**{root_name: target}).read(path)
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


def _is_damage(error):
    """True for errors of reading a checkpoint's files (truncated, corrupt, missing)."""
    import tensorflow as tf

    # A truncated data file surfaces as an IndexError ("Read less bytes
    # than requested") from TensorFlow's reader, not as an OpError.
    return isinstance(error, (tf.errors.OpError, IndexError, OSError, EOFError))


def restore_newest_intact(candidates, restore, say=None):
    """Calls `restore(path)` on the newest candidate that reads; returns that path.

    A damaged checkpoint (a file that cannot be read) is reported, always as
    a logged warning and also through `say`, and the next older one is
    tried. Any other error (a mismatch with the model, a bug) is raised at
    once: an intact newest checkpoint is never passed over.

    Raises:
        ValueError: when no candidate can be read, naming each and why.
    """
    failures = []

    def report(message):
        log.warning(message)
        if say is not None:
            say(message)

    for path in candidates:
        try:
            restore(path)
        except Exception as error:  # noqa: BLE001 - sorted by _is_damage below
            if not _is_damage(error):
                raise
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
            failures.append(f"{path} ({reason})")
            report(f"Checkpoint {path} is damaged ({reason}); trying the previous one.")
            continue
        if failures:
            report(f"Restored {path} instead of the damaged newer checkpoint(s).")
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
    kwargs = dict(config["model"].get("kwargs", {}))
    # Runs written before the record lived in the model entry kept it beside.
    kwargs.setdefault("preprocessing", config["preprocessing"])
    model = build_model({**config["model"], "kwargs": kwargs})
    path = restore_newest_intact(candidates, lambda p: restore_strictly(p, model))
    from se_keras.preprocessing import set_weights_origin

    set_weights_origin(model, path)
    return model, config
