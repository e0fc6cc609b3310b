"""L2SGD against PyTorch's SGD algorithm, exclusions, Keras integration, make_optimizer."""

import copy

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import se_keras
from se_keras.training.optimizers import L2SGD
from se_keras.training.optimizers import make_optimizer
from se_keras.training.optimizers import no_decay_variables

SHAPES = [(3, 3, 4, 8), (8,), (), (5, 7)]
# Changes every step, up and down, as warmup and step schedules do.
LEARNING_RATES = [0.1, 0.1, 0.05, 0.2, 0.02, 0.1, 0.01, 0.3]


class StepValues(keras.optimizers.schedules.LearningRateSchedule):
    """`values[step]`: a learning rate that changes on every step."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self, step):
        values = ops.convert_to_tensor(self.values, "float32")
        return ops.take(values, ops.cast(step, "int32"))

    def get_config(self):
        return {"values": self.values}


def torch_sgd_reference(weights, grads, learning_rates, momentum, weight_decay,
                        nesterov, decay=None):
    """PyTorch's documented `torch.optim.SGD` algorithm (dampening 0), in float64.

    From the algorithm box of the `torch.optim.SGD` documentation:
        g <- g + weight_decay * theta          (if weight_decay != 0)
        if momentum != 0:
            b <- g on the first step, else b <- momentum * b + (1 - dampening) * g
            g <- g + momentum * b if nesterov else b
        theta <- theta - lr * g

    Args:
        weights: Initial arrays.
        grads: `grads[step][i]`, the gradient of weight `i` at `step`.
        learning_rates: The learning rate of each step.
        decay: Optional booleans, False for a weight excluded from decay.
    """
    weights = [np.array(w, np.float64) for w in weights]
    buffers = [None] * len(weights)
    decay = decay or [True] * len(weights)
    for step_grads, lr in zip(grads, learning_rates):
        for i, g in enumerate(step_grads):
            g = np.array(g, np.float64)
            if weight_decay != 0 and decay[i]:
                g = g + weight_decay * weights[i]
            if momentum != 0:
                buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + g
                g = g + momentum * buffers[i] if nesterov else buffers[i]
            weights[i] = weights[i] - lr * g
    return weights


def random_problem(shapes=SHAPES, steps=len(LEARNING_RATES), seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(steps)]
    return weights, grads


def run_keras(optimizer, weights, grads, variables=None):
    variables = variables or [keras.Variable(w) for w in weights]
    for step_grads in grads:
        optimizer.apply(step_grads, variables)
    return [v.numpy() for v in variables]


def max_relative_error(actual, expected):
    scale = max(1.0, max(float(np.max(np.abs(e))) for e in expected))
    return max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected)) / scale


@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov",
    [(0.9, 1e-4, False), (0.9, 1e-4, True), (0.9, 5e-4, False), (0.9, 5e-4, True),
     (0.0, 5e-4, False), (0.0, 5e-4, True), (0.9, 0.0, True)],
)
def test_matches_torch_sgd_with_a_changing_learning_rate(momentum, weight_decay, nesterov):
    weights, grads = random_problem()
    optimizer = L2SGD(StepValues(LEARNING_RATES), momentum=momentum,
                      nesterov=nesterov, weight_decay=weight_decay)
    result = run_keras(optimizer, weights, grads)
    expected = torch_sgd_reference(weights, grads, LEARNING_RATES, momentum,
                                   weight_decay, nesterov)
    assert max_relative_error(result, expected) <= 1e-6
    if momentum == 0:
        assert optimizer.momentum_buffers == []
    if weight_decay:
        # The decay is far above the tolerance, so the comparison sees it.
        without_decay = torch_sgd_reference(weights, grads, LEARNING_RATES, momentum,
                                            0.0, nesterov)
        assert max_relative_error(result, without_decay) > 1e-5


def test_learning_rate_is_applied_outside_the_momentum_buffer():
    # Caffe/Keras keep lr inside the buffer; after a drop in lr they keep
    # moving with the old rate for a while. PyTorch (and L2SGD) do not.
    weights, grads = random_problem(shapes=[(4,)], steps=3)
    grads = [grads[0], [np.zeros(4, "float32")], [np.zeros(4, "float32")]]
    rates = [1.0, 0.001, 0.001]
    optimizer = L2SGD(StepValues(rates), momentum=0.9)
    result = run_keras(optimizer, weights, grads)
    expected = torch_sgd_reference(weights, grads, rates, 0.9, 0.0, False)
    assert max_relative_error(result, expected) <= 1e-6
    keras_sgd = run_keras(keras.optimizers.SGD(StepValues(rates), momentum=0.9),
                          weights, grads)
    assert max_relative_error(keras_sgd, expected) > 1e-2


def test_decay_is_about_one_over_one_minus_momentum_stronger_than_keras_decoupled():
    momentum, lr, weight_decay, n = 0.9, 0.1, 1e-4, 99
    zero = [[np.zeros((4,), "float32")]]
    coupled_w, decoupled_w = [keras.Variable(np.ones(4, "float32")) for _ in range(2)]
    coupled = L2SGD(lr, momentum=momentum, weight_decay=weight_decay)
    decoupled = keras.optimizers.SGD(lr, momentum=momentum, weight_decay=weight_decay)
    run_keras(coupled, None, zero * n, [coupled_w])
    run_keras(decoupled, None, zero * n, [decoupled_w])
    shrink_coupled = 1 - coupled_w.numpy()[0]
    shrink_decoupled = 1 - decoupled_w.numpy()[0]
    # Summed over the steps, momentum multiplies the k-th step's decay by
    # (1 - m^k) / (1 - m): 9.1 on average over these 99 steps.
    expected = (n - momentum * (1 - momentum**n) / (1 - momentum)) / ((1 - momentum) * n)
    assert shrink_coupled / shrink_decoupled == pytest.approx(expected, rel=0.02)
    # Once the buffer has filled up, each step decays 1 / (1 - m) = 10 times more.
    before_c, before_d = coupled_w.numpy()[0], decoupled_w.numpy()[0]
    run_keras(coupled, None, zero, [coupled_w])
    run_keras(decoupled, None, zero, [decoupled_w])
    step_c = before_c - coupled_w.numpy()[0]
    step_d = before_d - decoupled_w.numpy()[0]
    assert step_c / step_d == pytest.approx(1 / (1 - momentum), rel=0.02)


def small_model():
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, use_bias=False, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, name="fc"),
    ])


def _layer_path(variable):
    # "sequential_3/bn/gamma" -> "bn/gamma": the model's name is numbered.
    return "/".join(variable.path.split("/")[-2:])


def _grads_for(variables, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=v.shape).astype("float32") for v in variables]
            for _ in range(steps)]


@pytest.mark.parametrize("by", ["var_list", "var_names"])
def test_excluded_variables_get_momentum_but_no_decay(by):
    model = small_model()
    variables = model.trainable_variables
    excluded = {"fc/bias", "bn/gamma", "bn/beta"}
    optimizer = L2SGD(StepValues(LEARNING_RATES), momentum=0.9, nesterov=True,
                      weight_decay=1e-2)
    if by == "var_list":
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in variables if _layer_path(v) in excluded])
    else:
        optimizer.exclude_from_weight_decay(var_names=["bias", "bn/"])
    weights = [v.numpy() for v in variables]
    grads = _grads_for(variables, len(LEARNING_RATES))
    result = run_keras(optimizer, weights, grads, variables)
    decay = [_layer_path(v) not in excluded for v in variables]
    assert decay.count(False) == 3
    expected = torch_sgd_reference(weights, grads, LEARNING_RATES, 0.9, 1e-2, True, decay)
    assert max_relative_error(result, expected) <= 1e-6
    all_decayed = torch_sgd_reference(weights, grads, LEARNING_RATES, 0.9, 1e-2, True)
    for r, e, d in zip(result, all_decayed, decay):
        if not d:
            assert np.max(np.abs(r - e)) > 1e-4


def test_exclusions_must_come_before_build():
    optimizer = L2SGD(0.1, momentum=0.9, weight_decay=1e-4)
    optimizer.build([keras.Variable(np.ones(2, "float32"))])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["bias"])


def test_no_decay_variables_are_the_rank_le_1_trainable_variables():
    model = se_keras.applications.SEResNet20(weights=None, input_shape=(16, 16, 3), classes=3)
    found = no_decay_variables(model)
    # Independently of rank: what timm's filter_bias_and_bn leaves out, by name.
    names = {"gamma", "beta", "bias", "reduce_bias", "expand_bias"}
    expected = [v for v in model.trainable_variables if v.path.split("/")[-1] in names]
    assert [v.path for v in found] == [v.path for v in expected]
    assert all(len(v.shape) <= 1 for v in found)
    assert any(v.path.endswith("_se/reduce_bias") for v in found)
    assert any(v.path.endswith("_se/expand_bias") for v in found)
    found_ids = {id(v) for v in found}
    ranks = {len(v.shape) for v in model.trainable_variables if id(v) not in found_ids}
    assert min(ranks) >= 2


def test_trains_in_model_fit():
    model = small_model()
    optimizer = L2SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    before = [v.numpy() for v in model.trainable_variables]
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")
    y = np.arange(16) % 3
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(optimizer.iterations.numpy()) == 2
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


def test_trains_in_model_fit_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")  # the conftest fixture resets it
    model = small_model()
    model.compile(optimizer=L2SGD(0.05, momentum=0.9, weight_decay=5e-4),
                  loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")
    history = model.fit(x, np.arange(16) % 3, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # A step whose scaled gradients overflow is skipped, not applied.
    assert int(model.optimizer.inner_optimizer.iterations.numpy()) >= 1
    assert all(np.all(np.isfinite(v.numpy())) for v in model.trainable_variables)


def _custom_loop(strategy, wrap_loss_scale=False, use_tf_function=True, steps=3):
    """Trains small_model in a custom loop; returns its weights."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = small_model()
        optimizer = L2SGD(StepValues(LEARNING_RATES), momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
        optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
        if wrap_loss_scale:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        reduction="sum_over_batch_size")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = (np.arange(8) % 3).astype("int32")

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def step(x, y):
        return strategy.run(replica_step, args=(x, y))

    if use_tf_function:
        step = tf.function(step)
    for _ in range(steps):
        step(tf.constant(x), tf.constant(y))
    return [v.numpy() for v in model.trainable_variables]


