"""Evaluating a finished run and predicting images, through the shared eval preprocessing.

Example:
>>> metrics = evaluate_run("runs/SEResNet20-digits-20250101-120000")  # doctest: +SKIP
>>> metrics["top1"]  # doctest: +SKIP
0.97
"""

import collections
import pathlib

# One answer of `predict_images`: `top` is None and `error` says why for an
# image that could not be read.
Prediction = collections.namedtuple("Prediction", ["path", "top", "error"])


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

    from se_keras.data import errors as data_errors
    from se_keras.data import eval_dataset
    from se_keras.data import get_source
    from se_keras.preprocessing import get_preprocessing
    from se_keras.training.run_files import restore_model
    from se_keras.training.steps import STAT_KEYS
    from se_keras.training.steps import stats

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
    ds = eval_dataset(chosen, num_classes=source.num_classes, global_batch_size=batch_size,
                      preprocessing=get_preprocessing(model), pad=False)
    if limit:
        ds = ds.take(limit)
    k = min(5, source.num_classes)

    @tf.function
    def step(images, labels):
        probs = tf.cast(model(images, training=False), tf.float32)
        losses = keras.losses.categorical_crossentropy(labels, probs)
        return stats(labels, probs, losses, k)

    totals = np.zeros(len(STAT_KEYS))
    try:
        for images, labels in ds:
            sums = step(images, labels)
            totals += np.array([float(sums[key]) for key in STAT_KEYS])
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
        explained = data_errors.explain(error, chosen)
        if explained is None:
            raise
        raise explained from error
    n = max(totals[3], 1)
    return {"top1": totals[1] / n, "top5": totals[2] / n, "loss": totals[0] / n,
            "examples": int(totals[3]), "split": split, "data": spec}


def image_files(paths):
    """`paths` with every folder replaced by the image files in it (recursively, sorted).

    Example:
    >>> image_files(["photos/"])  # doctest: +SKIP
    ['photos/cat.jpg', 'photos/dog.png']
    """
    from se_keras.data.sources import IMAGE_EXTENSIONS

    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise ValueError(
                    f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder. "
                    f"Received: image={str(path)!r}"
                )
            files.extend(found)
        else:
            files.append(path)
    return files


def predict_images(paths, run_dir=None, model=None, weights="imagenet", top=5):
    """Top-k classes of image files, from a run or a pretrained model.

    Each image goes through the model's own preprocessing record
    (`se_keras.get_preprocessing`) and the shared `preprocess_image`.

    Args:
        paths: image files (JPEG, PNG, GIF, BMP) or folders of them.
        run_dir: a training run (its newest intact checkpoint, record and
            class names), or None to use `model`.
        model: a builder name (e.g. "SEResNet50") with `weights`, or a
            `keras.Model` carrying a record, when no `run_dir` is given.
        weights: the pretrained weights for a builder name.
        top: how many classes per image.

    Returns:
        A list of `Prediction(path, top, error)`, one per image in order:
        `top` is `[(class name, probability), ...]`, best first, and
        `error` None; for a missing or undecodable file `top` is None and
        `error` says what is wrong, so one bad file does not hide the
        answers for the others.

    Example:
    >>> predict_images(["cat.jpg"], model="SEResNet50")  # doctest: +SKIP
    [Prediction(path='cat.jpg', top=[('tabby', 0.61), ...], error=None)]
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from se_keras.data import decode_image
    from se_keras.data import preprocess_image
    from se_keras.preprocessing import get_preprocessing

    files = image_files(paths)
    if run_dir is not None:
        from se_keras.training.run_files import restore_model

        net, config = restore_model(run_dir)
        class_names = list(config["class_names"])
    else:
        if model is None:
            raise ValueError("Give a run directory or a model name. Received: run_dir=None, "
                             "model=None")
        from se_keras.applications import get_builder
        from se_keras.applications import imagenet_class_names

        if isinstance(weights, str) and weights.lower() == "none":
            weights = None  # random weights: the command line's --weights none
        net = get_builder(model)(weights=weights) if isinstance(model, str) else model
        classes = net.output_shape[-1]
        class_names = imagenet_class_names() if classes == 1000 else [
            str(i) for i in range(classes)]
    record = get_preprocessing(net)
    to_input = tf.function(lambda data: preprocess_image(decode_image(data), record))
    results = []
    for path in files:
        if not path.is_file():
            results.append(Prediction(str(path), None, "no such file"))
            continue
        try:
            image = to_input(tf.constant(path.read_bytes()))
        except tf.errors.InvalidArgumentError as error:
            results.append(Prediction(
                str(path), None,
                f"not a decodable image ({error.message.splitlines()[0][:200]})"))
            continue
        # NumPy in and out: the model may run on any Keras backend.
        probs = keras.ops.convert_to_numpy(net(image.numpy()[None], training=False))
        probs = probs.astype(np.float32)[0]
        best = np.argsort(-probs)[: min(top, len(class_names))]
        results.append(Prediction(str(path), [(class_names[i], float(probs[i])) for i in best],
                                  None))
    return results
