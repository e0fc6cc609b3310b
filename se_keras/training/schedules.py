"""Learning-rate schedules defined over the fraction of training done.

The schedule's length is a variable (saved in checkpoints), not a
constant: a run with a wall-clock budget measures its speed, then fits the
schedule to the steps that the budget allows, so that a step decay or a
cosine still completes when the time is up.
"""

import math

import keras
import tensorflow as tf


class TrainingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then a step, cosine or constant decay.

    Args:
        base_lr: the peak learning rate.
        total_steps: the schedule's length in steps (a `tf.Variable` is
            created; change it with `set_total_steps`).
        warmup_steps: linear warmup from `base_lr / warmup_steps`.
        kind: "step", "cosine" or "constant".
        boundaries: for "step", fractions of `total_steps` at which the
            rate is multiplied by `decay`.
        decay: the step factor.

    Example:
    >>> schedule = TrainingSchedule(0.1, total_steps=100, kind="step", boundaries=[0.5])
    >>> round(float(schedule(10)), 4), round(float(schedule(60)), 4)
    (0.1, 0.01)
    """

    def __init__(self, base_lr, total_steps, warmup_steps=0, kind="cosine", boundaries=(),
                 decay=0.1):
        super().__init__()
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.boundaries = [float(b) for b in boundaries]
        self.decay = float(decay)
        self._graph_cache = None
        self.total_steps = tf.Variable(
            float(total_steps), trainable=False, dtype=tf.float32, name="schedule_total_steps"
        )

    def set_total_steps(self, total_steps):
        self.total_steps.assign(float(max(total_steps, self.warmup_steps + 1)))

    def __call__(self, step):
        if tf.executing_eagerly():
            return self._compute(step)
        # Keras reads the learning rate once per variable (weight decay and
        # update); building the schedule once per graph instead of ~200
        # times saves seconds of tracing per model.
        graph = tf.compat.v1.get_default_graph()
        cached = self._graph_cache
        if cached is None or cached[0] is not graph or cached[1] is not step:
            # One entry: holds at most one traced graph alive.
            cached = self._graph_cache = (graph, step, self._compute(step))
        return cached[2]

    def _compute(self, step):
        step = tf.cast(step, tf.float32)
        total = tf.maximum(self.total_steps, 1.0)
        base = tf.constant(self.base_lr, tf.float32)
        if self.kind == "cosine":
            warm = float(self.warmup_steps)
            progress = tf.clip_by_value((step - warm) / tf.maximum(total - warm, 1.0), 0.0, 1.0)
            lr = base * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "step":
            fraction = step / total
            exponent = tf.add_n(
                [tf.cast(fraction >= b, tf.float32) for b in self.boundaries]
                or [tf.constant(0.0)]
            )
            lr = base * tf.pow(self.decay, exponent)
        else:
            lr = base
        if self.warmup_steps > 0:
            warmup = base * (step + 1.0) / float(self.warmup_steps)
            lr = tf.where(step < float(self.warmup_steps), warmup, lr)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": float(self.total_steps.numpy()),
                "warmup_steps": self.warmup_steps, "kind": self.kind,
                "boundaries": self.boundaries, "decay": self.decay}