def test_custom_loop_eager_tf_function_loss_scale_and_mirrored_agree():
    default = tf.distribute.get_strategy()
    eager = _custom_loop(default, use_tf_function=False)
    in_function = _custom_loop(default)
    loss_scaled = _custom_loop(default, wrap_loss_scale=True)
    mirrored = _custom_loop(tf.distribute.MirroredStrategy(["/cpu:0"]))
    # Eager and graph kernels round the model's gradients differently, so
    # this compares at float32 noise, not at the optimizer's 1e-6.
    for weights in (in_function, loss_scaled, mirrored):
        assert max_relative_error(weights, eager) <= 1e-5
    # And the loop did train (with the exclusions keyed to mirrored variables).
    keras.utils.set_random_seed(0)
    initial = [v.numpy() for v in small_model().trainable_variables]
    assert max_relative_error(eager, initial) > 1e-3


def test_get_config_round_trip_keeps_exclusions_by_name():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])
    optimizer = L2SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4,
                      clipnorm=1.0, name="paper_sgd")
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    config = optimizer.get_config()
    assert config["weight_decay"] == 5e-4
    assert config["exclude_from_weight_decay_names"] == ["bias"]
    # from_config replaces the schedule's config by the schedule, in place.
    restored = L2SGD.from_config(copy.deepcopy(config))
    assert restored.get_config() == config
    assert restored.weight_decay is None  # the base class' decoupled decay stays off
    assert restored.l2_weight_decay == 5e-4
    assert restored.clipnorm == 1.0 and restored.name == "paper_sgd"
    # The exclusion acts: zero gradients, only the decayed kernel moves.
    layer = keras.layers.Dense(2, bias_initializer="ones")
    layer.build((None, 3))
    before = [v.numpy() for v in layer.trainable_variables]
    restored.apply([np.zeros(v.shape, "float32") for v in layer.trainable_variables],
                   layer.trainable_variables)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    # Nesterov's first step: d + m * buf = (1 + m) * wd * w.
    np.testing.assert_allclose(kernel, before[0] * (1 - 0.1 * 1.9 * 5e-4), rtol=1e-6)
    np.testing.assert_array_equal(bias, before[1])


