"""SE's cost measured, not claimed: each SE model against its plain twin, in one process.

Every figure is the median of several timed rounds; the SE model and its
`se=False` twin alternate (A B A B ...) after a warm-up, so that the noise
of a shared machine hits both alike and the ratio SE / plain is fair. A
large float32 matmul is timed in the same run as the machine's reference
speed.

Units: the package's FLOPs counter counts multiply-adds (the paper's
"FLOPs"), so speeds are reported in G multiply-adds per second (GMAC/s)
for the models and the matmul alike (1 GMAC/s = 2 GFLOP/s).
"""

import dataclasses
import json
import statistics
import time

# (builder, input size): the models compared when they are available.
DEFAULT_MODELS = (
    ("SEResNet50", 224),
    ("SEResNeXt50", 224),
    ("SEMobileNet", 224),
    ("SEResNet20", 32),
)


@dataclasses.dataclass
class Result:
    model: str
    mode: str  # "inference" or "train"
    batch: int
    size: int
    se_images_per_s: float
    plain_images_per_s: float
    se_gmacs: float  # multiply-adds per image, in G
    plain_gmacs: float

    @property
    def slowdown(self):
        """SE time / plain time - 1 (0.03 means SE is 3% slower)."""
        return self.plain_images_per_s / self.se_images_per_s - 1.0

    @property
    def se_gmac_per_s(self):
        factor = 3.0 if self.mode == "train" else 1.0  # backward costs about 2x forward
        return self.se_gmacs * factor * self.se_images_per_s

    def as_dict(self):
        return {**dataclasses.asdict(self), "slowdown": self.slowdown,
                "se_gmac_per_s": self.se_gmac_per_s}


def _time_call(fn, iterations):
    start = time.perf_counter()
    for _ in range(iterations):
        out = fn()
    if hasattr(out, "numpy"):
        out.numpy()  # wait for asynchronous devices
    return (time.perf_counter() - start) / iterations


def interleaved(fn_a, fn_b, rounds, iterations, warmup=2):
    """Median seconds per call of two functions timed in alternation."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    times_a, times_b = [], []
    for _ in range(rounds):
        times_a.append(_time_call(fn_a, iterations))
        times_b.append(_time_call(fn_b, iterations))
    return statistics.median(times_a), statistics.median(times_b)


def matmul_gmac_per_s(n=2048, rounds=5, dtype="float32"):
    """G multiply-adds per second of an n x n x n matmul (the machine's reference)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=dtype)
    b = tf.random.normal((n, n), dtype=dtype)
    matmul = tf.function(lambda: tf.matmul(a, b))
    seconds, _ = interleaved(matmul, matmul, rounds=rounds, iterations=3)
    return n**3 / seconds / 1e9


def _inference_fn(model, batch, size, xla):
    import tensorflow as tf

    x = tf.random.uniform((batch, size, size, 3))
    forward = tf.function(lambda: model(x, training=False), jit_compile=xla)
    return forward


def _train_fn(model, batch, size, xla):
    import keras
    import tensorflow as tf

    x = tf.random.uniform((batch, size, size, 3))
    y = tf.random.uniform((batch,), maxval=model.output.shape[-1], dtype=tf.int32)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def compare(name, size, batch, mode, xla=False, rounds=5, iterations=None):
    """Times one SE model against its plain twin; returns a `Result`."""
    from se_keras.applications import get_builder
    from se_keras.utils import count_flops

    builder = get_builder(name)
    kwargs = dict(weights=None, input_shape=(size, size, 3))
    if size < 32 or name.startswith(("SEResNet20", "SEResNet32", "SEResNet56")):
        kwargs["classes"] = 10
    se_model = builder(se=True, **kwargs)
    plain_model = builder(se=False, **kwargs)
    make = _inference_fn if mode == "inference" else _train_fn
    fn_se = make(se_model, batch, size, xla)
    fn_plain = make(plain_model, batch, size, xla)
    if iterations is None:
        iterations = max(1, 16 // batch) if size >= 128 else max(2, 256 // batch)
    t_se, t_plain = interleaved(fn_se, fn_plain, rounds=rounds, iterations=iterations)
    return Result(
        model=name, mode=mode, batch=batch, size=size,
        se_images_per_s=batch / t_se, plain_images_per_s=batch / t_plain,
        se_gmacs=count_flops(se_model) / 1e9, plain_gmacs=count_flops(plain_model) / 1e9,
    )


def markdown(results, matmul, matmul_size=2048):
    lines = [
        f"Reference: float32 {matmul_size}^3 matmul {matmul:.1f} GMAC/s "
        f"({2 * matmul:.1f} GFLOP/s), the faster of two measurements (before and after).",
        "",
        "| model | mode | batch | SE img/s | plain img/s | SE / plain time | SE GMAC/s | of matmul |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} ({r.size}px) | {r.mode} | {r.batch} | {r.se_images_per_s:.1f} | "
            f"{r.plain_images_per_s:.1f} | {1 + r.slowdown:.3f} ({r.slowdown:+.1%}) | "
            f"{r.se_gmac_per_s:.1f} | {r.se_gmac_per_s / matmul:.0%} |"
        )
    return "\n".join(lines)


def run(models=DEFAULT_MODELS, inference_batches=(1, 16), train_batch=8, xla=False,
        rounds=5, json_path=None, log=print, matmul_size=2048):
    """Runs the whole benchmark and returns (results, matmul GMAC/s, markdown)."""
    from se_keras.applications import MODELS

    matmul = matmul_gmac_per_s(matmul_size)
    log(f"matmul: {matmul:.1f} GMAC/s")
    results = []
    for name, size in models:
        if name not in MODELS:
            log(f"skipping {name}: not in this version of se_keras")
            continue
        for batch in inference_batches:
            results.append(compare(name, size, batch, "inference", xla, rounds))
            log(markdown(results[-1:], matmul).splitlines()[-1])
        if train_batch:
            results.append(compare(name, size, train_batch, "train", xla, rounds))
            log(markdown(results[-1:], matmul).splitlines()[-1])
    matmul_after = matmul_gmac_per_s(matmul_size)
    log(f"matmul again: {matmul_after:.1f} GMAC/s")
    matmul = max(matmul, matmul_after)
    table = markdown(results, matmul, matmul_size)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump({"matmul_gmac_per_s": matmul, "xla": xla,
                       "results": [r.as_dict() for r in results]}, f, indent=2)
    return results, matmul, table
