"""Semantic segmentation with an FPN on an SE-ResNet backbone (`feature_extractor`).

The SE paper uses SE-ResNets as detection backbones; this example shows the
same plumbing for dense prediction, small enough to train on a 2-core CPU:

- Data: scikit-learn's 1,797 real scans of handwritten digits (the data of
  `se-keras train`'s default job), 2-3 digits per 32x32 canvas (by
  default) at random non-overlapping positions and sizes (seeded). Each
  pixel's label is the digit's class (1-10 for the digits 0-9) where the
  scan's ink is (its intensity above a threshold) and 0 (background)
  elsewhere: 11 classes, labels derived from the real images. The held-out
  canvases use only the held-out scans (the last 20% of each class, the
  default training job's split), so the score is on handwriting the model
  never saw.
- Model: `se_keras.applications.feature_extractor` gives the backbone's
  pyramid; a feature pyramid network (Lin et al. 2017: lateral 1x1
  convolutions, top-down nearest upsampling and addition, 3x3 smoothing)
  on its four coarsest levels and a semantic-FPN head (Kirillov et al.
  2019: every level to the finest stride, summed, a 1x1 classifier,
  bilinear upsampling to the input size). The default backbone is the
  CIFAR SE-ResNet-20 at 32x32 (levels P0-P2, strides 1-4: quick to train
  from scratch); ImageNet SE-ResNets give P2-P5 at 64x64 and more, as in
  the paper's detectors. Keras layers only: it runs on every Keras backend.
- Training: plain `model.fit` from random initialization (no download),
  sparse cross-entropy with the digits' pixels weighted up, AdamW. Each
  epoch prints the loss and the held-out mean IoU (`keras.metrics.MeanIoU`
  over the 11 classes) next to the all-background baseline; a PNG shows a
  few held-out predictions, history.json keeps the figures.

Usage:
    python applications/segment_digits_fpn.py       # ~2 min on 2 CPU cores
    # The paper's kind of backbone, P2-P5 at 64x64 (slower to train from scratch):
    python applications/segment_digits_fpn.py --model SEResNet18 --image-size 64 \
        --digits 2-4 --digit-size 16-24 --lr 1e-3 --epochs 10
    # A pretrained backbone (downloads the ImageNet weights once):
    python applications/segment_digits_fpn.py --model SEResNet50 --weights imagenet \
        --image-size 64 --digits 2-4 --digit-size 16-24 --lr 1e-3
"""

import argparse
import math
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

NUM_CLASSES = 11  # background + the digits 0-9
BACKGROUND = 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SEResNet20",
                        help="an SE-ResNet builder (se-keras models): CIFAR or ImageNet")
    parser.add_argument("--weights", default="none",
                        help="none (random init), imagenet, a tag or a weights file")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=1280)
    parser.add_argument("--val-images", type=int, default=256)
    parser.add_argument("--digits", default="2-3", help="digits per canvas: N or MIN-MAX")
    parser.add_argument("--digit-size", default="10-15",
                        help="side of a digit on the canvas, pixels: N or MIN-MAX")
    parser.add_argument("--ink-threshold", type=float, default=0.3,
                        help="ink intensity (0-1) above which a pixel is the digit")
    parser.add_argument("--ink-weight", type=float, default=4.0,
                        help="loss weight of digit pixels (background: 1); they are ~12%%")
    parser.add_argument("--fpn-channels", type=int, default=64)
    parser.add_argument("--levels", default=None,
                        help="backbone keys for the FPN, e.g. P2,P3,P4,P5 (default: the "
                             "four coarsest)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="default: one pass over the training canvases")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/segment-digits-fpn",
                        help="folder for predictions.png and history.json")
    return parser.parse_args(argv)


def _range(text):
    low, _, high = str(text).partition("-")
    low, high = int(low), int(high or low)
    if not 1 <= low <= high:
        raise ValueError(f"Expected N or MIN-MAX with 1 <= MIN <= MAX. Received: {text!r}")
    return low, high


