"""se_keras against keras.applications and timm on CPU: images per second, round by round.

Times, at 224x224:

    se_keras SEResNet50 (optimized)   `se_keras.export.optimize_for_inference` copy (inference only)
    se_keras SEResNet50               the model as built (inference and a training step)
    keras ResNet50                    keras.applications.ResNet50 (inference and training)
    timm seresnet50, timm resnet50    when torch and timm import (inference and training);
                                      also in channels_last memory format with --timm-channels-last

Inference runs at batch 1 and at `--batch` (16), the training step (SGD with
momentum, cross-entropy) at `--batch`. Every timing runs in its own
subprocess, so that one library's thread pools never share the process
with another's; the entries alternate within each round (the order is
reversed every other round) after a warm-up, so that the load of a shared
machine falls on all of them alike. The per-round ratio se_keras-optimized
/ timm-seresnet50 compares two runs that are neighbours in time (they run
one after the other in every round); its median over rounds is the
headline figure. Each line also shows the machine's load average, since a
shared machine's other work moves every figure.

Run it with the project's Python (it times se_keras and keras in
subprocesses of the same interpreter) and point `--torch-python` at a
Python that has torch and timm (default: this interpreter; timm is skipped
if it does not import there):

    python benchmarks/head_to_head.py --torch-python /work/refenv/bin/python --json results.json

Weights are random (weights=None, pretrained=False): speed does not depend
on them, and nothing is downloaded. torch runs with OMP_WAIT_POLICY=PASSIVE
unless `--omp-active` (or the variable) says otherwise: spinning OpenMP
threads make timm several times slower whenever another process uses a
core, and no faster when none does.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SIZE = 224
# (key, label, library, model name, modes it is timed in, extra options), in
# the order of a round: the two of the headline ratio are neighbours.
ENTRIES = (
    ("se_keras_optimized", "se_keras SEResNet50 (optimized)", "keras", "se_keras_optimized",
     ("inference",), {}),
    ("timm_seresnet50", "timm seresnet50", "torch", "seresnet50", ("inference", "train"), {}),
    ("se_keras", "se_keras SEResNet50", "keras", "se_keras", ("inference", "train"), {}),
    ("keras_resnet50", "keras.applications ResNet50", "keras", "keras_resnet50",
     ("inference", "train"), {}),
    ("timm_resnet50", "timm resnet50", "torch", "resnet50", ("inference", "train"), {}),
)
# With --timm-channels-last, first in a round (next to the optimized model).
CHANNELS_LAST_ENTRIES = (
    ("timm_seresnet50_cl", "timm seresnet50 (channels_last)", "torch", "seresnet50",
     ("inference", "train"), {"channels_last": True}),
)
# The headline ratio: se_keras optimized over timm seresnet50 (and over its
# channels_last run when timed).
OPTIMIZED, REFERENCES = "se_keras_optimized", ("timm_seresnet50", "timm_seresnet50_cl")


# The worker: one model, every mode, in a fresh process.


def _timed(step, batch, warmup, min_seconds, min_calls):
    """Images per second of `step()` after `warmup` calls; at least `min_calls` timed calls."""
    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        step()
        calls += 1
    return batch * calls / (time.perf_counter() - start)


def _keras_worker(spec):
    threads = spec["threads"]
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    name = spec["model"]
    if name == "keras_resnet50":
        model = keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3))
    else:
        from se_keras.applications import SEResNet50

        model = SEResNet50(weights=None, input_shape=(SIZE, SIZE, 3))
        if name == "se_keras_optimized":
            from se_keras.export.optimize import optimize_for_inference

            model = optimize_for_inference(model)
    results = {}
    for mode, batch in spec["runs"]:
        x = tf.random.uniform((batch, SIZE, SIZE, 3))
        if mode == "inference":
            forward = tf.function(lambda x=x: model(x, training=False))

            def step(forward=forward):
                forward().numpy()  # waits for the result
        else:
            y = tf.random.uniform((batch,), maxval=1000, dtype=tf.int32)
            optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
            optimizer.build(model.trainable_variables)
            loss_fn = keras.losses.SparseCategoricalCrossentropy()

            @tf.function
            def train(x=x, y=y, optimizer=optimizer, loss_fn=loss_fn):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply(grads, model.trainable_variables)
                return loss

            def step(train=train):
                train().numpy()

        results[f"{mode}_b{batch}"] = _timed(step, batch, **spec["timing"])
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    return results, versions


def _torch_worker(spec):
    threads = spec["threads"]
    import timm
    import torch

    torch.set_num_threads(threads)
    channels_last = spec.get("channels_last", False)
    model = timm.create_model(spec["model"], pretrained=False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    results = {}
    for mode, batch in spec["runs"]:
        x = torch.randn(batch, 3, SIZE, SIZE)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        if mode == "inference":
            model.eval()

            def step(x=x):
                with torch.inference_mode():
                    model(x)
        else:
            model.train()
            y = torch.randint(0, 1000, (batch,))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loss_fn = torch.nn.CrossEntropyLoss()

            def step(x=x, y=y, optimizer=optimizer, loss_fn=loss_fn):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x), y).backward()
                optimizer.step()

        results[f"{mode}_b{batch}"] = _timed(step, batch, **spec["timing"])
    versions = {"torch": torch.__version__, "timm": timm.__version__}
    return results, versions


def _worker(spec_json):
    spec = json.loads(spec_json)
    worker = _keras_worker if spec["library"] == "keras" else _torch_worker
    results, versions = worker(spec)
    print("RESULT " + json.dumps({"results": results, "versions": versions}), flush=True)


# The driver.


def _run_entry(entry, args, python):
    key, _, library, model, modes, options = entry
    runs = []
    if "inference" in modes:
        runs += [("inference", 1), ("inference", args.batch)]
    if "train" in modes and not args.no_train:
        runs.append(("train", args.batch))
    spec = {
        "library": library, "model": model, "threads": args.threads, "runs": runs,
        "timing": {"warmup": args.warmup, "min_seconds": args.min_seconds,
                   "min_calls": args.min_calls},
        **options,
    }
    env = dict(os.environ)
    # Both libraries' OpenMP/oneDNN pools follow these too.
    env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TF_CPP_MIN_LOG_LEVEL="3")
    if library == "torch" and not args.omp_active:
        # torch's OpenMP threads spin while they wait. On a machine whose
        # cores other processes also use, that collapses its speed (timm
        # seresnet50 at batch 1 measured 0.35 img/s spinning and 8.8 img/s
        # passive in the same minute); when the cores are free both give
        # the same. Passive waiting is the fair setting for timm here.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    started = time.perf_counter()
    process = subprocess.run(
        [python, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env, check=False,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(
            f"The {key} worker failed (exit {process.returncode}):\n{process.stderr[-3000:]}"
        )
    payload = json.loads(lines[-1][len("RESULT "):])
    payload["seconds"] = time.perf_counter() - started
    return payload


def _can_import_timm(python):
    process = subprocess.run(
        [python, "-c", "import torch, timm"], capture_output=True, text=True, check=False
    )
    return process.returncode == 0


def _load():
    """The 1-minute load average: how busy the (possibly shared) machine was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run(args, log=print):
    """Runs every round; returns the JSON-ready results."""
    entries = list(ENTRIES)
    torch_python = args.torch_python or sys.executable
    timm_available = _can_import_timm(torch_python)
    if not timm_available:
        log(f"timm skipped: `import torch, timm` fails with {torch_python}")
        entries = [e for e in entries if e[2] != "torch"]
    elif args.timm_channels_last:
        entries = list(CHANNELS_LAST_ENTRIES) + entries
    rounds = []
    versions = {}
    for r in range(args.rounds):
        order = entries if r % 2 == 0 else entries[::-1]
        round_results = {}
        for entry in order:
            python = torch_python if entry[2] == "torch" else sys.executable
            payload = _run_entry(entry, args, python)
            versions.update(payload["versions"])
            round_results[entry[0]] = payload["results"]
            log(f"round {r + 1}/{args.rounds} {entry[1]:36s} "
                + "  ".join(f"{k} {v:7.2f} img/s" for k, v in payload["results"].items())
                + f"  ({payload['seconds']:.0f} s, load {_load():.2f})")
        rounds.append(round_results)
    modes = sorted({m for rr in rounds for res in rr.values() for m in res},
                   key=lambda m: (m.split("_")[0] != "inference", int(m.split("_b")[1])))
    medians = {
        e[0]: {m: statistics.median(rr[e[0]][m] for rr in rounds)
               for m in modes if m in rounds[0].get(e[0], {})}
        for e in entries
    }
    ratios = {}
    for reference in REFERENCES:
        for m in modes:
            if m in rounds[0].get(OPTIMIZED, {}) and m in rounds[0].get(reference, {}):
                per_round = [rr[OPTIMIZED][m] / rr[reference][m] for rr in rounds]
                ratios.setdefault(reference, {})[m] = {
                    "per_round": per_round, "median": statistics.median(per_round)}
    return {
        "size": SIZE, "batch": args.batch, "threads": args.threads, "rounds": rounds,
        "torch_omp_wait_policy": "ACTIVE" if args.omp_active
        else os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "medians": medians, "ratios_of_optimized_over": ratios,
        "labels": {e[0]: e[1] for e in entries}, "versions": versions,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "torch_python": torch_python},
    }


