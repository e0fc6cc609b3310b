"""Input pipeline throughput (images/s) next to bare JPEG decoding of the same files.

Runs, in one process and on the same files: bare decoding (read + decode
only, parallel), then the training pipeline (random-resized crop fused with
decoding, flip, batching, normalization, prefetch) in several settings, and
the evaluation pipeline. Prints a table with each figure's ratio to bare
decoding; a ratio near 1 means the pipeline adds little to decoding.

Usage:
    python training/benchmark_pipeline.py                 # the shared CIFAR JPEGs
    python training/benchmark_pipeline.py --data folder:/path/to/images --image-size 224
"""

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# training/benchmark_pipeline.py -> the checkout's parent holds shared/.
DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10" / "train"


def measure(ds, images, batch_size):
    """Images per second over `images` images, after one warm-up batch."""
    iterator = iter(ds)
    next(iterator)
    steps = max(1, images // batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"folder:{DEFAULT_DATA}")
    parser.add_argument("--images", type=int, default=20_000, help="images timed per row")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0,
                        help="tf.data private thread pool (0: TensorFlow's default)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from se_keras.data import Augmentation
    from se_keras.data import eval_dataset
    from se_keras.data import get_source
    from se_keras.data import Preprocessing
    from se_keras.data import train_dataset

    source = get_source(args.data, val_split="none")
    split = source.train
    files = split.paths
    if files is None:
        raise SystemExit("The benchmark needs an image folder (folder:PATH).")
    n = min(args.images, len(files))
    bs = args.batch_size
    preprocessing = Preprocessing(size=args.image_size, crop_pct=1.0)
    common = dict(num_classes=source.num_classes, global_batch_size=bs,
                  preprocessing=preprocessing)

    def bare(num_parallel_calls):
        ds = tf.data.Dataset.from_tensor_slices(files).repeat()
        ds = ds.map(lambda f: tf.io.decode_image(tf.io.read_file(f), channels=3,
                                                 expand_animations=False),
                    num_parallel_calls=num_parallel_calls)
        # Batching needs equal shapes; ragged batches keep this decode-only.
        return ds.ragged_batch(bs).prefetch(tf.data.AUTOTUNE)

    def with_threads(ds):
        if args.threads:
            options = tf.data.Options()
            options.threading.private_threadpool_size = args.threads
            ds = ds.with_options(options)
        return ds

    cached = get_source(args.data, val_split="none", cache=True).train
    rows = [
        ("bare decode, 1 thread (read + decode_image)", lambda: bare(None)),
        ("bare decode, parallel (read + decode_image)", lambda: bare(tf.data.AUTOTUNE)),
        ("train: inception crop fused with decode, flip", lambda: train_dataset(
            split, augmentation=Augmentation(crop="inception"), **common)),
        ("train: CIFAR pad-and-crop, flip", lambda: train_dataset(
            split, augmentation=Augmentation(crop="pad"), **common)),
        ("train: inception crop, unordered (deterministic off)", lambda: train_dataset(
            split, augmentation=Augmentation(crop="inception"), deterministic=False, **common)),
        ("train: inception crop, files cached in memory", lambda: train_dataset(
            cached, augmentation=Augmentation(crop="inception"), **common)),
        ("train: + RandAugment + MixUp (core Keras)", lambda: train_dataset(
            split, augmentation=Augmentation(crop="inception", randaugment=True,
                                             mixup_alpha=0.2), **common)),
        ("eval: shared eval_preprocess", lambda: eval_dataset(
            split, pad=False, **common).repeat()),
    ]
    print(f"{source.description}: timing {n} images per row, batch {bs}, "
          f"{args.image_size}x{args.image_size}, {os.cpu_count()} CPUs")
    results = []
    for name, make in rows:
        rate = measure(with_threads(make()), n, bs)
        results.append((name, rate))
        print(f"  {name}: {rate:,.0f} images/s", flush=True)
    reference = results[1][1]
    width = max(len(name) for name, _ in results)
    print()
    print(f"| {'pipeline'.ljust(width)} | images/s | vs parallel bare decode |")
    print(f"|{'-' * (width + 2)}|---------:|------------------------:|")
    for name, rate in results:
        print(f"| {name.ljust(width)} | {rate:8,.0f} | {rate / reference:23.2f} |")


if __name__ == "__main__":
    main()
