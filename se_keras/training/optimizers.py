"""SGD with the weight decay of the SE paper, PyTorch, Caffe and timm.

Keras' `keras.optimizers.SGD(weight_decay=wd)` decays *decoupled*: after the
momentum step it shrinks every weight by `learning_rate * wd * w`. The SE
paper trained with Caffe, whose `weight_decay` (like PyTorch's and timm's) is
*coupled* L2: `wd * w` is added to the gradient before the momentum, so it is
accumulated by the momentum buffer as well. With momentum 0.9 the coupled
decay is about `1 / (1 - 0.9) = 10` times stronger than the decoupled one with
the same coefficient, so a paper recipe's `weight_decay=1e-4` only means what
the paper means with `L2SGD`.

- `L2SGD`: `torch.optim.SGD(params, lr, momentum, dampening=0, weight_decay,
  nesterov)` as a Keras optimizer.
- `no_decay_variables(model)`: the variables timm's `filter_bias_and_bn=True`
  leaves undecayed (every trainable variable of rank <= 1).
- `make_optimizer(...)`: the trainer's one place to choose an optimizer and
  what its weight decay means.

Example:
>>> import keras
>>> from se_keras.training.optimizers import L2SGD
>>> optimizer = L2SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-4)
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> model.compile(optimizer=optimizer, loss="mse")
"""

import numbers
import re

import keras
from keras import ops

from se_keras._validation import check_choice