def test_saved_compiled_model_loads_in_safe_mode(tmp_path):
    model = small_model()
    optimizer = L2SGD(keras.optimizers.schedules.PiecewiseConstantDecay([1], [0.1, 0.05]),
                      momentum=0.9, weight_decay=5e-4,
                      exclude_from_weight_decay_names=["bias", "bn/"])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = np.arange(8) % 3
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.optimizer) is L2SGD
    assert loaded.optimizer.get_config() == optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The momentum buffers came back: the next step is the same.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert max_relative_error([v.numpy() for v in loaded.trainable_variables],
                              [v.numpy() for v in model.trainable_variables]) <= 1e-6


def test_argument_errors():
    with pytest.raises(ValueError, match=r"Received: momentum=-0.1"):
        L2SGD(0.1, momentum=-0.1)
    with pytest.raises(ValueError, match=r"Received: weight_decay='1e-4'"):
        L2SGD(0.1, weight_decay="1e-4")
    assert L2SGD(0.1, momentum=0, weight_decay=None).l2_weight_decay == 0.0


# make_optimizer


@pytest.mark.parametrize(
    "kind, mode, cls",
    [("sgd", "coupled", L2SGD), ("sgd", "decoupled", keras.optimizers.SGD),
     ("adamw", "decoupled", keras.optimizers.AdamW)],
)
def test_make_optimizer_kinds(kind, mode, cls):
    optimizer = make_optimizer(kind, 0.1, momentum=0.9, nesterov=True,
                               weight_decay=5e-4, weight_decay_mode=mode)
    assert type(optimizer) is cls
    if cls is L2SGD:
        assert optimizer.l2_weight_decay == 5e-4 and optimizer.weight_decay is None
        assert optimizer.momentum == 0.9 and optimizer.nesterov
    else:
        assert optimizer.weight_decay == 5e-4
    if cls is keras.optimizers.SGD:
        assert optimizer.momentum == 0.9 and optimizer.nesterov


