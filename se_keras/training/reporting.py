"""What a run tells its user: TensorBoard scalars, the progress bar and lines, the curves PNG.

Example:
>>> plot_curves([{"epoch": 1, "loss": 1.0, "lr": 0.1}], "/tmp/curves.png")  # doctest: +SKIP
PosixPath('/tmp/curves.png')
"""

import math
import pathlib
import time

from se_keras._files import atomic_path

CURVES_NAME = "curves.png"
LOGS_NAME = "logs"


def plot_curves(history, path, title=""):
    """Writes loss, accuracy and learning rate per epoch to a PNG (matplotlib, Agg).

    Args:
        history: the run's rows, one per epoch (`history.json`).
        path: the PNG to write (atomically).
        title: the figure's title.

    Returns:
        `path` as a `pathlib.Path`, or None for an empty history.

    Example:
    >>> plot_curves([{"epoch": 1, "loss": 1.0, "lr": 0.1}], "/tmp/curves.png")  # doctest: +SKIP
    PosixPath('/tmp/curves.png')
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return None
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        points = [(e, r[key]) for e, r in zip(epochs, history) if r.get(key) is not None]
        if points:
            axes[0].plot(*zip(*points), marker="o", label=label)
    for key, label in (("accuracy", "train top-1"), ("val_accuracy", "validation top-1"),
                       ("val_top5", "validation top-5")):
        points = [(e, r[key]) for e, r in zip(epochs, history) if r.get(key) is not None]
        if points:
            axes[1].plot(*zip(*points), marker="o", label=label)
    axes[2].plot(epochs, [r["lr"] for r in history], marker="o")
    for ax, name in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path


def make_writers(run_dir, is_chief):
    """TensorBoard writers `(train, validation)` under `run_dir/logs`; no-op writers off the chief.

    Example:
    >>> train_writer, val_writer = make_writers("runs/x", is_chief=True)  # doctest: +SKIP
    """
    import tensorflow as tf

    if is_chief:
        logs = pathlib.Path(run_dir) / LOGS_NAME
        return (tf.summary.create_file_writer(str(logs / "train")),
                tf.summary.create_file_writer(str(logs / "validation")))
    writer = tf.summary.create_noop_writer()
    return writer, writer


class TrainScalars:
    """Training loss, accuracy, learning rate and images/s to TensorBoard every `every` steps.

    The images/s figure is measured over the interval since the last write.

    Args:
        writer: the train summary writer.
        every: the logging interval in steps.

    Example:
    >>> scalars = TrainScalars(train_writer, every=10)  # doctest: +SKIP
    >>> images_per_sec = scalars.update(10, 10, 640, logs, last=False)  # doctest: +SKIP
    """

    def __init__(self, writer, every):
        self.writer = writer
        self.every = every
        self.start, self.examples = time.time(), 0
        self.images_per_sec = 0.0

    def update(self, step, num_steps, examples, logs, last):
        """Counts `examples` of `num_steps` steps ending at `step`; writes when due; returns images/s."""
        import tensorflow as tf

        self.examples += examples
        if step % self.every < num_steps or last:
            self.images_per_sec = self.examples / max(time.time() - self.start, 1e-9)
            self.start, self.examples = time.time(), 0
            with self.writer.as_default(step=step):
                tf.summary.scalar("loss", logs["loss"])
                tf.summary.scalar("accuracy", logs["accuracy"])
                tf.summary.scalar("learning_rate", logs["lr"])
                tf.summary.scalar("images_per_second", self.images_per_sec)
        return self.images_per_sec


def write_validation_scalars(writer, step, row):
    """An epoch row's validation loss, top-1 and top-5 to TensorBoard.

    Example:
    >>> write_validation_scalars(val_writer, 100, row)  # doctest: +SKIP
    """
    import tensorflow as tf

    with writer.as_default(step=step):
        tf.summary.scalar("loss", row["val_loss"])
        tf.summary.scalar("accuracy", row["val_accuracy"])
        tf.summary.scalar("top5_accuracy", row["val_top5"])


def start_epoch_progress(step, steps_per_epoch, stop_step, verbose, is_chief, say):
    """The Keras progress bar of the epoch that `step` is in, shown at verbose 1 on the chief.

    A resumed epoch's bar starts at the steps already done.

    Example:
    >>> progbar = start_epoch_progress(0, 100, 300, 1, True, print)  # doctest: +SKIP
    Epoch 1/3
    """
    import keras

    progbar = keras.utils.Progbar(
        target=steps_per_epoch, verbose=1 if (is_chief and verbose == 1) else 0,
        stateful_metrics=["loss", "acc", "lr", "img/s"], unit_name="step",
    )
    if verbose == 1:
        say(f"Epoch {step // steps_per_epoch + 1}/{math.ceil(stop_step / steps_per_epoch)}")
    epoch_done = step % steps_per_epoch
    if epoch_done:
        progbar.update(epoch_done)
    return progbar


def update_epoch_progress(progbar, step, steps_per_epoch, epoch_totals, epoch_start, lr):
    """Moves the bar to `step` with the epoch's mean loss and accuracy so far.

    Example:
    >>> update_epoch_progress(progbar, 10, 100, totals, start, 0.1)  # doctest: +SKIP
    """
    seen = max(epoch_totals["count"], 1.0)
    progbar.update(step % steps_per_epoch or steps_per_epoch, [
        ("loss", epoch_totals["loss"] / seen), ("acc", epoch_totals["top1"] / seen),
        ("lr", lr),
        ("img/s", epoch_totals["count"] / max(time.time() - epoch_start, 1e-9)),
    ])


def report_epoch(epoch, row, verbose, say):
    """Says an epoch's results: one line at verbose 2, else its validation line if any.

    Example:
    >>> report_epoch(1, {"loss": 1.0, "accuracy": 0.5, "images_per_sec": 90.0}, 2, print)
    epoch 1: loss 1.0000, acc 0.5000, 90 img/s
    """
    if verbose == 2:
        say(f"epoch {epoch}: loss {row['loss']:.4f}, acc {row['accuracy']:.4f}"
            + (f", val_loss {row['val_loss']:.4f}, val_acc "
               f"{row['val_accuracy']:.4f}, val_top5 {row['val_top5']:.4f}"
               if "val_loss" in row else "")
            + f", {row['images_per_sec']:.0f} img/s")
    elif "val_loss" in row:
        say(f"  validation: loss {row['val_loss']:.4f}, top-1 "
            f"{row['val_accuracy']:.4f}, top-5 {row['val_top5']:.4f}")


def final_validation_line(final):
    """The closing line with the final validation metrics.

    Example:
    >>> final_validation_line({"val_accuracy": 0.9, "val_top5": 1.0, "val_loss": 0.3,
    ...                        "val_examples": 100})
    'Validation: top-1 0.9000, top-5 1.0000, loss 0.3000 (100 images)'
    """
    return (f"Validation: top-1 {final['val_accuracy']:.4f}, top-5 "
            f"{final['val_top5']:.4f}, loss {final['val_loss']:.4f} "
            f"({final['val_examples']} images)")