def load_digit_scans():
    """The 8x8 scans as ink in [0, 1], their classes, and the train / held-out indices.

    The held-out scans are the last 20% of each class, the split of
    se_keras.data's default digits source.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    ink = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    train, held_out = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(math.ceil(0.2 * len(idx)))
        train.extend(idx[: len(idx) - k])
        held_out.extend(idx[len(idx) - k:])
    return ink, labels, np.sort(train), np.sort(held_out)


def make_canvases(ink, labels, pool, count, *, size, digits, digit_size, threshold, seed):
    """`count` canvases of digits drawn from the scans `pool`, and their label maps.

    Each canvas gets a random number of digits in `digits` (min, max), each
    scaled to a random side in `digit_size` (bilinear, from the 8x8 scan)
    and put at a random position that overlaps no other digit. Images are
    RGB uint8 in [0, 255], dark ink on white paper; labels are uint8 maps
    with the digit's class + 1 where its ink exceeds `threshold`, else 0.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size), np.float32)
    masks = np.zeros((count, size, size), np.uint8)
    for n in range(count):
        boxes = []
        for _ in range(rng.integers(digits[0], digits[1] + 1)):
            side = int(rng.integers(digit_size[0], digit_size[1] + 1))
            # Rejection sampling of a free spot; a crowded canvas keeps fewer digits.
            for _ in range(50):
                y, x = rng.integers(0, size - side + 1, size=2)
                if all(y + side <= b[0] or b[0] + b[2] <= y or x + side <= b[1]
                       or b[1] + b[2] <= x for b in boxes):
                    break
            else:
                continue
            boxes.append((y, x, side))
            i = rng.choice(pool)
            scan = Image.fromarray(ink[i]).resize((side, side), Image.BILINEAR)
            scan = np.clip(np.asarray(scan, np.float32), 0.0, 1.0)
            window = (slice(y, y + side), slice(x, x + side))
            images[n][window] = np.maximum(images[n][window], scan)
            masks[n][window][scan > threshold] = labels[i] + 1
    rgb = np.round(255.0 * (1.0 - images)).astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=-1), masks


def build_fpn_segmenter(backbone, *, image_size, num_classes, channels=64, levels=None):
    """An FPN on a backbone's pyramid and a semantic-FPN head: logits per pixel.

    Args:
        backbone: a `se_keras.applications.feature_extractor` model.
        image_size: the input side (the logits have the same size).
        num_classes: classes per pixel.
        channels: width of the pyramid.
        levels: the backbone keys to use, consecutive ("P2".."P5" as in
            Lin et al.); None takes the four coarsest (P2-P5 of an ImageNet
            SE-ResNet, P0-P2 of a CIFAR one).

    Returns:
        A `keras.Model` from RGB images to (batch, size, size, classes) logits.
    """
    import keras
    from keras import layers

    available = sorted(backbone.output, key=lambda key: int(key[1:]))
    levels = sorted(levels or available[-4:], key=lambda key: int(key[1:]))
    ks = [int(key[1:]) for key in levels]
    if not set(levels) <= set(available) or ks != list(range(ks[0], ks[0] + len(ks))):
        raise ValueError(
            f"`levels` must be consecutive keys of the backbone {available}. "
            f"Received: levels={levels}"
        )
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = backbone(inputs)
    # Top-down pathway: the coarser map, upsampled, adds to the finer lateral.
    merged = {}
    for k in reversed(ks):
        lateral = layers.Conv2D(channels, 1, name=f"fpn_lateral_P{k}")(features[f"P{k}"])
        if merged:
            lateral = layers.Add(name=f"fpn_add_P{k}")([
                layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_up_P{k}")(
                    merged[k + 1]),
                lateral,
            ])
        merged[k] = lateral
    # 3x3 smoothing against the upsampling's aliasing, then every level to
    # the finest stride and summed (the semantic-FPN head).
    summed = []
    for k in ks:
        x = layers.Conv2D(channels, 3, padding="same", name=f"fpn_smooth_P{k}")(merged[k])
        x = layers.Conv2D(channels, 3, padding="same", use_bias=False,
                          name=f"head_conv_P{k}")(x)
        x = layers.BatchNormalization(name=f"head_bn_P{k}")(x)
        x = layers.ReLU(name=f"head_relu_P{k}")(x)
        if k > ks[0]:
            x = layers.UpSampling2D(2 ** (k - ks[0]), interpolation="bilinear",
                                    name=f"head_up_P{k}")(x)
        summed.append(x)
    x = layers.Add(name="head_sum")(summed)
    x = layers.Conv2D(num_classes, 1, name="head_logits")(x)
    if ks[0] > 0:
        x = layers.UpSampling2D(2 ** ks[0], interpolation="bilinear", name="logits")(x)
    return keras.Model(inputs, x, name="fpn_segmenter")


def mean_iou(y_true, y_pred, num_classes=NUM_CLASSES):
    """keras' MeanIoU of class maps (classes absent from both are left out)."""
    import keras

    metric = keras.metrics.MeanIoU(num_classes=num_classes)
    metric.update_state(y_true.reshape(-1), y_pred.reshape(-1))
    return float(metric.result())