def markdown(result):
    """The per-round and median table, and the ratio line(s)."""
    modes = sorted({m for v in result["medians"].values() for m in v},
                   key=lambda m: (m.split("_")[0] != "inference", int(m.split("_b")[1])))
    lines = [
        f"images/s at {result['size']}x{result['size']}, {result['threads']} threads; "
        "per round, then the median",
        "",
        "| model | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for key, label in result["labels"].items():
        cells = []
        for m in modes:
            values = [rr[key][m] for rr in result["rounds"] if m in rr.get(key, {})]
            if not values:
                cells.append("-")
                continue
            cells.append(", ".join(f"{v:.2f}" for v in values)
                         + f" (median **{result['medians'][key][m]:.2f}**)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for reference, by_mode in result["ratios_of_optimized_over"].items():
        for m, ratio in by_mode.items():
            lines.append(
                f"- {result['labels'][OPTIMIZED]} / {result['labels'][reference]}, {m}: "
                "per round " + ", ".join(f"{v:.2f}x" for v in ratio["per_round"])
                + f"; median **{ratio['median']:.2f}x**"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch.set_num_threads and TF intra/inter-op threads (default 2)")
    parser.add_argument("--batch", type=int, default=16,
                        help="the larger inference batch and the training batch (default 16)")
    parser.add_argument("--torch-python", default=None,
                        help="a Python with torch and timm (default: this one)")
    parser.add_argument("--timm-channels-last", action="store_true",
                        help="also time timm seresnet50 in channels_last memory format")
    parser.add_argument("--omp-active", action="store_true",
                        help="let torch's OpenMP threads spin while they wait (its default; "
                        "on a shared machine that makes timm several times slower)")
    parser.add_argument("--no-train", action="store_true", help="inference only")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per mode (default 2)")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time each mode for at least this long (default 3)")
    parser.add_argument("--min-calls", type=int, default=2,
                        help="and for at least this many calls (default 2)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    for name in ("rounds", "threads", "batch", "min_calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    result = run(args)
    print()
    print(markdown(result))
    if args.json:
        from se_keras._files import write_json_atomically

        write_json_atomically(args.json, result)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
