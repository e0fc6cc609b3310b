"""Fine-tune a pretrained SE network on a folder of images with plain `model.fit`.

The common transfer-learning recipe, in two phases:

1. Freeze the pretrained backbone and train a new classifier head.
2. Unfreeze the backbone (BatchNorm stays frozen, in inference mode, as is
   usual with small datasets) and train everything with a 10x lower
   learning rate.

The data is a folder with one subfolder per class (photos/cat/*.jpg,
photos/dog/*.jpg, ...), read by `se_keras.data` (random-resized crops and
flips for training, the shared eval preprocessing for validation). The new
model carries the pretrained weights' preprocessing record (normalization
and interpolation; `se_keras.get_preprocessing`) at the fine-tuning size,
and the pipelines read it from the model. The result is a run directory in
the project's format, so `se-keras evaluate RUN_DIR`, `se-keras predict
--run RUN_DIR` and `se-keras export --checkpoint RUN_DIR` work on it.

Usage:
    # ImageNet weights (downloaded once), your photos:
    python applications/finetune_image_folder.py photos --model SEResNet50 \
        --weights imagenet --image-size 224 --output runs/photos-finetuned

    # Offline smoke test: random init, 100 CIFAR images per class, 32x32:
    python applications/finetune_image_folder.py ../shared/datasets/cifar10/train \
        --model SEResNet20 --weights none --image-size 32 --max-per-class 100 \
        --head-epochs 1 --finetune-epochs 1 --output runs/finetune-smoke
"""

import argparse
import json
import math
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="image folder with one subfolder per class")
    parser.add_argument("--model", default="SEResNet50", help="builder name (se-keras models)")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet, a pretrained tag, a weights file, or none")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--crop-pct", type=float, default=None,
                        help="eval crop fraction (default: the weights', else the builder's)")
    parser.add_argument("--val-split", default="0.1",
                        help="held out per class: a fraction, a count, or a folder")
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="use at most this many training images per class")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3, help="head phase; /10 when unfrozen")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="run directory (default: runs/finetune-*)")
    return parser.parse_args(argv)


def build_models(args, num_classes):
    """The new classifier (a builder model, so the run format can rebuild it) with pretrained weights.

    Its preprocessing record is the pretrained weights' (mean, std,
    interpolation, origin) at the fine-tuning size, with `--crop-pct` if given.
    """
    import keras

    from se_keras.applications import get_builder
    from se_keras.applications import resnet
    from se_keras.preprocessing import get_preprocessing

    builder = get_builder(args.model)
    shape = (args.image_size, args.image_size, 3)
    weights = None if args.weights.lower() == "none" else args.weights
    # SE-ResNet-family weights fix the layout (legacy_in1k is the Caffe one):
    # the new model is built in the same, and the run records it.
    layout = {}
    if getattr(builder, "arch", None) in resnet.ARCHITECTURES:
        layout["layout"] = resnet.resolve_layout(builder.arch, weights)
    backbone = None
    overrides = {}
    if weights is not None:
        backbone = builder(include_top=False, weights=weights, input_shape=shape, **layout)
        overrides = get_preprocessing(backbone).to_dict()
    if args.crop_pct:
        overrides["crop_pct"] = args.crop_pct
    model = builder(weights=None, classes=num_classes, input_shape=shape,
                    preprocessing=overrides or None, **layout)
    if backbone is not None:
        source = {layer.name: layer for layer in backbone.layers}
        copied = 0
        for layer in model.layers:
            if layer.name in source and layer.weights:
                layer.set_weights(source[layer.name].get_weights())
                copied += 1
        print(f"Copied the pretrained weights of {copied} layers from {args.weights}.")
    head = model.get_layer("predictions")
    keras.utils.set_random_seed(args.seed)
    return model, head, layout


def set_trainable(model, head, backbone):
    """Phase 1: only the head. Phase 2: everything except BatchNorm."""
    import keras

    for layer in model.layers:
        if layer is head:
            layer.trainable = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        else:
            layer.trainable = backbone


