"""Fitting a run's learning-rate schedule to a wall-clock budget (`--time-budget-min`).

The trainer measures its speed after a few steps and at every epoch end;
the schedule is then shortened to the steps that the remaining time
allows, so that a budgeted run still ends its schedule (warmup, decay)
instead of being cut off in the middle of it.

Example:
>>> budget = TimeBudget(30, max_steps=None, total_steps=10_000, schedule=schedule,
...                     all_mean=float)  # doctest: +SKIP
>>> stop_step = budget.fit(step=100, spent_seconds=60.0, seconds_per_step=0.5)  # doctest: +SKIP
"""

import math

# Steps after the first (tracing) call that the first speed measurement spans,
# at most: an epoch, if shorter.
CALIBRATION_STEPS = 30


class TimeBudget:
    """A run's time budget; `fit` sets the schedule's length and returns the step to stop at.

    Args:
        minutes: the budget of training time (steps, evaluations and
            checkpoints; not the tracing of the first call).
        max_steps: the run's step limit, or None.
        total_steps: the schedule's full length (`epochs` epochs).
        schedule: the `TrainingSchedule`, whose length is set.
        all_mean: maps a float to its mean over all workers, so that the
            workers, whose clocks differ, agree on where to stop.

    Example:
    >>> budget = TimeBudget(30, None, 10_000, schedule, all_mean=float)  # doctest: +SKIP
    """

    def __init__(self, minutes, max_steps, total_steps, schedule, all_mean):
        self.seconds = minutes * 60.0
        self.max_steps = max_steps
        self.total_steps = total_steps
        self.schedule = schedule
        self.all_mean = all_mean

    @staticmethod
    def calibration_step(step, steps_per_epoch):
        """The step after which the speed is first measured, for a loop starting at `step`."""
        return step + 1 + min(steps_per_epoch, CALIBRATION_STEPS)

    def fit(self, step, spent_seconds, seconds_per_step):
        """Fits the schedule's length to the time left (same answer on every worker).

        Args:
            step: the current step.
            spent_seconds: training time spent so far (resumes included).
            seconds_per_step: wall time per step since the first step of
                this process (so excluding tracing), evaluations and
                checkpoints included.

        Returns:
            The step to stop at.
        """
        remaining = max(self.seconds - spent_seconds, 0.0)
        estimate = step + remaining / max(seconds_per_step, 1e-9)
        estimate = self.all_mean(estimate)
        total = int(min(self.total_steps, max(step + 1, math.floor(estimate))))
        old_total = float(self.schedule.total_steps.numpy())
        if self.schedule.kind == "step":
            # Never move back above a step boundary already passed (a 10x jump).
            passed = [b for b in self.schedule.boundaries if step >= b * old_total]
            if passed:
                total = min(total, max(step + 1, math.floor(step / max(passed))))
        self.schedule.set_total_steps(total)
        return min(total, self.max_steps or total)

    def exhausted(self, spent_seconds):
        """True when `spent_seconds` of training time exceed the budget."""
        return spent_seconds > self.seconds

    def stop_now(self, step):
        """Ends the schedule at `step` (the budget is spent); returns the step to stop at."""
        self.schedule.set_total_steps(step)
        return step
