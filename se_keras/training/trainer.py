"""The training engine: one custom loop for every tf.distribute strategy.

`train(config)` runs unchanged under the default strategy, `MirroredStrategy`
(GPUs or logical CPUs), `MultiWorkerMirroredStrategy` (TF_CONFIG) and
`TPUStrategy`. Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so the loop is written out: `strategy.run` of a
replica step, `distribute_datasets_from_function` with per-worker sharding,
`tf.nn.compute_average_loss` over the global batch, a Keras model and a
Keras optimizer (wrapped in `LossScaleOptimizer` under mixed_float16).

What a run writes (the run-directory contract of `run_files`):

    config.json      model (with its preprocessing record), preprocessing,
                     class names, the resolved training config, results
    checkpoints/     `tf.train.CheckpointManager` files: model, optimizer,
                     global step (which fixes the input position), the
                     schedule's length, the training time spent, the
                     current epoch's running sums, the preprocessing record
    logs/            TensorBoard scalars (train/, validation/)
    history.json     one row per epoch
    curves.png       loss, accuracy and learning rate per epoch
    saved_model/     `export_for_serving` versions (`saved_model/1/`, ...):
                     the same SavedModel `se-keras export` writes, if `export`

Resuming never destroys a run: the newest intact checkpoint is found from
the checkpoint files themselves (a damaged newest one is reported and the
previous one used), and with none to resume from the run's files are left
untouched and the command fails.

Example:
>>> from se_keras.training import resolve_config, train
>>> results = train(resolve_config("default", {"epochs": 1}))  # doctest: +SKIP
"""

import json
import logging
import math
import os
import pathlib
import shutil
import tempfile
import time

log = logging.getLogger(__name__)

HISTORY_NAME = "history.json"
CURVES_NAME = "curves.png"
SAVED_MODEL_NAME = "saved_model"
LOGS_NAME = "logs"


class Callback:
    """Hooks into the training loop; subclass and override what you need.

    Example:
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, trainer, epoch, logs):
    ...         print(epoch, logs["loss"])
    """

    def on_train_begin(self, trainer):
        pass

    def on_step_end(self, trainer, step, logs):
        pass

    def on_checkpoint(self, trainer, step, path):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_train_end(self, trainer, results):
        pass


def default_run_dir(config, multi_worker=False):
    """`output_root/name`; the default name is model-data(-time)."""
    if config.run_dir:
        return pathlib.Path(config.run_dir)
    name = config.name
    if not name:
        data = config.data.split(":", 1)[-1].rstrip("/").split("/")[-1] or "data"
        name = f"{config.model}-{data}"
        # Workers of one multi-worker run must agree on the directory.
        if not multi_worker:
            name += time.strftime("-%Y%m%d-%H%M%S")
    return pathlib.Path(config.output_root) / name


def plot_curves(history, path, title=""):
    """Writes loss, accuracy and learning rate per epoch to a PNG (matplotlib, Agg)."""
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        pathlib.Path(tmp).unlink(missing_ok=True)
    return path


