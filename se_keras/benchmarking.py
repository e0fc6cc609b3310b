"""SE's cost measured, not claimed: each SE model against its plain twin, in one process.

Every figure is the median of several timed rounds; the SE model and its
`se=False` twin alternate (A B A B ...) after a warm-up, so that the noise
of a shared machine hits both alike and the ratio SE / plain is fair. A
large float32 matmul is timed in the same run as the machine's reference
speed.

Units: the package's FLOPs counter counts multiply-adds (the paper's
"FLOPs"), so speeds are reported in G multiply-adds per second (GMAC/s)
for the models and the matmul alike (1 GMAC/s = 2 GFLOP/s).

(Over 450 lines on purpose: the timings and the op-time profile measure one
thing, SE's cost, on the same models and the same timed calls.)
"""

import collections
import dataclasses
import glob
import json
import os
import re
import statistics
import tempfile
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
    # SE time / plain time of each round (the two runs of a round are
    # neighbours in time, so a ratio is far less noisy than either time).
    ratios: tuple = ()

    @property
    def slowdown(self):
        """Median over rounds of SE time / plain time - 1 (0.03: SE 3% slower)."""
        if self.ratios:
            return statistics.median(self.ratios) - 1.0
        return self.plain_images_per_s / self.se_images_per_s - 1.0

    @property
    def slowdown_range(self):
        """(lowest, highest) per-round slowdown: how noisy the machine was."""
        if not self.ratios:
            return (self.slowdown, self.slowdown)
        return (min(self.ratios) - 1.0, max(self.ratios) - 1.0)

    @property
    def se_gmac_per_s(self):
        factor = 3.0 if self.mode == "train" else 1.0  # backward costs about 2x forward
        return self.se_gmacs * factor * self.se_images_per_s

    def as_dict(self):
        return {**dataclasses.asdict(self), "slowdown": self.slowdown,
                "slowdown_range": self.slowdown_range,
                "se_gmac_per_s": self.se_gmac_per_s}


def _time_call(fn, iterations):
    start = time.perf_counter()
    for _ in range(iterations):
        out = fn()
    if hasattr(out, "numpy"):
        out.numpy()  # wait for asynchronous devices
    return (time.perf_counter() - start) / iterations


def interleaved(fn_a, fn_b, rounds, iterations, warmup=2):
    """Seconds per call of two functions timed in alternation, one pair per round.

    The order alternates (A B, B A, A B, ...) so that neither function always
    runs right after the other's allocations. Returns two lists of `rounds`
    times each.
    """
    for _ in range(warmup):
        fn_a()
        fn_b()
    times_a, times_b = [], []
    for i in range(rounds):
        if i % 2:
            times_b.append(_time_call(fn_b, iterations))
            times_a.append(_time_call(fn_a, iterations))
        else:
            times_a.append(_time_call(fn_a, iterations))
            times_b.append(_time_call(fn_b, iterations))
    return times_a, times_b