def test_make_optimizer_default_is_coupled_l2():
    assert type(make_optimizer("sgd", 0.1, weight_decay=1e-4)) is L2SGD
    decoupled = make_optimizer("sgd", 0.1, weight_decay=0.0, weight_decay_mode="decoupled")
    assert decoupled.weight_decay is None


@pytest.mark.parametrize("kind, mode", [("sgd", "coupled"), ("sgd", "decoupled"),
                                        ("adamw", "decoupled")])
def test_make_optimizer_can_spare_bn_and_bias(kind, mode):
    model = small_model()
    optimizer = make_optimizer(kind, 0.1, weight_decay=0.05, weight_decay_mode=mode,
                               decay_bn_and_bias=False, model=model)
    variables = model.trainable_variables
    before = [v.numpy() for v in variables]
    optimizer.apply([np.zeros(v.shape, "float32") for v in variables], variables)
    spared = {id(v) for v in no_decay_variables(model)}
    assert len(spared) == 3
    for v, b in zip(variables, before):
        if id(v) in spared:
            np.testing.assert_array_equal(v.numpy(), b)
        else:
            assert not np.allclose(v.numpy(), b)


def test_make_optimizer_errors():
    with pytest.raises(ValueError) as error:
        make_optimizer("sgd", 0.1, weight_decay_mode="foo")
    assert str(error.value) == (
        "`weight_decay_mode` must be one of 'coupled', 'decoupled'. "
        "Received: weight_decay_mode='foo'")
    with pytest.raises(ValueError, match=r"Received: weight_decay_mode='coupled'$"):
        make_optimizer("adamw", 1e-3, weight_decay=0.05)
    with pytest.raises(ValueError, match=r"`kind` must be one of 'sgd', 'adamw'. "
                                         r"Received: kind='adam'"):
        make_optimizer("adam", 1e-3)
    with pytest.raises(ValueError, match=r"Received: weight_decay=-1"):
        make_optimizer("sgd", 0.1, weight_decay=-1)
    with pytest.raises(ValueError, match=r"Received: momentum=-0.5"):
        make_optimizer("sgd", 0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"`model` is required .* Received: model=None"):
        make_optimizer("sgd", 0.1, weight_decay=1e-4, decay_bn_and_bias=False)