class Trainer:
    """One training run; `train(config)` is the usual entry point.

    Args:
        config: a validated `TrainConfig`.
        resume: continue from the run directory's latest checkpoint.
        callbacks: `Callback` objects.
        strategy: a `tf.distribute.Strategy` to use instead of creating one
            from `config.strategy`.

    Example:
    >>> trainer = Trainer(resolve_config("default", {"epochs": 1}))  # doctest: +SKIP
    >>> results = trainer.fit()  # doctest: +SKIP
    """

    def __init__(self, config, resume=False, callbacks=(), strategy=None):
        from se_keras._validation import require_tensorflow_backend

        require_tensorflow_backend("Training (se-keras train)")
        from se_keras.training import distribute

        self.config = config
        self.resume = resume
        self.callbacks = list(callbacks)
        # MultiWorkerMirroredStrategy and TPUs must be set up before any op runs.
        self.strategy = strategy or distribute.make_strategy(
            config.strategy, config.tpu, config.cpu_devices
        )
        self.strategy_kind = distribute.strategy_kind(self.strategy)
        self.task_type, self.task_id, self.is_chief = distribute.worker_info(self.strategy)
        self.run_dir = default_run_dir(config, self.strategy_kind == "multi_worker")
        self.history = []
        self.results = {}

    # ----------------------------------------------------------------- setup

    def _say(self, message):
        if self.is_chief and self.config.verbose:
            print(message, flush=True)

    def _setup(self):
        import keras
        import tensorflow as tf

        from se_keras.data import sources
        from se_keras.training import distribute
        from se_keras.training import run_files

        config = self.config
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)

        checkpoint_dir = self.run_dir / run_files.CHECKPOINT_DIR
        self.candidates = run_files.checkpoint_files(checkpoint_dir)
        records = [name for name in (run_files.CONFIG_NAME, HISTORY_NAME)
                   if (self.run_dir / name).exists()]
        if not self.resume and (self.candidates or records):
            raise ValueError(
                f"{self.run_dir} already holds a run ({', '.join(records + (['checkpoints'] if self.candidates else []))}). "
                "Pass --resume to continue it, or choose another --name / --run-dir. "
                f"Received: run_dir={str(self.run_dir)!r}"
            )
        if self.resume and not self.candidates:
            # Starting over would overwrite the run's history.json and config.json.
            raise ValueError(
                f"Nothing to resume: no checkpoint files (*.index) in {checkpoint_dir}. The "
                "run's files were left as they are; start a new run under another --name "
                f"instead. Received: run_dir={str(self.run_dir)!r}"
            )

        self.source = sources.get_source(
            config.data, data_dir=config.data_dir, val_split=config.val_split,
            skip_bad_files=config.skip_bad_files, verify_images=config.verify_images,
            cache=config.cache, num_classes=config.num_classes,
            label_offset=config.label_offset, shuffle_buffer=config.shuffle_buffer,
        )
        self.num_classes = self.source.num_classes
        if self.num_classes < 2:
            raise ValueError(
                "Training needs at least 2 classes; the data has "
                f"{self.num_classes} ({self.source.class_names}). Received: data={config.data!r}"
            )
        num_train = self.source.train.num_examples
        self.steps_per_epoch = config.steps_per_epoch or max(1, num_train // config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps:
            self.stop_step = min(self.total_steps, config.max_steps)
        else:
            self.stop_step = self.total_steps

        self.policy = distribute.choose_precision(config.precision, self.strategy)
        self._previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.policy)

        weights = None if config.weights in (None, "", "none", "None") else config.weights
        kwargs = dict(config.model_kwargs)
        kwargs.update(classes=self.num_classes,
                      input_shape=[config.image_size, config.image_size, 3])
        # The recipe's eval crop, and its interpolation if it names one (else
        # the weights'); mean and std stay the weights' own.
        overrides = {"crop_pct": config.crop_pct, **(kwargs.get("preprocessing") or {})}
        if config.interpolation:
            overrides.setdefault("interpolation", config.interpolation)
        kwargs["preprocessing"] = overrides
        from se_keras.applications import get_builder
        from se_keras.applications import resnet

        arch = getattr(get_builder(config.model), "arch", None)
        if arch in resnet.ARCHITECTURES:
            # The layout follows the initial weights (legacy_in1k builds the
            # Caffe layout); recorded, so that the run's model is rebuilt in it.
            kwargs["variant"] = resnet.resolve_variant(arch, weights, kwargs.get("variant"))
        if self.resume:
            # The run's own model entry, record included; its weights come
            # from the checkpoint, so the initial weights (a file that may be
            # gone, a download) are not loaded again.
            saved = run_files.read_config(self.run_dir, required=("model",))["model"]
            kwargs, weights = dict(saved.get("kwargs", {})), None
        with self.strategy.scope():
            self.model = run_files.build_model({"name": config.model,
                                                "kwargs": {**kwargs, "weights": weights}})
            if config.sync_batchnorm:
                _synchronize_batchnorm(self.model)
            self._make_optimizer()
        from se_keras.preprocessing import get_preprocessing

        # The record the model carries is the run's: the pipelines, the saved
        # config and the export all read it from here.
        self.preprocessing = get_preprocessing(self.model)
        kwargs["preprocessing"] = self.preprocessing.to_dict()
        self.model_config = {"name": config.model, "kwargs": kwargs}
        # Host-side counters: outside the scope, so no TPU placement for float64.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                         name="train_seconds")
        # The current epoch's running sums (loss, top-1, top-5, examples), so
        # that an epoch resumed mid-way logs the same loss as an unbroken one.
        self.epoch_sums = tf.Variable(tf.zeros([len(_STAT_KEYS)], tf.float64),
                                      trainable=False, name="epoch_sums")
        self.epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                         name="epoch_seconds")
        self.preprocessing_json = tf.Variable(
            json.dumps(self.preprocessing.to_dict(), sort_keys=True), trainable=False,
            name="preprocessing")
        # Keras' SGD and L2SGD keep their momentum in slots of the same shape
        # but not the same meaning (-lr*buf vs buf): name the optimizer.
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        self.optimizer_name = tf.Variable(type(inner).__name__, trainable=False,
                                          name="optimizer_name")
        from se_keras.data import Augmentation

        self.augmentation = Augmentation(
            crop=config.crop, area_min=config.area_min, padding=config.padding,
            flip=config.flip, randaugment=config.randaugment,
            randaugment_ops=config.randaugment_ops,
            randaugment_magnitude=config.randaugment_magnitude,
            mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
        )

        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step,
            schedule_total_steps=self.schedule.total_steps, train_seconds=self.train_seconds,
            epoch_sums=self.epoch_sums, epoch_seconds=self.epoch_seconds,
            preprocessing=self.preprocessing_json, optimizer_name=self.optimizer_name,
        )
        if self.is_chief:
            write_dir = checkpoint_dir
        else:
            # Every worker must save (the variables are mirrored), but only
            # the chief's copy is kept.
            write_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"se_keras_worker{self.task_id}_"))
        self._write_dir = write_dir
        if self.resume and self.is_chief and tf.train.get_checkpoint_state(str(write_dir)) is None:
            # The `checkpoint` state file is missing or damaged while the
            # checkpoints are intact: write it again, so that the manager
            # keeps counting (and pruning) the run's existing checkpoints.
            tf.compat.v1.train.update_checkpoint_state(
                str(write_dir), self.candidates[0],
                all_model_checkpoint_paths=list(reversed(self.candidates)),
            )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(write_dir), max_to_keep=config.keep_checkpoints,
            step_counter=self.step, checkpoint_name="ckpt",
        )
        self.latest = None
        if self.resume:
            self.latest = run_files.restore_newest_intact(
                self.candidates, self._restore, say=self._say
            )
            step = int(self.step.numpy())
            self._say(f"Resumed from {self.latest} at step {step}.")
            history_path = self.run_dir / HISTORY_NAME
            if history_path.exists():
                rows = run_files.read_json(history_path, "run history", "run_dir")
                # Rows up to the restored step; a row of the epoch being
                # resumed (a run stopped mid-epoch) is written again, whole.
                epoch_start = step - step % self.steps_per_epoch
                self.history = [r for r in rows if r["step"] <= step
                                and (step % self.steps_per_epoch == 0 or r["step"] <= epoch_start)]
        self.latest_checkpoint = self.latest
        self._make_datasets()
        self._make_steps()
        self._write_config()
        self._make_writers()

    def _restore(self, path):
        """Restores the whole training state from `path`, requiring an exact match."""
        from se_keras.training import run_files

        run_files.restore_strictly(path, self.model)
        status = self.checkpoint.read(path)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise run_files.CheckpointMismatchError(
                f"The checkpoint {path} lacks part of the training state "
                f"({str(error).splitlines()[0][:300]}); it was written by another version "
                f"or configuration. Received: checkpoint={path!r}"
            ) from error
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        written_by = self.optimizer_name.numpy().decode("utf-8")
        if written_by != type(inner).__name__:
            raise run_files.CheckpointMismatchError(
                f"The checkpoint {path} holds the state of a {written_by} optimizer; the run "
                f"now asks for {type(inner).__name__} (--optimizer / --weight-decay-mode "
                f"changed?). Received: checkpoint={path!r}"
            )
        saved = json.loads(self.preprocessing_json.numpy().decode("utf-8"))
        current = self.preprocessing.to_dict()
        # Where the initial weights came from is not how the model is fed.
        saved.pop("weights", None), current.pop("weights", None)
        if saved != current:
            raise run_files.CheckpointMismatchError(
                f"The checkpoint {path} was trained with the preprocessing {saved}, the run's "
                f"config now says {current}. Received: checkpoint={path!r}"
            )

    def _make_optimizer(self):
        import keras

        from se_keras.training.optimizers import make_optimizer
        from se_keras.training.schedules import TrainingSchedule

        config = self.config
        warmup = int(round(config.warmup_epochs * self.steps_per_epoch))
        if warmup and warmup >= self.total_steps:
            # `--epochs 1` with the recipe's 1-epoch warmup: the rate would
            # never leave the warmup ramp. Shrink it to half the run.
            shrunk = self.total_steps // 2
            self._say(f"Note: the warmup of {config.warmup_epochs:g} epoch(s) ({warmup} steps) "
                      f"does not fit the {self.total_steps}-step run; shortened to "
                      f"{shrunk} steps.")
            warmup = shrunk
        self.schedule = TrainingSchedule(
            config.scaled_lr, self.total_steps, warmup, config.schedule,
            config.lr_boundaries, config.lr_decay,
        )
        optimizer = make_optimizer(
            config.optimizer, self.schedule, momentum=config.momentum,
            nesterov=config.nesterov, weight_decay=config.weight_decay,
            weight_decay_mode=config.resolved_weight_decay_mode,
            decay_bn_and_bias=config.decay_bn_and_bias, model=self.model,
        )
        self.loss_scaling = self.policy == "mixed_float16"
        if self.loss_scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        # Built now, so that a restore fills the slots instead of deferring.
        optimizer.build(self.model.trainable_variables)
        self.optimizer = optimizer

    def _make_datasets(self):
        from se_keras.data import eval_dataset
        from se_keras.data import train_dataset

        config = self.config
        start_step = int(self.step.numpy())

        def train_fn(input_context):
            return train_dataset(
                self.source.train, num_classes=self.num_classes,
                global_batch_size=config.batch_size, preprocessing=self.preprocessing,
                augmentation=self.augmentation, input_context=input_context, seed=config.seed,
                start_step=start_step, steps_per_epoch=self.steps_per_epoch,
                deterministic=config.deterministic or config.data_deterministic,
            )

        self.train_iterator = iter(self.strategy.distribute_datasets_from_function(train_fn))
        self.eval_data = None
        if self.source.validation is not None:
            def eval_fn(input_context):
                return eval_dataset(
                    self.source.validation, num_classes=self.num_classes,
                    global_batch_size=config.batch_size, preprocessing=self.preprocessing,
                    input_context=input_context, pad=True, cache=config.cache,
                )

            self.eval_data = self.strategy.distribute_datasets_from_function(eval_fn)

    def _make_steps(self):
        import keras
        import tensorflow as tf

        config = self.config
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        global_batch = config.batch_size
        smoothing = config.label_smoothing
        top_k = min(5, self.num_classes)
        agree = self.loss_scaling and strategy.num_replicas_in_sync > 1

        def per_example_loss(labels, probs):
            return keras.losses.categorical_crossentropy(
                labels, probs, label_smoothing=smoothing
            )

        def forward_backward(images, labels):
            with tf.GradientTape() as tape:
                # The classifier runs in float32 under mixed policies; the
                # cast is a no-op then, and keeps the loss in float32 anyway.
                probs = tf.cast(model(images, training=True), tf.float32)
                losses = per_example_loss(labels, probs)
                loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            return grads, _stats(labels, probs, losses, top_k)

        if config.jit_compile:
            forward_backward = tf.function(forward_backward, jit_compile=True)

        def replica_step(images, labels):
            grads, stats = forward_backward(images, labels)
            if agree:
                grads = _agree_on_finiteness(grads)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return stats

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
                stats = one_step(iterator)
                totals = {k: totals[k] + stats[k] for k in _STAT_KEYS}
            return totals

        if config.steps_per_loop == 1:
            # No while loop: a graph that is quicker to optimize, the same step.
            train_loop = tf.function(lambda iterator, num_steps: one_step(iterator))

        def eval_replica(images, labels, weights):
            probs = tf.cast(model(images, training=False), tf.float32)
            losses = keras.losses.categorical_crossentropy(labels, probs)
            return _stats(labels, probs, losses, top_k, weights)

        @tf.function
        def eval_step(batch):
            return reduce(strategy.run(eval_replica, args=batch))

        @tf.function
        def all_mean(value):
            per_replica = strategy.run(lambda: tf.identity(value))
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

        self._train_loop = train_loop
        self._eval_step = eval_step
        self._all_mean = all_mean

    def _write_config(self):
        import keras
        import tensorflow as tf

        from se_keras.training import run_files
        from se_keras.version import __version__

        if not self.is_chief:
            return
        data = {
            "model": self.model_config,
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": self.source.class_names,
            "train": self.config.to_dict(),
            "init_weights": self.config.weights,
            "data": {
                "source": self.source.kind,
                "spec": self.config.data,
                "train_examples": self.source.train.num_examples,
                "validation_examples": (self.source.validation.num_examples
                                        if self.source.validation is not None else 0),
            },
            "runtime": {
                "strategy": self.strategy_kind,
                "replicas": self.strategy.num_replicas_in_sync,
                "precision": self.policy,
                "steps_per_epoch": self.steps_per_epoch,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "se_keras": __version__,
            },
        }
        if self.results:
            data["results"] = self.results
        run_files.write_json_atomically(self.run_dir / run_files.CONFIG_NAME, data)

    def _make_writers(self):
        import tensorflow as tf

        if self.is_chief:
            logs = self.run_dir / LOGS_NAME
            self.train_writer = tf.summary.create_file_writer(str(logs / "train"))
            self.val_writer = tf.summary.create_file_writer(str(logs / "validation"))
        else:
            self.train_writer = self.val_writer = tf.summary.create_noop_writer()

    # ------------------------------------------------------------ the loop

    def current_lr(self):
        return float(self.schedule(self.optimizer.iterations))

    def save_checkpoint(self, epoch_totals=None, epoch_start=None):
        """Writes a checkpoint of the current step (all workers; the chief's is kept).

        Args:
            epoch_totals: the current epoch's running sums, saved with it.
            epoch_start: when the current epoch started (its time so far is saved).
        """
        if epoch_totals is not None:
            self.epoch_sums.assign([epoch_totals[k] for k in _STAT_KEYS])
        if epoch_start is not None:
            self.epoch_seconds.assign(time.time() - epoch_start)
        step = int(self.step.numpy())
        path = self.manager.save(checkpoint_number=step)
        self.latest_checkpoint = path
        if self.is_chief:
            self._write_history()
        for callback in self.callbacks:
            callback.on_checkpoint(self, step, path)
        return path

    def _write_history(self):
        from se_keras.training import run_files

        if self.is_chief:
            run_files.write_json_atomically(self.run_dir / HISTORY_NAME, self.history)

    def _raise_data_error(self, error, split):
        """Raises the ValueError that names the bad data, or `error` itself if it is not that."""
        from se_keras.data import errors as data_errors

        explained = data_errors.explain(error, split, skip_bad_files=self.config.skip_bad_files)
        if explained is None:
            raise error
        raise explained from error

    def evaluate(self):
        """Validation loss, top-1 and top-5 over the whole validation split."""
        if self.eval_data is None:
            return {}
        import tensorflow as tf

        totals = {k: 0.0 for k in _STAT_KEYS}
        try:
            for batch in self.eval_data:
                stats = self._eval_step(batch)
                for k in _STAT_KEYS:
                    totals[k] += float(stats[k])
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
            self._raise_data_error(error, self.source.validation)
        n = max(totals["count"], 1.0)
        return {"val_loss": totals["loss"] / n, "val_accuracy": totals["top1"] / n,
                "val_top5": totals["top5"] / n, "val_examples": int(totals["count"])}

    def _fit_budget(self, seconds_per_step):
        """Fits the schedule's length to the time budget (same answer on every worker).

        `seconds_per_step` is wall time per step since the first step of
        this process (so excluding tracing), evaluations and checkpoints
        included.
        """
        import tensorflow as tf

        budget = self.config.time_budget_min * 60.0
        step = int(self.step.numpy())
        remaining = max(budget - float(self.train_seconds.numpy()), 0.0)
        estimate = step + remaining / max(seconds_per_step, 1e-9)
        # Workers' clocks differ; they must agree on where to stop.
        estimate = float(self._all_mean(tf.constant(estimate, tf.float32)))
        total = int(min(self.total_steps, max(step + 1, math.floor(estimate))))
        old_total = float(self.schedule.total_steps.numpy())
        if self.schedule.kind == "step":
            # Never move back above a step boundary already passed (a 10x jump).
            passed = [b for b in self.schedule.boundaries if step >= b * old_total]
            if passed:
                total = min(total, max(step + 1, math.floor(step / max(passed))))
        self.schedule.set_total_steps(total)
        self.stop_step = min(total, self.config.max_steps or total)

    def fit(self):
        """Trains until the schedule ends (or the step or time limit); returns the results."""
        import keras
        import tensorflow as tf

        try:
            self._setup()
            return self._fit(keras, tf)
        finally:
            if hasattr(self, "_previous_policy"):
                keras.config.set_dtype_policy(self._previous_policy)
            if not self.is_chief and hasattr(self, "_write_dir"):
                shutil.rmtree(self._write_dir, ignore_errors=True)

    def _fit(self, keras, tf):
        config = self.config
        spe = self.steps_per_epoch
        self._say(
            f"Training {config.model} on {self.source.description or self.source.name} "
            f"({self.source.train.num_examples} train / "
            f"{self.source.validation.num_examples if self.source.validation else 0} val, "
            f"{self.num_classes} classes) | {self.strategy_kind} strategy, "
            f"{self.strategy.num_replicas_in_sync} replica(s), {self.policy}, "
            f"batch {config.batch_size}, {spe} steps/epoch | {self.run_dir}"
        )
        for callback in self.callbacks:
            callback.on_train_begin(self)
        step = int(self.step.numpy())
        if config.time_budget_min and self.latest:
            self.stop_step = min(int(self.schedule.total_steps.numpy()), self.stop_step)
        calibrate_at = step + 1 + min(spe, 30) if config.time_budget_min else None
        # Wall time of the training phase (steps, evaluations, checkpoints);
        # the first call (tracing) is left out of the speed figures.
        tick = time.time()
        steady = None
        loop_seconds, loop_examples = 0.0, 0
        progbar = None
        # Resumed mid-epoch: the epoch's sums so far come from the checkpoint.
        epoch_totals = dict(zip(_STAT_KEYS, (float(v) for v in self.epoch_sums.numpy())))
        epoch_start = time.time() - float(self.epoch_seconds.numpy())
        interval_start, interval_examples = time.time(), 0
        images_per_sec = 0.0
        if step >= self.stop_step:
            self._say("Nothing to train: the run is complete.")
        while step < self.stop_step:
            if progbar is None:
                epoch = step // spe + 1
                progbar = keras.utils.Progbar(
                    target=spe, verbose=1 if (self.is_chief and config.verbose == 1) else 0,
                    stateful_metrics=["loss", "acc", "lr", "img/s"], unit_name="step",
                )
                if config.verbose == 1:
                    self._say(f"Epoch {epoch}/{math.ceil(self.stop_step / spe)}")
                epoch_done = step % spe
                if epoch_done:
                    progbar.update(epoch_done)
            n = min(config.steps_per_loop, spe - step % spe, self.stop_step - step)
            if config.checkpoint_every_steps:
                n = min(n, config.checkpoint_every_steps - step % config.checkpoint_every_steps)
            if calibrate_at is not None and step < calibrate_at:
                n = min(n, calibrate_at - step)
            t0 = time.time()
            try:
                totals = self._train_loop(self.train_iterator, tf.constant(n, tf.int64))
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
                self._raise_data_error(error, self.source.train)
            totals = {k: float(v) for k, v in totals.items()}
            dt = time.time() - t0
            step += n
            self.step.assign(step)
            if steady is None:
                steady = (time.time(), step)
            else:
                loop_seconds += dt
                loop_examples += n * config.batch_size
            for k in _STAT_KEYS:
                epoch_totals[k] += totals[k]
            interval_examples += n * config.batch_size
            count = max(totals["count"], 1.0)
            logs = {"loss": totals["loss"] / count, "accuracy": totals["top1"] / count,
                    "lr": self.current_lr()}
            if step % config.log_every_steps < n or step == self.stop_step:
                images_per_sec = interval_examples / max(time.time() - interval_start, 1e-9)
                interval_start, interval_examples = time.time(), 0
                with self.train_writer.as_default(step=step):
                    tf.summary.scalar("loss", logs["loss"])
                    tf.summary.scalar("accuracy", logs["accuracy"])
                    tf.summary.scalar("learning_rate", logs["lr"])
                    tf.summary.scalar("images_per_second", images_per_sec)
            logs["images_per_sec"] = images_per_sec
            seen = max(epoch_totals["count"], 1.0)
            progbar.update(step % spe or spe, [
                ("loss", epoch_totals["loss"] / seen), ("acc", epoch_totals["top1"] / seen),
                ("lr", logs["lr"]),
                ("img/s", epoch_totals["count"] / max(time.time() - epoch_start, 1e-9)),
            ])
            for callback in self.callbacks:
                callback.on_step_end(self, step, logs)
            if calibrate_at is not None and step == calibrate_at:
                self._advance_clock(tick)
                tick = time.time()
                self._fit_budget((time.time() - steady[0]) / max(step - steady[1], 1))
            end_of_epoch = step % spe == 0 or step == self.stop_step
            if end_of_epoch:
                epoch = math.ceil(step / spe)
                count = max(epoch_totals["count"], 1.0)
                row = {"epoch": epoch, "step": step, "loss": epoch_totals["loss"] / count,
                       "accuracy": epoch_totals["top1"] / count, "lr": logs["lr"],
                       "images_per_sec": epoch_totals["count"] / max(time.time() - epoch_start,
                                                                     1e-9),
                       "seconds": time.time() - epoch_start}
                last = step == self.stop_step
                due = config.eval_every_epochs and epoch % config.eval_every_epochs == 0
                if self.eval_data is not None and (due or last):
                    row.update(self.evaluate())
                    with self.val_writer.as_default(step=step):
                        tf.summary.scalar("loss", row["val_loss"])
                        tf.summary.scalar("accuracy", row["val_accuracy"])
                        tf.summary.scalar("top5_accuracy", row["val_top5"])
                self.history.append(row)
                if step % spe == 0:
                    epoch_totals = {k: 0.0 for k in _STAT_KEYS}
                    epoch_start = time.time()
                # A stop mid-epoch keeps the epoch's sums: a resume completes them.
                self.save_checkpoint(epoch_totals, epoch_start)
                summary = (f"epoch {epoch}: loss {row['loss']:.4f}, acc {row['accuracy']:.4f}"
                           + (f", val_loss {row['val_loss']:.4f}, val_acc "
                              f"{row['val_accuracy']:.4f}, val_top5 {row['val_top5']:.4f}"
                              if "val_loss" in row else "")
                           + f", {row['images_per_sec']:.0f} img/s")
                if config.verbose == 2:
                    self._say(summary)
                elif "val_loss" in row:
                    self._say(f"  validation: loss {row['val_loss']:.4f}, top-1 "
                              f"{row['val_accuracy']:.4f}, top-5 {row['val_top5']:.4f}")
                for callback in self.callbacks:
                    callback.on_epoch_end(self, epoch, row)
                self._advance_clock(tick)
                tick = time.time()
                if config.time_budget_min and not last:
                    self._fit_budget((time.time() - steady[0]) / max(step - steady[1], 1))
                    if (self.strategy_kind != "multi_worker" and
                            self.train_seconds.numpy() > config.time_budget_min * 60.0):
                        self.stop_step = step
                        self.schedule.set_total_steps(step)
                progbar = None
            elif config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
                self.save_checkpoint(epoch_totals, epoch_start)
            self._advance_clock(tick)
            tick = time.time()
        self.loop_images_per_sec = loop_examples / loop_seconds if loop_seconds else None
        return self._finish(tf)

    def _advance_clock(self, tick):
        self.train_seconds.assign_add(time.time() - tick)

    def _finish(self, tf):
        config = self.config
        last_row = self.history[-1] if self.history else {}
        if last_row.get("step") == int(self.step.numpy()) and "val_loss" in last_row:
            final = {k: last_row[k] for k in ("val_loss", "val_accuracy", "val_top5",
                                               "val_examples")}
        else:
            final = self.evaluate()
        if final:
            self._say(f"Validation: top-1 {final['val_accuracy']:.4f}, top-5 "
                      f"{final['val_top5']:.4f}, loss {final['val_loss']:.4f} "
                      f"({final['val_examples']} images)")
        last_epoch = self.history[-1] if self.history else {}
        self.results = {
            "steps": int(self.step.numpy()),
            "epochs": (int(self.step.numpy()) / self.steps_per_epoch),
            "train_seconds": float(self.train_seconds.numpy()),
            "train_loss": last_epoch.get("loss"),
            "train_accuracy": last_epoch.get("accuracy"),
            # Training steps only (no tracing, evaluation or checkpoints).
            "images_per_sec": getattr(self, "loop_images_per_sec", None),
            **final,
        }
        if self.is_chief:
            self._write_history()
            curves = plot_curves(self.history, self.run_dir / CURVES_NAME,
                                 f"{config.model} on {self.source.name}")
            if curves:
                self.results["curves"] = str(curves)
            if config.export:
                from se_keras.export import export_for_serving

                # The one SavedModel format: what `se-keras export --checkpoint`
                # writes (image bytes in, float32, checked against the model).
                path = export_for_serving(
                    self.model, self.run_dir / SAVED_MODEL_NAME,
                    preprocessing={"weights": self.latest_checkpoint},
                    labels=self.source.class_names, verbose=False,
                )
                self.results["saved_model"] = str(path)
                self._say(f"SavedModel: {path}")
            self._write_config()
            self.train_writer.flush()
            self.val_writer.flush()
            self._say(f"Run directory: {self.run_dir}")
        if self.strategy_kind == "multi_worker":
            # A barrier: workers leave together, after the chief's export, so
            # that no worker waits at exit for a peer that is still busy.
            self._all_mean(tf.constant(0.0))
        for callback in self.callbacks:
            callback.on_train_end(self, self.results)
        return self.results


