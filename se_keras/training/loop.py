"""The training loop: steps, epoch ends, step checkpoints and the time budget of a set-up run.

`TrainingLoop(trainer).run()` trains a `Trainer` whose setup is done, from
its restored step to its stop step. Each call into the compiled loop runs
up to `steps_per_loop` steps and never crosses an epoch end, a step
checkpoint, the stop step or the time budget's speed measurement, so a
resumed run sees the same calls (and batches) as an unbroken one.

Example:
>>> images_per_sec = TrainingLoop(trainer).run()  # doctest: +SKIP
"""

import math
import time

from se_keras.training import reporting
from se_keras.training.steps import STAT_KEYS
from se_keras.training.time_budget import TimeBudget


class TrainingLoop:
    """One pass of the training loop over a set-up `Trainer`.

    Holds what is not in the checkpoint: the wall-time bookkeeping, the
    speed figures and the epoch's progress bar. The epoch's running sums
    start from the checkpoint (a run resumed mid-epoch).

    Args:
        trainer: a `Trainer` after its setup.

    Example:
    >>> images_per_sec = TrainingLoop(trainer).run()  # doctest: +SKIP
    """

    def __init__(self, trainer):
        import tensorflow as tf

        self.trainer = trainer
        config = trainer.config
        self.step = int(trainer.step.numpy())
        self.budget = None
        if config.time_budget_min:
            self.budget = TimeBudget(
                config.time_budget_min, config.max_steps, trainer.total_steps, trainer.schedule,
                lambda value: float(trainer._all_mean(tf.constant(value, tf.float32))),
            )
            if trainer.latest:
                # A resumed budgeted run keeps the schedule length it fitted.
                trainer.stop_step = min(int(trainer.schedule.total_steps.numpy()),
                                        trainer.stop_step)
        self.calibrate_at = (TimeBudget.calibration_step(self.step, trainer.steps_per_epoch)
                             if self.budget else None)
        # Wall time of the training phase (steps, evaluations, checkpoints)
        # is added to `train_seconds` from `tick` on.
        self.tick = time.time()
        # (time, step) after the first call; the first call (tracing) is
        # left out of the speed figures.
        self.steady = None
        self.loop_seconds, self.loop_examples = 0.0, 0
        self.progbar = None
        self.epoch_totals = dict(zip(STAT_KEYS, (float(v) for v in trainer.epoch_sums.numpy())))
        self.epoch_start = time.time() - float(trainer.epoch_seconds.numpy())
        self.train_scalars = reporting.TrainScalars(trainer.train_writer,
                                                    config.log_every_steps)

    def run(self):
        """Trains up to the trainer's stop step; returns images/s of the training steps (or None)."""
        trainer = self.trainer
        if self.step >= trainer.stop_step:
            trainer._say("Nothing to train: the run is complete.")
        while self.step < trainer.stop_step:
            if self.progbar is None:
                self.progbar = reporting.start_epoch_progress(
                    self.step, trainer.steps_per_epoch, trainer.stop_step,
                    trainer.config.verbose, trainer.is_chief, trainer._say)
            n = self._steps_in_next_call()
            totals = self._train_steps(n)
            logs = self._log_steps(n, totals)
            for callback in trainer.callbacks:
                callback.on_step_end(trainer, self.step, logs)
            if self.calibrate_at is not None and self.step == self.calibrate_at:
                self._advance_clock()
                self._fit_budget()
            self._after_steps(logs)
            self._advance_clock()
        return self.loop_examples / self.loop_seconds if self.loop_seconds else None

    def _steps_in_next_call(self):
        """Steps up to the next epoch end, checkpoint, stop or speed measurement, at most a loop."""
        trainer, step = self.trainer, self.step
        config, spe = trainer.config, trainer.steps_per_epoch
        n = min(config.steps_per_loop, spe - step % spe, trainer.stop_step - step)
        if config.checkpoint_every_steps:
            n = min(n, config.checkpoint_every_steps - step % config.checkpoint_every_steps)
        if self.calibrate_at is not None and step < self.calibrate_at:
            n = min(n, self.calibrate_at - step)
        return n

    def _train_steps(self, n):
        """Runs `n` training steps; returns their summed stats and advances the step."""
        import tensorflow as tf

        trainer = self.trainer
        t0 = time.time()
        try:
            totals = trainer._train_loop(trainer.train_iterator, tf.constant(n, tf.int64))
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
            trainer._raise_data_error(error, trainer.source.train)
        totals = {k: float(v) for k, v in totals.items()}
        dt = time.time() - t0
        self.step += n
        trainer.step.assign(self.step)
        if self.steady is None:
            self.steady = (time.time(), self.step)
        else:
            self.loop_seconds += dt
            self.loop_examples += n * trainer.config.batch_size
        for k in STAT_KEYS:
            self.epoch_totals[k] += totals[k]
        return totals

    def _log_steps(self, n, totals):
        """The steps' logs, to TensorBoard when due and to the progress bar."""
        trainer = self.trainer
        count = max(totals["count"], 1.0)
        logs = {"loss": totals["loss"] / count, "accuracy": totals["top1"] / count,
                "lr": trainer.current_lr()}
        logs["images_per_sec"] = self.train_scalars.update(
            self.step, n, n * trainer.config.batch_size, logs,
            last=self.step == trainer.stop_step)
        reporting.update_epoch_progress(self.progbar, self.step, trainer.steps_per_epoch,
                                        self.epoch_totals, self.epoch_start, logs["lr"])
        return logs

    def _after_steps(self, logs):
        """Ends the epoch, or writes a step checkpoint, when due."""
        trainer = self.trainer
        every = trainer.config.checkpoint_every_steps
        if self.step % trainer.steps_per_epoch == 0 or self.step == trainer.stop_step:
            self._end_epoch(logs["lr"])
        elif every and self.step % every == 0:
            trainer.save_checkpoint(self.epoch_totals, self.epoch_start)

    def _end_epoch(self, lr):
        """Evaluates if due, records and reports the epoch, checkpoints, refits the budget."""
        trainer, step, spe = self.trainer, self.step, self.trainer.steps_per_epoch
        epoch = math.ceil(step / spe)
        # A spent budget ends the run here, before the row and the checkpoint:
        # the last row gets its validation metrics, and the checkpoint records
        # the shortened schedule, so a resume finds the run complete.
        # Multi-worker runs rely on the fit alone, which all workers agree on.
        self._advance_clock()
        if (self.budget and step < trainer.stop_step and trainer.strategy_kind != "multi_worker"
                and self.budget.exhausted(trainer.train_seconds.numpy())):
            trainer.stop_step = self.budget.stop_now(step)
        last = step == trainer.stop_step
        row = self._epoch_row(epoch, lr, last)
        trainer.history.append(row)
        if step % spe == 0:
            self.epoch_totals = {k: 0.0 for k in STAT_KEYS}
            self.epoch_start = time.time()
        # A stop mid-epoch keeps the epoch's sums: a resume completes them.
        trainer.save_checkpoint(self.epoch_totals, self.epoch_start)
        reporting.report_epoch(epoch, row, trainer.config.verbose, trainer._say)
        for callback in trainer.callbacks:
            callback.on_epoch_end(trainer, epoch, row)
        self._advance_clock()
        if self.budget and not last:
            # With the budget spent after the row (an evaluation that overran),
            # the fit ends the run at the next step (a later fit may add one),
            # at a validated last row.
            self._fit_budget()
        self.progbar = None

    def _epoch_row(self, epoch, lr, last):
        """The epoch's history row, with validation metrics when due (and at the end)."""
        trainer, totals = self.trainer, self.epoch_totals
        count = max(totals["count"], 1.0)
        row = {"epoch": epoch, "step": self.step, "loss": totals["loss"] / count,
               "accuracy": totals["top1"] / count, "lr": lr,
               "images_per_sec": totals["count"] / max(time.time() - self.epoch_start, 1e-9),
               "seconds": time.time() - self.epoch_start}
        every = trainer.config.eval_every_epochs
        due = every and epoch % every == 0
        if trainer.eval_data is not None and (due or last):
            row.update(trainer.evaluate())
            reporting.write_validation_scalars(trainer.val_writer, self.step, row)
        return row

    def _advance_clock(self):
        self.trainer.train_seconds.assign_add(time.time() - self.tick)
        self.tick = time.time()

    def _fit_budget(self):
        """Fits the schedule to the time left, at the speed measured since the first call."""
        trainer = self.trainer
        seconds_per_step = (time.time() - self.steady[0]) / max(self.step - self.steady[1], 1)
        trainer.stop_step = self.budget.fit(int(trainer.step.numpy()),
                                            float(trainer.train_seconds.numpy()),
                                            seconds_per_step)
