"""Turning the input pipelines' run-time failures into errors that name the data.

tf.data fails inside the graph, long after the source was opened, with
TensorFlow's own wording: an `InvalidArgumentError` for an image it cannot
decode or an assertion, a `DataLossError` for a truncated TFRecord. The
pipelines check what they can in the graph with messages that start with
a known tag (`checked_label`, the TFRecord shard counts in
`se_keras.data.sources`); `explain` turns any of these errors into a
`ValueError` whose message names the file or the label and says what to
do, and finds the damaged file when TensorFlow does not name it.

Example:
>>> import tensorflow as tf
>>> int(checked_label(tf.constant(3), 10))
3
"""

import re

import tensorflow as tf

LABEL_TAG = "se_keras label check:"
SHARD_TAG = "se_keras shard check:"


def checked_label(label, num_classes):
    """`label`, after a run-time check that it lies in [0, num_classes).

    A label outside the range would otherwise become an all-zero one-hot
    row (`tf.one_hot`) and train silently on nothing; 1-based TFRecords are
    the usual cause.

    Args:
        label: an integer scalar tensor.
        num_classes: the number of classes.

    Returns:
        The label, as int32.

    Raises:
        tf.errors.InvalidArgumentError: at run time, with `LABEL_TAG`, the
            label and the number of classes in its message.
    """
    label = tf.cast(label, tf.int32)
    ok = tf.logical_and(label >= 0, label < num_classes)
    check = tf.debugging.Assert(
        ok, [LABEL_TAG, "label", label, "classes", tf.constant(num_classes, tf.int32)],
        summarize=1,
    )
    with tf.control_dependencies([check]):
        return tf.identity(label)


def _numbers_after(word, message):
    match = re.search(rf"\b{word}\]? \[?(-?\d+)", message)
    return int(match.group(1)) if match else None


def explain(error, split=None, skip_bad_files=False):
    """A `ValueError` that says what is wrong with the data, for a tf.data error.

    Args:
        error: the `tf.errors.OpError` raised while iterating a pipeline.
        split: the split being read (a `se_keras.data.sources` split), used to
            find the damaged file when TensorFlow does not name it.
        skip_bad_files: whether --skip-bad-files was given (the advice differs).

    Returns:
        A `ValueError`, or None when the error is not about the data.
    """
    message = getattr(error, "message", str(error))
    if LABEL_TAG in message:
        label = _numbers_after("label", message)
        classes = _numbers_after("classes", message)
        return ValueError(
            f"Label out of range: labels must be in [0, {classes}) for the {classes} "
            f"classes of the data. TFRecords whose labels start at 1 need "
            f"--label-offset -1 (label_offset=-1). Received: label={label}"
        )
    if SHARD_TAG in message:
        detail = message.split(SHARD_TAG, 1)[1].split("\n")[0]
        detail = re.sub(r"[\[\]]", "", detail).strip()
        return ValueError(
            f"TFRecord shard count mismatch: {detail}. The shard was truncated or "
            "replaced after dataset_info.json was written: write the TFRecords again "
            "(se-keras data to-tfrecords), or delete dataset_info.json to count records "
            "instead of trusting it."
        )
    if isinstance(error, tf.errors.DataLossError):
        damaged = split.find_damaged_files() if hasattr(split, "find_damaged_files") else []
        where = ", ".join(damaged) if damaged else "a file of the split"
        return ValueError(
            f"Damaged TFRecord data in {where}: {message.splitlines()[0][:200]}. "
            "The shard is truncated or corrupt; write it again."
        )
    if isinstance(error, tf.errors.InvalidArgumentError):
        bad = split.find_undecodable() if hasattr(split, "find_undecodable") else []
        where = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        if skip_bad_files:
            advice = (
                "--skip-bad-files only skips files whose first bytes are not an image; "
                "add --verify-images to decode every file before training and skip "
                "these too, or remove them"
            )
        else:
            advice = ("remove it, or pass --verify-images --skip-bad-files to skip "
                      "such files with a warning")
        if bad:
            return ValueError(f"Cannot decode {where}: {advice}.")
        return ValueError(
            "An image could not be decoded or preprocessed "
            f"({message.splitlines()[0][:300]}); {advice}."
        )
    return None