_STAT_KEYS = ("loss", "top1", "top5", "count")


def _stats(labels, probs, losses, top_k, weights=None):
    """Per-replica sums: loss, top-1 and top-k hits, examples (weighted)."""
    import tensorflow as tf

    targets = tf.argmax(labels, axis=-1, output_type=tf.int32)
    if weights is None:
        weights = tf.ones_like(losses)
    top1 = tf.cast(tf.math.in_top_k(targets, probs, 1), tf.float32)
    top5 = tf.cast(tf.math.in_top_k(targets, probs, top_k), tf.float32)
    return {"loss": tf.reduce_sum(losses * weights), "top1": tf.reduce_sum(top1 * weights),
            "top5": tf.reduce_sum(top5 * weights), "count": tf.reduce_sum(weights)}


def _agree_on_finiteness(grads):
    """Makes every replica see non-finite gradients if any replica has them.

    Keras' LossScaleOptimizer decides to apply or skip a step from the first
    local replica's (not yet all-reduced) gradients; replicas that disagree
    would apply an overflowed sum, or leave workers waiting on each other.
    One scalar all-reduce makes the decision global.
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


def _synchronize_batchnorm(model):
    """Computes BatchNorm batch statistics over all replicas (Keras' `synchronized`)."""
    import keras

    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        stack.extend(getattr(layer, "layers", []))


def train(config, resume=False, callbacks=(), strategy=None):
    """Trains a model as `config` says; see `Trainer`.

    Args:
        config: a `TrainConfig` (see `resolve_config`).
        resume: continue the run in `config.run_dir` from its latest checkpoint.
        callbacks: `Callback` objects.
        strategy: use this `tf.distribute.Strategy` instead of `config.strategy`.

    Returns:
        The results dict (steps, validation top-1 / top-5, images/s, paths).

    Example:
    >>> from se_keras.training import resolve_config
    >>> results = train(resolve_config("default", {"epochs": 1}))  # doctest: +SKIP
    """
    return Trainer(config, resume=resume, callbacks=callbacks, strategy=strategy).fit()

