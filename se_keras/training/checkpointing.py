"""A run's training state in checkpoints: what is saved, where, and how a resume restores it.

The checkpoint holds the model, the optimizer, the global step (which fixes
the input position), the schedule's length, the training time spent, the
current epoch's running sums and time, the preprocessing record and the
optimizer's class name. Resuming never destroys a run: with nothing to
resume from, the run's files are left untouched and the command fails.

Example:
>>> candidates = check_run_dir(pathlib.Path("runs/x"), resume=True)  # doctest: +SKIP
"""

import collections
import json
import pathlib
import tempfile

from se_keras._files import read_json
from se_keras.training import run_files
from se_keras.training.steps import STAT_KEYS

# The host-side variables of the training state besides model and optimizer.
Counters = collections.namedtuple("Counters", [
    "step", "train_seconds", "epoch_sums", "epoch_seconds", "preprocessing_json",
    "optimizer_name",
])


def check_run_dir(run_dir, resume):
    """The run directory's checkpoints, newest first, after checking that `resume` fits them.

    Raises:
        ValueError: a new run in a directory that holds one, or a resume
            with no checkpoint to resume from.

    Example:
    >>> check_run_dir(pathlib.Path("runs/new"), resume=False)  # doctest: +SKIP
    []
    """
    checkpoint_dir = run_dir / run_files.CHECKPOINT_DIR
    candidates = run_files.checkpoint_files(checkpoint_dir)
    records = [name for name in (run_files.CONFIG_NAME, run_files.HISTORY_NAME)
               if (run_dir / name).exists()]
    if not resume and (candidates or records):
        raise ValueError(
            f"{run_dir} already holds a run ({', '.join(records + (['checkpoints'] if candidates else []))}). "
            "Pass --resume to continue it, or choose another --name / --run-dir. "
            f"Received: run_dir={str(run_dir)!r}"
        )
    if resume and not candidates:
        # Starting over would overwrite the run's history.json and config.json.
        raise ValueError(
            f"Nothing to resume: no checkpoint files (*.index) in {checkpoint_dir}. The "
            "run's files were left as they are; start a new run under another --name "
            f"instead. Received: run_dir={str(run_dir)!r}"
        )
    return candidates


def make_counters(preprocessing, optimizer):
    """The training state's host-side variables, created outside any strategy scope.

    Outside the scope, so that float64 counters get no TPU placement.

    Example:
    >>> counters = make_counters(get_preprocessing(model), optimizer)  # doctest: +SKIP
    """
    import tensorflow as tf

    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    # The current epoch's running sums (loss, top-1, top-5, examples), so
    # that an epoch resumed mid-way logs the same loss as an unbroken one.
    epoch_sums = tf.Variable(tf.zeros([len(STAT_KEYS)], tf.float64), trainable=False,
                             name="epoch_sums")
    epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_seconds")
    preprocessing_json = tf.Variable(
        json.dumps(preprocessing.to_dict(), sort_keys=True), trainable=False,
        name="preprocessing")
    # Keras' SGD and L2SGD keep their momentum in slots of the same shape
    # but not the same meaning (-lr*buf vs buf): name the optimizer.
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    optimizer_name = tf.Variable(type(inner).__name__, trainable=False, name="optimizer_name")
    return Counters(step, train_seconds, epoch_sums, epoch_seconds, preprocessing_json,
                    optimizer_name)


def make_checkpoint(model, optimizer, schedule, counters):
    """The `tf.train.Checkpoint` of the whole training state.

    Example:
    >>> checkpoint = make_checkpoint(model, optimizer, schedule, counters)  # doctest: +SKIP
    """
    import tensorflow as tf

    return tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=counters.step,
        schedule_total_steps=schedule.total_steps, train_seconds=counters.train_seconds,
        epoch_sums=counters.epoch_sums, epoch_seconds=counters.epoch_seconds,
        preprocessing=counters.preprocessing_json, optimizer_name=counters.optimizer_name,
    )


