"""The compiled training and evaluation steps, run under any tf.distribute strategy.

A step returns per-replica sums reduced over the replicas (`STAT_KEYS`:
loss, top-1 hits, top-k hits, examples); the trainer divides by the count.

Example:
>>> steps = make_steps(model, optimizer, strategy, global_batch_size=64)  # doctest: +SKIP
>>> totals = steps.train_loop(iterator, tf.constant(1, tf.int64))  # doctest: +SKIP
"""

import collections

STAT_KEYS = ("loss", "top1", "top5", "count")

# The compiled functions of one run: `train_loop(iterator, num_steps)`,
# `eval_step(batch)` and `all_mean(value)` (the mean over all replicas).
Steps = collections.namedtuple("Steps", ["train_loop", "eval_step", "all_mean"])


def stats(labels, probs, losses, top_k, weights=None):
    """Per-replica sums: loss, top-1 and top-k hits, examples (weighted).

    Example:
    >>> stats(labels, probs, losses, top_k=5)["count"]  # doctest: +SKIP
    """
    import tensorflow as tf

    targets = tf.argmax(labels, axis=-1, output_type=tf.int32)
    if weights is None:
        weights = tf.ones_like(losses)
    top1 = tf.cast(tf.math.in_top_k(targets, probs, 1), tf.float32)
    top5 = tf.cast(tf.math.in_top_k(targets, probs, top_k), tf.float32)
    return {"loss": tf.reduce_sum(losses * weights), "top1": tf.reduce_sum(top1 * weights),
            "top5": tf.reduce_sum(top5 * weights), "count": tf.reduce_sum(weights)}


def agree_on_finiteness(grads):
    """Makes every replica see non-finite gradients if any replica has them.

    Keras' LossScaleOptimizer decides to apply or skip a step from the first
    local replica's (not yet all-reduced) gradients; replicas that disagree
    would apply an overflowed sum, or leave workers waiting on each other.
    One scalar all-reduce makes the decision global.

    Example:
    >>> grads = agree_on_finiteness(grads)  # doctest: +SKIP
    """
    import tensorflow as tf

    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
    votes = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32)
    )
    all_finite = votes == 0.0
    return [None if g is None else tf.where(all_finite, g, tf.fill(tf.shape(g),
                                                                    tf.constant(float("nan"),
                                                                                g.dtype)))
            for g in grads]


def make_steps(model, optimizer, strategy, global_batch_size, label_smoothing=0.0, top_k=5,
               jit_compile=False, steps_per_loop=1, agree=False):
    """Compiles the training loop, the evaluation step and the all-replica mean.

    Args:
        model: the Keras model (built in `strategy.scope()`).
        optimizer: its optimizer (possibly a `LossScaleOptimizer`).
        strategy: the `tf.distribute.Strategy`.
        global_batch_size: examples per step over all replicas.
        label_smoothing: in the training loss.
        top_k: the k of the top-k accuracy.
        jit_compile: compile the forward and backward pass with XLA.
        steps_per_loop: training steps per call of `train_loop`.
        agree: make replicas agree on skipping a step with non-finite
            gradients (loss scaling on several replicas).

    Returns:
        `Steps(train_loop, eval_step, all_mean)`.

    Example:
    >>> steps = make_steps(model, optimizer, strategy, global_batch_size=64)  # doctest: +SKIP
    """
    import keras
    import tensorflow as tf

    def per_example_loss(labels, probs):
        return keras.losses.categorical_crossentropy(
            labels, probs, label_smoothing=label_smoothing
        )

    def forward_backward(images, labels):
        with tf.GradientTape() as tape:
            # The classifier runs in float32 under mixed policies; the
            # cast is a no-op then, and keeps the loss in float32 anyway.
            probs = tf.cast(model(images, training=True), tf.float32)
            losses = per_example_loss(labels, probs)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        return grads, stats(labels, probs, losses, top_k)

    if jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(images, labels):
        grads, step_stats = forward_backward(images, labels)
        if agree:
            grads = agree_on_finiteness(grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return step_stats

    def reduce(per_replica):
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    def one_step(iterator):
        images, labels = next(iterator)
        return reduce(strategy.run(replica_step, args=(images, labels)))

    @tf.function
    def train_loop(iterator, num_steps):
        totals = one_step(iterator)
        for _ in tf.range(num_steps - 1):
            step_stats = one_step(iterator)
            totals = {k: totals[k] + step_stats[k] for k in STAT_KEYS}
        return totals

    if steps_per_loop == 1:
        # No while loop: a graph that is quicker to optimize, the same step.
        train_loop = tf.function(lambda iterator, num_steps: one_step(iterator))

    def eval_replica(images, labels, weights):
        probs = tf.cast(model(images, training=False), tf.float32)
        losses = keras.losses.categorical_crossentropy(labels, probs)
        return stats(labels, probs, losses, top_k, weights)

    @tf.function
    def eval_step(batch):
        return reduce(strategy.run(eval_replica, args=batch))

    @tf.function
    def all_mean(value):
        per_replica = strategy.run(lambda: tf.identity(value))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return Steps(train_loop, eval_step, all_mean)
