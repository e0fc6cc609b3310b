"""Evaluating a finished run and predicting images, through the shared eval preprocessing.

Example:
>>> metrics = evaluate_run("runs/SEResNet20-digits-20250101-120000")  # doctest: +SKIP
>>> metrics["top1"]  # doctest: +SKIP
0.97
"""

import pathlib


def _top_k(probs, k):
    import numpy as np

    order = np.argsort(-probs, axis=-1)[:, :k]
    return order


def evaluate_run(run_dir, data=None, split="validation", batch_size=128, data_dir=None,
                 val_split=None, limit=None):
    """Top-1, top-5 and loss of a run's latest checkpoint on a dataset.

    Args:
        run_dir: the training run's directory.
        data: a `--data` spec; default: the run's own.
        split: "validation" or "train".
        batch_size: evaluation batch size.
        data_dir: tensorflow-datasets directory (default: the run's).
        val_split: default: the run's.
        limit: evaluate only the first `limit` batches.

    Returns:
        {"top1", "top5", "loss", "examples", "split", "data"}.

    Example:
    >>> evaluate_run("runs/my-run", split="validation")  # doctest: +SKIP
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from se_keras.data import eval_dataset
    from se_keras.data import get_source
    from se_keras.data import Preprocessing
    from se_keras.training.run_files import restore_model

    model, config = restore_model(run_dir)
    train_config = config.get("train", {})
    spec = data or train_config.get("data", "digits")
    source = get_source(
        spec,
        data_dir=data_dir or train_config.get("data_dir"),
        val_split=val_split or train_config.get("val_split", "auto"),
        skip_bad_files=train_config.get("skip_bad_files", False),
        num_classes=len(config["class_names"]),
        label_offset=train_config.get("label_offset"),
    )
    if source.class_names != list(config["class_names"]):
        raise ValueError(
            "The dataset's classes differ from the run's: "
            f"{source.class_names[:5]}... vs {config['class_names'][:5]}... Received: data={spec!r}"
        )
    if split not in ("validation", "train"):
        raise ValueError(f"`split` must be 'validation' or 'train'. Received: split={split!r}")
    chosen = source.validation if split == "validation" else source.train
    if chosen is None:
        raise ValueError(f"The dataset has no validation split. Received: data={spec!r}, "
                         f"val_split={val_split!r}")
    preprocessing = Preprocessing.from_dict(config["preprocessing"])
    ds = eval_dataset(chosen, num_classes=source.num_classes, global_batch_size=batch_size,
                      preprocessing=preprocessing, pad=False)
    if limit:
        ds = ds.take(limit)
    k = min(5, source.num_classes)

    @tf.function
    def step(images, labels):
        probs = tf.cast(model(images, training=False), tf.float32)
        losses = keras.losses.categorical_crossentropy(labels, probs)
        targets = tf.argmax(labels, axis=-1, output_type=tf.int32)
        top1 = tf.math.in_top_k(targets, probs, 1)
        top5 = tf.math.in_top_k(targets, probs, k)
        return (tf.reduce_sum(losses), tf.reduce_sum(tf.cast(top1, tf.float32)),
                tf.reduce_sum(tf.cast(top5, tf.float32)), tf.shape(labels)[0])

    totals = np.zeros(4)
    for images, labels in ds:
        totals += np.array([float(v) for v in step(images, labels)])
    n = max(totals[3], 1)
    return {"top1": totals[1] / n, "top5": totals[2] / n, "loss": totals[0] / n,
            "examples": int(totals[3]), "split": split, "data": spec}


def predict_images(paths, run_dir=None, model=None, weights="imagenet", top=5):
    """Top-k classes of image files, from a run or a pretrained model.

    Args:
        paths: image files (JPEG, PNG, GIF, BMP).
        run_dir: a training run (its latest checkpoint, preprocessing and
            class names), or None to use `model`.
        model: a builder name (e.g. "SEResNet50") with `weights`, when no
            `run_dir` is given.
        weights: the pretrained weights for `model`.
        top: how many classes per image.

    Returns:
        A list of `(path, [(class name, probability), ...])`, best first.

    Example:
    >>> predict_images(["cat.jpg"], model="SEResNet50")  # doctest: +SKIP
    [('cat.jpg', [('tabby', 0.61), ...])]
    """
    import numpy as np
    import tensorflow as tf

    from se_keras.data import eval_preprocess_bytes
    from se_keras.data import Preprocessing

    if run_dir is not None:
        from se_keras.training.run_files import restore_model

        net, config = restore_model(run_dir)
        preprocessing = Preprocessing.from_dict(config["preprocessing"])
        class_names = list(config["class_names"])
    else:
        if model is None:
            raise ValueError("Give a run directory or a model name. Received: run_dir=None, "
                             "model=None")
        from se_keras.applications import get_builder
        from se_keras.applications import imagenet_class_names

        net = get_builder(model)(weights=weights)
        info = getattr(net, "pretrained", None) or {}
        size = info.get("input_size") or net.input_shape[1] or 224
        size = size[-1] if isinstance(size, (tuple, list)) else size
        preprocessing = Preprocessing(
            size=int(size), crop_pct=float(info.get("crop_pct", 0.875)),
            mean=tuple(info.get("mean") or Preprocessing.mean),
            std=tuple(info.get("std") or Preprocessing.std),
            interpolation=info.get("interpolation", "bilinear"),
        )
        classes = net.output_shape[-1]
        class_names = imagenet_class_names() if classes == 1000 else [
            str(i) for i in range(classes)]
    results = []
    for path in paths:
        path = pathlib.Path(path)
        if not path.is_file():
            raise ValueError(f"No such image file. Received: image={str(path)!r}")
        try:
            image = eval_preprocess_bytes(
                tf.constant(path.read_bytes()), size=preprocessing.size,
                crop_pct=preprocessing.crop_pct, mean=preprocessing.mean,
                std=preprocessing.std, interpolation=preprocessing.interpolation,
            )
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"{path} is not a decodable image ({str(error).splitlines()[0][:200]}). "
                f"Received: image={str(path)!r}"
            ) from error
        probs = np.asarray(net(image[None], training=False), np.float32)[0]
        best = _top_k(probs[None], min(top, len(class_names)))[0]
        results.append((str(path), [(class_names[i], float(probs[i])) for i in best]))
    return results