def write_dir(run_dir, is_chief, task_id):
    """Where this worker writes checkpoints: the run's folder, or a scratch folder off the chief.

    Every worker must save (the variables are mirrored), but only the
    chief's copy is kept.

    Example:
    >>> write_dir(pathlib.Path("runs/x"), True, 0)  # doctest: +SKIP
    PosixPath('runs/x/checkpoints')
    """
    if is_chief:
        return run_dir / run_files.CHECKPOINT_DIR
    return pathlib.Path(tempfile.mkdtemp(prefix=f"se_keras_worker{task_id}_"))


def make_manager(checkpoint, directory, step, keep, repair_from=None):
    """The checkpoint manager writing to `directory`, numbering checkpoints by `step`.

    Args:
        checkpoint: the `tf.train.Checkpoint`.
        directory: the folder to write to.
        step: the global step variable.
        keep: how many checkpoints to keep.
        repair_from: the run's checkpoints, newest first, when resuming on
            the chief; a missing or damaged `checkpoint` state file is then
            written again from them.

    Example:
    >>> manager = make_manager(checkpoint, write_dir, step, keep=3)  # doctest: +SKIP
    """
    import tensorflow as tf

    if repair_from and tf.train.get_checkpoint_state(str(directory)) is None:
        # The `checkpoint` state file is missing or damaged while the
        # checkpoints are intact: write it again, so that the manager
        # keeps counting (and pruning) the run's existing checkpoints.
        tf.compat.v1.train.update_checkpoint_state(
            str(directory), repair_from[0],
            all_model_checkpoint_paths=list(reversed(repair_from)),
        )
    return tf.train.CheckpointManager(
        checkpoint, str(directory), max_to_keep=keep, step_counter=step, checkpoint_name="ckpt",
    )


def restore_training_state(path, model, checkpoint, optimizer, counters, preprocessing):
    """Restores the whole training state from `path`, requiring an exact match.

    Raises:
        run_files.CheckpointMismatchError: the checkpoint lacks part of the
            state, was written by another optimizer, or with another
            preprocessing.

    Example:
    >>> restore_training_state(path, model, checkpoint, optimizer, counters,
    ...                        record)  # doctest: +SKIP
    """
    run_files.restore_strictly(path, model)
    status = checkpoint.read(path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise run_files.CheckpointMismatchError(
            f"The checkpoint {path} lacks part of the training state "
            f"({str(error).splitlines()[0][:300]}); it was written by another version "
            f"or configuration. Received: checkpoint={path!r}"
        ) from error
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    written_by = counters.optimizer_name.numpy().decode("utf-8")
    if written_by != type(inner).__name__:
        raise run_files.CheckpointMismatchError(
            f"The checkpoint {path} holds the state of a {written_by} optimizer; the run "
            f"now asks for {type(inner).__name__} (--optimizer / --weight-decay-mode "
            f"changed?). Received: checkpoint={path!r}"
        )
    saved = json.loads(counters.preprocessing_json.numpy().decode("utf-8"))
    current = preprocessing.to_dict()
    # Where the initial weights came from is not how the model is fed.
    saved.pop("weights", None), current.pop("weights", None)
    if saved != current:
        raise run_files.CheckpointMismatchError(
            f"The checkpoint {path} was trained with the preprocessing {saved}, the run's "
            f"config now says {current}. Received: checkpoint={path!r}"
        )


def resumed_history(run_dir, step, steps_per_epoch):
    """The run's history rows up to the restored `step`.

    A row of the epoch being resumed (a run stopped mid-epoch) is left out:
    it is written again, whole.

    Example:
    >>> resumed_history(pathlib.Path("runs/x"), 200, 100)  # doctest: +SKIP
    [{'epoch': 1, 'step': 100, ...}, {'epoch': 2, 'step': 200, ...}]
    """
    history_path = run_dir / run_files.HISTORY_NAME
    if not history_path.exists():
        return []
    rows = read_json(history_path, "run history", "run_dir")
    epoch_start = step - step % steps_per_epoch
    return [r for r in rows if r["step"] <= step
            and (step % steps_per_epoch == 0 or r["step"] <= epoch_start)]
