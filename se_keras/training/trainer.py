"""The training engine: one custom loop for every tf.distribute strategy.

`train(config)` runs unchanged under the default strategy, `MirroredStrategy`
(GPUs or logical CPUs), `MultiWorkerMirroredStrategy` (TF_CONFIG) and
`TPUStrategy`. Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so the loop is written out (`loop`):
`strategy.run` of a replica step (`steps`), `distribute_datasets_from_function`
with per-worker sharding (`build`), `tf.nn.compute_average_loss` over the
global batch, a Keras model and a Keras optimizer (wrapped in
`LossScaleOptimizer` under mixed_float16).

What a run writes (the run-directory contract of `run_files`):

    config.json      model (with its preprocessing record), preprocessing,
                     class names, the resolved training config, results
    checkpoints/     `tf.train.CheckpointManager` files (`checkpointing`)
    logs/            TensorBoard scalars (train/, validation/; `reporting`)
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

import pathlib
import shutil
import time

from se_keras.training import build
from se_keras.training import checkpointing
from se_keras.training import reporting
from se_keras.training import run_files
from se_keras.training.callbacks import Callback  # noqa: F401 - re-exported
from se_keras.training.loop import TrainingLoop
from se_keras.training.reporting import CURVES_NAME
from se_keras.training.reporting import LOGS_NAME  # noqa: F401 - re-exported
from se_keras.training.reporting import plot_curves
from se_keras.training.run_files import HISTORY_NAME
from se_keras.training.steps import STAT_KEYS

SAVED_MODEL_NAME = "saved_model"


def default_run_dir(config, multi_worker=False):
    """`output_root/name`; the default name is model-data(-time).

    Example:
    >>> default_run_dir(resolve_config("default", {"name": "demo"}))  # doctest: +SKIP
    PosixPath('runs/demo')
    """
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

        config = self.config
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
        self.candidates = checkpointing.check_run_dir(self.run_dir, self.resume)
        self.source = build.load_source(config)
        self.num_classes = self.source.num_classes
        self._plan_steps()
        self._set_precision()
        self._build_model()
        self._make_state()
        if self.resume:
            self._resume()
        self.latest_checkpoint = self.latest
        self.train_iterator, self.eval_data = build.make_datasets(
            self.strategy, self.source, config, self.preprocessing, self.augmentation,
            int(self.step.numpy()), self.steps_per_epoch,
        )
        self._make_steps()
        self._write_config()
        self.train_writer, self.val_writer = reporting.make_writers(self.run_dir, self.is_chief)

    def _plan_steps(self):
        config = self.config
        num_train = self.source.train.num_examples
        self.steps_per_epoch = config.steps_per_epoch or max(1, num_train // config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps:
            self.stop_step = min(self.total_steps, config.max_steps)
        else:
            self.stop_step = self.total_steps

    def _set_precision(self):
        import keras

        from se_keras.training import distribute

        self.policy = distribute.choose_precision(self.config.precision, self.strategy)
        self._previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.policy)

    def _build_model(self):
        """The model, schedule and optimizer (in the strategy's scope), and the run's record."""
        from se_keras.preprocessing import get_preprocessing

        config = self.config
        kwargs, weights = build.model_arguments(config, self.num_classes, self.run_dir,
                                                self.resume)
        with self.strategy.scope():
            self.model = run_files.build_model({"name": config.model,
                                                "kwargs": {**kwargs, "weights": weights}})
            if config.sync_batchnorm:
                build.synchronize_batchnorm(self.model)
            self.schedule = build.make_schedule(config, self.steps_per_epoch, self.total_steps,
                                                self._say)
            self.loss_scaling = self.policy == "mixed_float16"
            self.optimizer = build.make_run_optimizer(config, self.schedule, self.model,
                                                      self.loss_scaling)
        # The record the model carries is the run's: the pipelines, the saved
        # config and the export all read it from here.
        self.preprocessing = get_preprocessing(self.model)
        kwargs["preprocessing"] = self.preprocessing.to_dict()
        self.model_config = {"name": config.model, "kwargs": kwargs}

    def _make_state(self):
        """The training state's variables, its checkpoint and the manager that writes it."""
        self.counters = checkpointing.make_counters(self.preprocessing, self.optimizer)
        (self.step, self.train_seconds, self.epoch_sums, self.epoch_seconds,
         self.preprocessing_json, self.optimizer_name) = self.counters
        self.augmentation = build.make_augmentation(self.config)
        self.checkpoint = checkpointing.make_checkpoint(self.model, self.optimizer,
                                                        self.schedule, self.counters)
        self._write_dir = checkpointing.write_dir(self.run_dir, self.is_chief, self.task_id)
        self.manager = checkpointing.make_manager(
            self.checkpoint, self._write_dir, self.step, self.config.keep_checkpoints,
            repair_from=self.candidates if (self.resume and self.is_chief) else None,
        )
        self.latest = None

    def _resume(self):
        self.latest = run_files.restore_newest_intact(
            self.candidates, self._restore, say=self._say
        )
        step = int(self.step.numpy())
        self._say(f"Resumed from {self.latest} at step {step}.")
        self.history = checkpointing.resumed_history(self.run_dir, step, self.steps_per_epoch)

    def _restore(self, path):
        """Restores the whole training state from `path`, requiring an exact match."""
        checkpointing.restore_training_state(path, self.model, self.checkpoint, self.optimizer,
                                             self.counters, self.preprocessing)

    def _make_steps(self):
        from se_keras.training.steps import make_steps

        config = self.config
        steps = make_steps(
            self.model, self.optimizer, self.strategy, global_batch_size=config.batch_size,
            label_smoothing=config.label_smoothing, top_k=min(5, self.num_classes),
            jit_compile=config.jit_compile, steps_per_loop=config.steps_per_loop,
            agree=self.loss_scaling and self.strategy.num_replicas_in_sync > 1,
        )
        self._train_loop, self._eval_step, self._all_mean = steps

    def _write_config(self):
        import keras
        import tensorflow as tf

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
            self.epoch_sums.assign([epoch_totals[k] for k in STAT_KEYS])
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

        totals = {k: 0.0 for k in STAT_KEYS}
        try:
            for batch in self.eval_data:
                stats = self._eval_step(batch)
                for k in STAT_KEYS:
                    totals[k] += float(stats[k])
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
            self._raise_data_error(error, self.source.validation)
        n = max(totals["count"], 1.0)
        return {"val_loss": totals["loss"] / n, "val_accuracy": totals["top1"] / n,
                "val_top5": totals["top5"] / n, "val_examples": int(totals["count"])}

    def fit(self):
        """Trains until the schedule ends (or the step or time limit); returns the results."""
        import keras

        try:
            self._setup()
            return self._fit()
        finally:
            if hasattr(self, "_previous_policy"):
                keras.config.set_dtype_policy(self._previous_policy)
            if not self.is_chief and hasattr(self, "_write_dir"):
                shutil.rmtree(self._write_dir, ignore_errors=True)

    def _fit(self):
        self._announce()
        for callback in self.callbacks:
            callback.on_train_begin(self)
        self.loop_images_per_sec = TrainingLoop(self).run()
        return self._finish()

    def _announce(self):
        config, source = self.config, self.source
        self._say(
            f"Training {config.model} on {source.description or source.name} "
            f"({source.train.num_examples} train / "
            f"{source.validation.num_examples if source.validation else 0} val, "
            f"{self.num_classes} classes) | {self.strategy_kind} strategy, "
            f"{self.strategy.num_replicas_in_sync} replica(s), {self.policy}, "
            f"batch {config.batch_size}, {self.steps_per_epoch} steps/epoch | {self.run_dir}"
        )

    def _finish(self):
        final = self._final_metrics()
        if final:
            self._say(reporting.final_validation_line(final))
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
            self._write_outputs()
        if self.strategy_kind == "multi_worker":
            import tensorflow as tf

            # A barrier: workers leave together, after the chief's export, so
            # that no worker waits at exit for a peer that is still busy.
            self._all_mean(tf.constant(0.0))
        for callback in self.callbacks:
            callback.on_train_end(self, self.results)
        return self.results

    def _final_metrics(self):
        """The last epoch's validation metrics if it has them at the final step, else a new evaluation."""
        last_row = self.history[-1] if self.history else {}
        if last_row.get("step") == int(self.step.numpy()) and "val_loss" in last_row:
            return {k: last_row[k] for k in ("val_loss", "val_accuracy", "val_top5",
                                             "val_examples")}
        return self.evaluate()

    def _write_outputs(self):
        """The chief's closing files: history, curves, the SavedModel and config.json."""
        config = self.config
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