def matmul_gmac_per_s(n=2048, rounds=5, dtype="float32"):
    """G multiply-adds per second of an n x n x n matmul (the machine's reference)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=dtype)
    b = tf.random.normal((n, n), dtype=dtype)
    matmul = tf.function(lambda: tf.matmul(a, b))
    times, _ = interleaved(matmul, matmul, rounds=rounds, iterations=3)
    return n**3 / statistics.median(times) / 1e9


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


def _build(name, size, se):
    from se_keras.applications import get_builder

    kwargs = dict(weights=None, input_shape=(size, size, 3))
    if size < 32 or name.startswith(("SEResNet20", "SEResNet32", "SEResNet56")):
        kwargs["classes"] = 10
    return get_builder(name)(se=se, **kwargs)


def _optimized(model, optimize):
    if not optimize:
        return model
    from se_keras.export.optimize import optimize_for_inference

    return optimize_for_inference(model)


def compare(name, size, batch, mode, xla=False, rounds=5, iterations=None, optimize=False):
    """Times one SE model against its plain twin; returns a `Result`.

    With `optimize`, both twins are timed as `optimize_for_inference`
    copies (inference only: the copies are not trainable).
    """
    from se_keras.utils import count_flops

    if optimize and mode != "inference":
        raise ValueError(
            "optimize=True times inference graphs; train the original model. "
            f"Received: mode={mode!r}"
        )
    se_model = _build(name, size, se=True)
    plain_model = _build(name, size, se=False)
    # Counted on the models as built: the optimized copies compute the same.
    se_gmacs, plain_gmacs = count_flops(se_model) / 1e9, count_flops(plain_model) / 1e9
    se_model, plain_model = _optimized(se_model, optimize), _optimized(plain_model, optimize)
    make = _inference_fn if mode == "inference" else _train_fn
    fn_se = make(se_model, batch, size, xla)
    fn_plain = make(plain_model, batch, size, xla)
    if iterations is None:
        iterations = max(1, 16 // batch) if size >= 128 else max(2, 256 // batch)
    times_se, times_plain = interleaved(fn_se, fn_plain, rounds=rounds, iterations=iterations)
    return Result(
        model=f"{name} (optimized)" if optimize else name, mode=mode, batch=batch, size=size,
        se_images_per_s=batch / statistics.median(times_se),
        plain_images_per_s=batch / statistics.median(times_plain),
        se_gmacs=se_gmacs, plain_gmacs=plain_gmacs,
        ratios=tuple(a / b for a, b in zip(times_se, times_plain)),
    )


@dataclasses.dataclass
class Profile:
    """Op time of one inference batch of an SE model, inside and outside its SE blocks."""

    model: str
    batch: int
    size: int
    total_ms: float  # all TensorFlow ops of one forward pass (summed over threads)
    se_ms: float  # the ops inside SE layers
    se_ops: dict  # op type -> ms inside SE layers, e.g. {"Mul": 27.1, ...}
    wall_ms: float = 0.0  # wall time of one profiled forward pass (profiler running)
    parallel_ops: int = 0  # the most ops that ran at the same time in the trace
    # "serial": one op at a time, op times add up to the forward's time;
    # "overlapped": TensorFlow's default inter-op pool, where an op's time
    # includes waiting for the cores that an op beside it holds.
    ops: str = "overlapped"

    @property
    def overhead(self):
        """SE op time / the other op time: the slowdown the profile predicts."""
        return self.se_ms / (self.total_ms - self.se_ms)

    def as_dict(self):
        return {**dataclasses.asdict(self), "overhead": self.overhead}


def _op_times(xplane_path):
    """From a profiler trace: {(layer scope path, op type): total picoseconds}
    and the largest number of those ops that ran at the same time."""
    # The trace is TensorBoard's (public tf.profiler API); its XSpace proto
    # ships with TensorFlow. Ops run on the "tf_Compute" threads of the host
    # plane, one event each, named "scope/.../op_name:OpType".
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    times = collections.Counter()
    edges = []  # (time in ps, +1 at an op's start or -1 at its end)
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                scope, sep, op_type = name.rpartition(":")
                if sep and "/" in scope:
                    # oneDNN's kernels carry prefixes (_MklBatchMatMulV2,
                    # _MklNativeFusedMatMul): report the op, not the kernel.
                    op_type = re.sub(r"^_(Mkl)?(Native)?", "", op_type)
                    times[(scope, op_type)] += event.duration_ps
                    start = line.timestamp_ns * 1000 + event.offset_ps
                    edges += [(start, 1), (start + event.duration_ps, -1)]
    running = most = 0
    for _, step in sorted(edges):  # an end sorts before a start at the same time
        running += step
        most = max(most, running)
    return times, most


def _require_host_ops():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        raise ValueError(
            "The SE profile summarises host (CPU) op times; on a GPU open the "
            "trace in TensorBoard's Profile tab instead. Received: a GPU device"
        )


def profile_se(name, size, batch, steps=4, logdir=None, optimize=False, serial_ops=False):
    """Profiles the inference of an SE model (CPU, no XLA); returns a `Profile`.

    The trace is written under `logdir` (a temporary folder when None) and can
    be opened in TensorBoard's Profile tab; the summary adds up the op time
    of the ops inside the model's `SqueezeExcitation` layers (and their
    `ProjectedSqueezeExcitation` form when `optimize` profiles the
    `optimize_for_inference` copy).

    With `serial_ops`, the profile runs in a fresh process whose TensorFlow
    runs one op at a time (`TF_NUM_INTEROP_THREADS=1`, the intra-op threads
    unchanged), so each op's time is its own and the op times add up to the
    forward's time. In the default schedule an independent op runs beside
    another (the projected squeeze beside the 1x1 convolution it bypasses)
    and its time includes waiting for the cores the other op holds.

    Example:

    >>> profile = profile_se("SEResNet20", 32, batch=2, steps=1, serial_ops=True)
    >>> profile.ops, profile.parallel_ops
    ('serial', 1)
    """
    if serial_ops:
        return _profile_in_subprocess(name, size, batch, steps, logdir, optimize)
    return _profile_here(name, size, batch, steps, logdir, optimize)


def _profile_in_subprocess(name, size, batch, steps, logdir, optimize):
    import subprocess
    import sys

    import keras
    import tensorflow as tf

    _require_host_ops()
    spec = {"name": name, "size": size, "batch": batch, "steps": steps, "logdir": logdir,
            "optimize": optimize, "data_format": keras.config.image_data_format(),
            "policy": keras.config.dtype_policy().name}
    env = dict(os.environ, TF_NUM_INTEROP_THREADS="1", KERAS_BACKEND="tensorflow")
    intra_op_threads = tf.config.threading.get_intra_op_parallelism_threads()
    if intra_op_threads:  # 0: TensorFlow's default, which the child picks for itself
        env["TF_NUM_INTRAOP_THREADS"] = str(intra_op_threads)
    done = subprocess.run([sys.executable, "-m", "se_keras.benchmarking", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"The serial-ops profile of {name} failed (exit code "
                           f"{done.returncode}):\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer.pop("overhead")
    return Profile(**answer)


def _profile_here(name, size, batch, steps, logdir, optimize):
    import tensorflow as tf

    from se_keras.layers import SqueezeExcitation
    from se_keras.layers.projected_squeeze_excitation import ProjectedSqueezeExcitation

    _require_host_ops()
    model = _optimized(_build(name, size, se=True), optimize)
    se_names = {layer.name for layer in model.layers
                if isinstance(layer, (SqueezeExcitation, ProjectedSqueezeExcitation))}
    forward = _inference_fn(model, batch, size, xla=False)
    for _ in range(2):
        forward().numpy()
    with tempfile.TemporaryDirectory() as scratch:
        logdir = logdir or scratch
        tf.profiler.experimental.start(logdir)
        try:
            start = time.perf_counter()
            for _ in range(steps):
                forward().numpy()
            wall_ms = (time.perf_counter() - start) * 1e3 / steps
        finally:
            tf.profiler.experimental.stop()
        paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                       key=os.path.getmtime)
        times, parallel_ops = _op_times(paths[-1])
    suffix = re.compile(r"_\d+$")  # Keras numbers repeated name scopes
    se_ops = collections.Counter()
    for (scope, op_type), ps in times.items():
        if any(suffix.sub("", part) in se_names or part in se_names
               for part in scope.split("/")):
            se_ops[op_type] += ps / 1e9 / steps
    serial = (tf.config.threading.get_inter_op_parallelism_threads() == 1
              or os.environ.get("TF_NUM_INTEROP_THREADS") == "1")
    return Profile(model=f"{name} (optimized)" if optimize else name, batch=batch, size=size,
                   total_ms=sum(times.values()) / 1e9 / steps,
                   se_ms=sum(se_ops.values()), se_ops=dict(se_ops.most_common()),
                   wall_ms=wall_ms, parallel_ops=parallel_ops,
                   ops="serial" if serial else "overlapped")


def profile_markdown(profiles):
    lines = [
        "| model | batch | ops | op time ms | SE ops ms | SE / rest | SE ops (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in profiles:
        ops_text = ", ".join(f"{k} {v:.1f}" for k, v in p.se_ops.items() if v >= 0.05)
        lines.append(f"| {p.model} ({p.size}px) | {p.batch} | {p.ops} | {p.total_ms:.1f} | "
                     f"{p.se_ms:.1f} | "
                     f"{p.overhead:+.1%} | {ops_text} |")
    return "\n".join(lines)


def markdown(results, matmul, matmul_size=2048):
    lines = [
        f"Reference: float32 {matmul_size}^3 matmul {matmul:.1f} GMAC/s "
        f"({2 * matmul:.1f} GFLOP/s), the faster of two measurements (before and after).",
        "",
        "| model | mode | batch | SE img/s | plain img/s | SE / plain time "
        "(rounds' range) | SE GMAC/s | of matmul |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        low, high = r.slowdown_range
        lines.append(
            f"| {r.model} ({r.size}px) | {r.mode} | {r.batch} | {r.se_images_per_s:.1f} | "
            f"{r.plain_images_per_s:.1f} | {1 + r.slowdown:.3f} ({r.slowdown:+.1%}; "
            f"{low:+.1%} .. {high:+.1%}) | {r.se_gmac_per_s:.1f} | {r.se_gmac_per_s / matmul:.0%} |"
        )
    return "\n".join(lines)


def run(models=DEFAULT_MODELS, inference_batches=(1, 16), train_batch=8, xla=False,
        rounds=7, json_path=None, log=print, matmul_size=2048, profile_dir=None,
        optimize=False):
    """Runs the whole benchmark and returns (results, matmul GMAC/s, markdown).

    With `profile_dir`, each SE model's inference at the largest batch is also
    profiled (trace under that folder; the SE op table is added to the
    markdown and the JSON). With `optimize`, inference timings and profiles
    use `optimize_for_inference` copies of both twins (training does not).
    """
    from se_keras._validation import require_tensorflow_backend
    from se_keras.applications import MODELS

    require_tensorflow_backend("se-keras benchmark")

    if profile_dir:
        _require_host_ops()  # before minutes of timing, not after
    matmul = matmul_gmac_per_s(matmul_size)
    log(f"matmul: {matmul:.1f} GMAC/s")
    results = []
    for name, size in models:
        if name not in MODELS:
            log(f"skipping {name}: not in this version of se_keras")
            continue
        for batch in inference_batches:
            results.append(compare(name, size, batch, "inference", xla, rounds,
                                   optimize=optimize))
            log(markdown(results[-1:], matmul).splitlines()[-1])
        if train_batch:
            results.append(compare(name, size, train_batch, "train", xla, rounds))
            log(markdown(results[-1:], matmul).splitlines()[-1])
    matmul_after = matmul_gmac_per_s(matmul_size)
    log(f"matmul again: {matmul_after:.1f} GMAC/s")
    matmul = max(matmul, matmul_after)
    table = markdown(results, matmul, matmul_size)
    profiles = []
    if profile_dir:
        for name, size in models:
            if name in MODELS:
                batch = max(inference_batches)
                for serial in (True, False):
                    folder = f"{name}_b{batch}" + ("_serial" if serial else "")
                    profiles.append(profile_se(name, size, batch,
                                               logdir=os.path.join(profile_dir, folder),
                                               optimize=optimize, serial_ops=serial))
                    log(profile_markdown(profiles[-1:]).splitlines()[-1])
        table += ("\n\nProfile of the SE models' inference (no XLA; ops serial: one at a "
                  "time, op times add up to the forward's time; overlapped: TensorFlow's "
                  "default schedule, an op's time includes waiting for cores):\n\n"
                  + profile_markdown(profiles))
    if json_path:
        from se_keras._files import write_json_atomically

        write_json_atomically(json_path, {
            "matmul_gmac_per_s": matmul, "xla": xla, "optimize": optimize,
            "results": [r.as_dict() for r in results],
            "profiles": [p.as_dict() for p in profiles]})
    return results, matmul, table


if __name__ == "__main__":  # the subprocess of profile_se(serial_ops=True)
    import sys

    import keras

    _spec = json.loads(sys.argv[1])
    keras.config.set_image_data_format(_spec.pop("data_format"))
    keras.config.set_dtype_policy(_spec.pop("policy"))
    print(json.dumps(_profile_here(**_spec).as_dict()))