def save_run(run_dir, model, args, class_names, history, layout=None):
    """config.json and a checkpoint in the run-directory contract of se_keras.training.run_files."""
    import tensorflow as tf

    from se_keras.preprocessing import get_preprocessing
    from se_keras.training.run_files import CHECKPOINT_DIR
    from se_keras.training.run_files import CONFIG_NAME
    from se_keras.training.run_files import write_json_atomically

    run_dir.mkdir(parents=True, exist_ok=True)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(run_dir / CHECKPOINT_DIR), max_to_keep=1
    )
    manager.save()
    record = get_preprocessing(model).to_dict()
    write_json_atomically(run_dir / CONFIG_NAME, {
        "model": {"name": args.model,
                  "kwargs": {"classes": len(class_names),
                             "input_shape": [args.image_size, args.image_size, 3],
                             "preprocessing": record, **(layout or {})}},
        "preprocessing": record,
        "class_names": class_names,
        "train": {"data": f"folder:{args.folder}", "val_split": args.val_split},
        "finetune": {**{k: v for k, v in vars(args).items()}, "history": history},
    })


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np

    from se_keras.data import Augmentation
    from se_keras.data import eval_dataset
    from se_keras.data import get_source
    from se_keras.data import train_dataset
    from se_keras.preprocessing import get_preprocessing

    keras.config.set_dtype_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    source = get_source(f"folder:{args.folder}", val_split=args.val_split)
    train_split = source.train
    if args.max_per_class:
        keep = np.concatenate([np.flatnonzero(train_split.labels == c)[:args.max_per_class]
                               for c in range(source.num_classes)])
        train_split = train_split.subset("train", np.sort(keep))
        if source.validation is not None:
            val_keep = np.concatenate([
                np.flatnonzero(source.validation.labels == c)[:max(args.max_per_class // 5, 1)]
                for c in range(source.num_classes)])
            source.validation = source.validation.subset("validation", np.sort(val_keep))
    print(f"{source.num_classes} classes, {train_split.num_examples} training and "
          f"{source.validation.num_examples if source.validation else 0} validation images")

    model, head, layout = build_models(args, source.num_classes)
    # The one place the pipelines learn how to feed the model: its record.
    preprocessing = get_preprocessing(model)
    steps = max(1, train_split.num_examples // args.batch_size)
    # A small dataset is better served by milder crops than ImageNet's 8%.
    augmentation = Augmentation(crop="inception", area_min=0.25, flip=True)
    train_ds = train_dataset(train_split, num_classes=source.num_classes,
                             global_batch_size=args.batch_size, preprocessing=preprocessing,
                             augmentation=augmentation, seed=args.seed, steps_per_epoch=steps)
    val_ds = None
    if source.validation is not None:
        val_ds = eval_dataset(source.validation, num_classes=source.num_classes,
                              global_batch_size=args.batch_size, preprocessing=preprocessing,
                              pad=False, cache=True)
    metrics = ["accuracy", keras.metrics.TopKCategoricalAccuracy(
        k=min(5, source.num_classes), name="top5")]
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
    history = {}
    start = time.time()
    phases = (("head", args.head_epochs, args.lr, False),
              ("finetune", args.finetune_epochs, args.lr / 10, True))
    epoch = 0
    for name, epochs, lr, unfreeze in phases:
        if not epochs:
            continue
        set_trainable(model, head, backbone=unfreeze)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        print(f"Phase {name}: {epochs} epoch(s), lr {lr:g}, {trainable:,} trainable parameters")
        # compile again after changing `trainable`, as Keras requires.
        model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=1e-4),
                      loss=loss, metrics=metrics)
        fit = model.fit(train_ds, steps_per_epoch=steps, epochs=epoch + epochs,
                        initial_epoch=epoch, validation_data=val_ds, shuffle=False, verbose=2)
        epoch += epochs
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
    seconds = time.time() - start
    results = {}
    if val_ds is not None:
        results = model.evaluate(val_ds, return_dict=True, verbose=0)
        print(f"Validation: top-1 {results['accuracy']:.4f}, top-5 {results['top5']:.4f}")
    run_dir = pathlib.Path(args.output or f"runs/finetune-{args.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    save_run(run_dir, model, args, source.class_names,
             {**history, "seconds": seconds,
              **{f"final_{k}": float(v) for k, v in results.items()}}, layout)
    print(f"Run directory: {run_dir} (try: se-keras evaluate {run_dir})")
    return results


if __name__ == "__main__":
    main()