KINDS = ("sgd", "adamw")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(
            f"`{name}` must be a number >= 0. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="se_keras")
class L2SGD(keras.optimizers.Optimizer):
    """SGD with momentum and coupled (L2) weight decay, as `torch.optim.SGD`.

    The update of a variable `w` with gradient `g` and learning rate `lr`
    (the value of the schedule at this step) is PyTorch's, with
    `dampening=0`:

    ```python
    d = g + weight_decay * w          # L2: the decay goes through the momentum
    buf = momentum * buf + d          # buf starts at 0, so the first buf is d
    d = d + momentum * buf if nesterov else buf
    w = w - lr * d
    ```

    The learning rate multiplies the update *outside* the momentum buffer, as
    in PyTorch. Keras' `SGD` (`m = momentum * m - lr * g; w = w + m`) and Caffe
    (`v = momentum * v + lr * (g + weight_decay * w); w = w - v`) put it
    inside. The two forms give the same weights only while the learning rate
    is constant; when a schedule changes it, the PyTorch form applies the new
    rate to the whole buffer at once, while the Caffe/Keras form lets the old
    rate fade out with the momentum. This class implements the PyTorch form,
    so runs match PyTorch and timm step for step.

    Unlike `keras.optimizers.SGD(weight_decay=...)`, whose decay is
    decoupled (`w -= lr * weight_decay * w`, outside the momentum), the
    decay here is added to the gradient, so with momentum `m` its effect on a
    weight is about `1 / (1 - m)` times stronger (10 times for `m=0.9`). The
    base class' own decoupled `weight_decay` is switched off
    (`self.weight_decay` is None); the L2 coefficient is
    `self.l2_weight_decay`.

    Saving: the class is registered as "se_keras>L2SGD"; a `.keras` file of a
    model compiled with it loads (also with `safe_mode=True`) once this
    module has been imported. `tf.train.Checkpoint` stores the momentum
    buffers by position, exactly where Keras SGD stores its `momentums`, so a
    Keras SGD checkpoint restores into an `L2SGD` without error although its
    buffers hold `-lr * buf`, not `buf`: do not resume across that switch.

    Args:
        learning_rate: A float or a
            `keras.optimizers.schedules.LearningRateSchedule` (or a callable
            with no arguments). Defaults to `0.01`.
        momentum: A float >= 0. `0` is plain SGD and creates no momentum
            buffers. Defaults to `0.0`.
        nesterov: Whether to use Nesterov momentum (PyTorch's form,
            above). With `momentum=0` it changes nothing. Defaults to `False`.
        weight_decay: The L2 coefficient, a float >= 0 (`None` means 0).
            Defaults to `0.0`.
        exclude_from_weight_decay_names: Optional list of strings, the
            `var_names` of `exclude_from_weight_decay`; the form in which
            exclusions survive `get_config`.
        **kwargs: The base optimizer's keyword arguments (`name`,
            `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`,
            `ema_momentum`, `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`), passed through. Not
            `weight_decay`: that one is the L2 coefficient above.

    Example:
    >>> import keras
    >>> import numpy as np
    >>> from se_keras.training.optimizers import L2SGD
    >>> w = keras.Variable(np.ones((2,), "float32"))
    >>> optimizer = L2SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5)
    >>> optimizer.apply([np.zeros((2,), "float32")], [w])
    >>> np.allclose(w.numpy(), 1 - 0.1 * 0.5)
    True
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
        weight_decay=0.0,
        exclude_from_weight_decay_names=None,
        **kwargs,
    ):
        # The base class' `weight_decay` is decoupled: passing the coefficient
        # there too would decay twice.
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        _check_non_negative("momentum", momentum)
        weight_decay = 0.0 if weight_decay is None else weight_decay
        _check_non_negative("weight_decay", weight_decay)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.l2_weight_decay = float(weight_decay)
        self._exclude_keys = frozenset()
        self._exclude_names = ()
        self._exclude_pattern = None
        if exclude_from_weight_decay_names:
            self.exclude_from_weight_decay(var_names=exclude_from_weight_decay_names)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes variables from the L2 term (their momentum still applies).

        As Keras' method of this name: each call replaces the previous
        exclusions, and it must come before the optimizer is built. A
        variable is excluded if it is in `var_list`, or if any of `var_names`
        is found (`re.search`, as Keras does) in its path (e.g.
        `"conv1_bn/gamma"`, which ends with its name).

        Exclusions by name survive `get_config`/`from_config` (and
        `.keras` files); exclusions by variable cannot (a config holds no
        variables): exclude those again after `from_config`.

        Args:
            var_list: Variables to exclude.
            var_names: Strings; a variable whose path contains one is excluded.

        Example:
        >>> from se_keras.training.optimizers import L2SGD
        >>> optimizer = L2SGD(0.1, momentum=0.9, weight_decay=1e-4)
        >>> optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        """
        if self.built:
            # Keras' own check tests an attribute its base class never sets.
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before "
                "the optimizer is built."
            )
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)
        self._exclude_keys = frozenset(self._var_key(v) for v in var_list or ())
        self._exclude_names = tuple(var_names or ())
        self._exclude_pattern = (
            re.compile("|".join(self._exclude_names)) if self._exclude_names else None
        )

    def _decays(self, variable):
        if self._var_key(variable) in self._exclude_keys:
            return False
        if self._exclude_pattern is not None:
            path = getattr(variable, "path", None) or variable.name
            if self._exclude_pattern.search(path):
                return False
        return True

    def build(self, variables):
        """Creates the momentum buffers (none when `momentum` is 0).

        Args:
            variables: The trainable variables the optimizer will update.
        """
        if self.built:
            return
        super().build(variables)
        # Decided once here, on the Keras variables: `update_step` receives
        # backend (possibly per-replica) variables whose names lack the path.
        self._no_decay_indices = frozenset(
            i for i, v in enumerate(variables) if not self._decays(v)
        )
        # Checkpoints key these by position in `self.variables`, exactly as
        # Keras SGD's `momentums`, so a Keras SGD checkpoint restores into
        # them without error although it holds -lr * buf, not buf.
        self.momentum_buffers = (
            [self.add_variable_from_reference(v, "momentum_buffer") for v in variables]
            if self.momentum != 0
            else []
        )

    def update_step(self, gradient, variable, learning_rate):
        """Applies one PyTorch SGD step to `variable`."""
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        d = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        if self.l2_weight_decay and index not in self._no_decay_indices:
            d = ops.add(d, ops.multiply(ops.cast(self.l2_weight_decay, dtype), variable))
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, dtype)
            buf = self.momentum_buffers[index]
            new_buf = ops.add(ops.multiply(buf, momentum), d)
            self.assign(buf, new_buf)
            d = ops.add(d, ops.multiply(new_buf, momentum)) if self.nesterov else new_buf
        self.assign_sub(variable, ops.multiply(d, learning_rate))

    def get_config(self):
        """Returns the config; exclusions by variable are not part of it.

        Example:
        >>> from se_keras.training.optimizers import L2SGD
        >>> config = L2SGD(0.1, momentum=0.9, weight_decay=1e-4).get_config()
        >>> L2SGD.from_config(config).l2_weight_decay
        0.0001
        """
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "nesterov": self.nesterov,
                "weight_decay": self.l2_weight_decay,
                "exclude_from_weight_decay_names": list(self._exclude_names) or None,
            }
        )
        return config


