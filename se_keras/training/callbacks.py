"""Hooks into the training loop.

Example:
>>> class PrintLoss(Callback):
...     def on_epoch_end(self, trainer, epoch, logs):
...         print(epoch, logs["loss"])
"""


class Callback:
    """Hooks into the training loop; subclass and override what you need.

    Every hook receives the `Trainer`, so a callback can read its model,
    optimizer, schedule and run directory.

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