def save_predictions(path, images, masks, predictions, count=6):
    """A PNG: rows of held-out canvas, its label map and the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colors = ["white"] + [plt.get_cmap("tab10")(i) for i in range(10)]
    cmap = ListedColormap(colors)
    count = min(count, len(images))
    fig, axes = plt.subplots(count, 3, figsize=(6, 2 * count), squeeze=False)
    for row in range(count):
        for col, (title, data) in enumerate((
            ("image", images[row]), ("label", masks[row]), ("prediction", predictions[row]),
        )):
            ax = axes[row][col]
            if col == 0:
                ax.imshow(data)
            else:
                ax.imshow(data, cmap=cmap, vmin=0, vmax=NUM_CLASSES - 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
    fig.suptitle("held-out digits: colour = digit class (tab10), white = background",
                 fontsize=8)
    fig.tight_layout()
    from se_keras._files import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def main(argv=None):
    """Builds the data and the model, trains, evaluates; returns the figures as a dict."""
    args = parse_args(argv)
    import keras

    from se_keras.applications import feature_extractor
    from se_keras.applications import get_builder
    from se_keras.preprocessing import get_preprocessing

    start = time.time()
    keras.utils.set_random_seed(args.seed)
    ink, labels, train_pool, held_out_pool = load_digit_scans()
    options = dict(size=args.image_size, digits=_range(args.digits),
                   digit_size=_range(args.digit_size), threshold=args.ink_threshold)
    x_train, y_train = make_canvases(ink, labels, train_pool, args.train_images,
                                     seed=args.seed, **options)
    x_val, y_val = make_canvases(ink, labels, held_out_pool, args.val_images,
                                 seed=args.seed + 1, **options)
    print(f"data: {len(x_train)} training canvases from {len(train_pool)} scans, "
          f"{len(x_val)} held-out canvases from {len(held_out_pool)} other scans; "
          f"{100 * np.mean(y_val == BACKGROUND):.1f}% of held-out pixels are background")

    # The backbone normalizes in the model (include_preprocessing) so it takes
    # the canvases' RGB in [0, 255]; the extractor keeps that record.
    weights = None if args.weights.lower() == "none" else args.weights
    classifier = get_builder(args.model)(
        weights=weights, include_top=False,
        input_shape=(args.image_size, args.image_size, 3), include_preprocessing=True,
    )
    backbone = feature_extractor(classifier)
    assert get_preprocessing(backbone).normalize_in_model
    model = build_fpn_segmenter(backbone, image_size=args.image_size,
                                num_classes=NUM_CLASSES, channels=args.fpn_channels,
                                levels=args.levels.split(",") if args.levels else None)
    print(f"model: {args.model} backbone ({', '.join(backbone.output)}) + FPN, "
          f"{model.count_params():,} parameters")

    baseline = mean_iou(y_val, np.full_like(y_val, BACKGROUND))
    steps = args.steps_per_epoch or max(1, len(x_train) // args.batch_size)
    total = steps * args.epochs
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(
                0.0, total, warmup_target=args.lr, warmup_steps=max(1, total // 10)
            ),
            weight_decay=1e-4,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.MeanIoU(num_classes=NUM_CLASSES, sparse_y_pred=False,
                                       name="mean_iou")],
    )

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            print(f"epoch {epoch + 1}/{args.epochs}: loss {logs['loss']:.4f}, "
                  f"held-out loss {logs['val_loss']:.4f}, held-out mIoU "
                  f"{logs['val_mean_iou']:.3f} (all-background {baseline:.3f}), "
                  f"{time.time() - start:.0f}s", flush=True)

    def batches():
        # Endless shuffled batches, seeded, on any backend (no tf.data).
        rng = np.random.default_rng(args.seed)
        while True:
            order = rng.permutation(len(x_train))
            for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
                idx = order[i:i + args.batch_size]
                y = y_train[idx]
                weight = np.where(y == BACKGROUND, 1.0, args.ink_weight).astype("float32")
                yield x_train[idx].astype("float32"), y.astype("int32"), weight

    history = model.fit(
        batches(), steps_per_epoch=steps, epochs=args.epochs,
        validation_data=(x_val.astype("float32"), y_val.astype("int32")),
        validation_batch_size=64, shuffle=False, callbacks=[Report()], verbose=0,
    )
    logits = model.predict(x_val.astype("float32"), batch_size=64, verbose=0)
    predictions = np.argmax(logits, axis=-1).astype(np.uint8)
    final = mean_iou(y_val, predictions)
    foreground = y_val != BACKGROUND
    digit_accuracy = float(np.mean(predictions[foreground] == y_val[foreground]))

    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    save_predictions(output / "predictions.png", x_val, y_val, predictions)
    results = dict(
        model=args.model, steps=total, seconds=round(time.time() - start, 1),
        loss=[float(v) for v in history.history["loss"]],
        val_loss=[float(v) for v in history.history["val_loss"]],
        val_mean_iou=[float(v) for v in history.history["val_mean_iou"]],
        final_mean_iou=final, background_only_mean_iou=baseline,
        ink_pixel_accuracy=digit_accuracy,
        predictions_png=str(output / "predictions.png"),
    )
    from se_keras._files import write_json_atomically

    write_json_atomically(output / "history.json", results)
    print(f"held-out mIoU {final:.3f} vs {baseline:.3f} for all-background; "
          f"{100 * digit_accuracy:.1f}% of ink pixels get their digit's class; "
          f"{results['seconds']:.0f}s; wrote {output / 'predictions.png'} and history.json")
    return results


if __name__ == "__main__":
    main()