def no_decay_variables(model):
    """The trainable variables timm's `filter_bias_and_bn=True` leaves undecayed.

    timm excludes every parameter of rank <= 1: biases (including the SE
    blocks' two dense biases), BatchNorm gamma and beta. Non-trainable
    variables (BatchNorm moving statistics) are never decayed, so they are
    not listed.

    Args:
        model: A built Keras model.

    Returns:
        A list of the model's trainable variables of rank <= 1, in
        `model.trainable_variables` order.

    Example:
    >>> import se_keras
    >>> model = se_keras.applications.SEResNet20(
    ...     weights=None, input_shape=(16, 16, 3), classes=3)
    >>> all(len(v.shape) <= 1 for v in no_decay_variables(model))
    True
    """
    return [v for v in model.trainable_variables if len(v.shape) <= 1]


def make_optimizer(
    kind,
    learning_rate,
    *,
    momentum=0.9,
    nesterov=False,
    weight_decay=0.0,
    weight_decay_mode="coupled",
    decay_bn_and_bias=True,
    model=None,
):
    """Builds the training optimizer, with the weight decay meaning chosen.

    | kind    | weight_decay_mode | optimizer                                   |
    |---------|-------------------|---------------------------------------------|
    | "sgd"   | "coupled"         | `L2SGD` (L2, as the paper/PyTorch/timm)     |
    | "sgd"   | "decoupled"       | `keras.optimizers.SGD(weight_decay=...)`    |
    | "adamw" | "decoupled"       | `keras.optimizers.AdamW(weight_decay=...)`  |

    AdamW's decay is always decoupled, so "adamw" needs
    `weight_decay_mode="decoupled"`; it ignores `momentum` and `nesterov`
    (its `beta_1` is Keras' default).

    Call it inside the distribution strategy's scope, and before the
    optimizer is built (exclusions must be set before `build`).

    Args:
        kind: "sgd" or "adamw".
        learning_rate: A float or a
            `keras.optimizers.schedules.LearningRateSchedule`.
        momentum: SGD momentum, a float >= 0. Defaults to `0.9`.
        nesterov: Whether SGD uses Nesterov momentum. Defaults to `False`.
        weight_decay: The decay coefficient, a float >= 0; 0 disables decay.
            Defaults to `0.0`.
        weight_decay_mode: "coupled" (L2 added to the gradient, through the
            momentum) or "decoupled" (Keras' `w -= lr * weight_decay * w`).
            Defaults to "coupled".
        decay_bn_and_bias: If False, the variables of `no_decay_variables(model)`
            (biases, BatchNorm gamma/beta) are excluded from decay, as timm's
            `filter_bias_and_bn=True`. Defaults to `True`.
        model: The built model; required when `decay_bn_and_bias=False`.

    Returns:
        A `keras.optimizers.Optimizer`, not yet built.

    Raises:
        ValueError: For an unknown `kind` or `weight_decay_mode`, "coupled"
            with "adamw", a negative `momentum` or `weight_decay`, or
            `decay_bn_and_bias=False` without `model`.

    Example:
    >>> from se_keras.training.optimizers import make_optimizer
    >>> optimizer = make_optimizer("sgd", 0.1, momentum=0.9, weight_decay=1e-4)
    >>> type(optimizer).__name__
    'L2SGD'
    """
    check_choice("kind", kind, KINDS)
    check_choice("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES)
    _check_non_negative("momentum", momentum)
    weight_decay = 0.0 if weight_decay is None else weight_decay
    _check_non_negative("weight_decay", weight_decay)
    if kind == "adamw" and weight_decay_mode == "coupled":
        raise ValueError(
            "`weight_decay_mode` must be 'decoupled' for kind='adamw' (AdamW's "
            "decay is decoupled by definition; coupled L2 is only available for "
            f"kind='sgd'). Received: weight_decay_mode={weight_decay_mode!r}"
        )
    if not decay_bn_and_bias and model is None:
        raise ValueError(
            "`model` is required when `decay_bn_and_bias=False` (its rank <= 1 "
            "variables are the ones excluded from weight decay). "
            f"Received: model={model!r}"
        )

    if kind == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=float(weight_decay)
        )
    elif weight_decay_mode == "coupled":
        optimizer = L2SGD(
            learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
            weight_decay=weight_decay,
        )
    else:
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=float(momentum), nesterov=nesterov,
            weight_decay=float(weight_decay) or None,
        )
    if not decay_bn_and_bias:
        optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer
