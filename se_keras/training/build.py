"""Building a run's parts from its `TrainConfig`: data source, model, schedule, optimizer, inputs.

Example:
>>> source = load_source(config)  # doctest: +SKIP
>>> kwargs, weights = model_arguments(config, source.num_classes, run_dir, False)  # doctest: +SKIP
"""

from se_keras.training import run_files


def load_source(config):
    """The run's data source (`se_keras.data.sources`), checked to have at least 2 classes.

    Example:
    >>> load_source(resolve_config("default")).num_classes  # doctest: +SKIP
    10
    """
    from se_keras.data import sources

    source = sources.get_source(
        config.data, data_dir=config.data_dir, val_split=config.val_split,
        skip_bad_files=config.skip_bad_files, verify_images=config.verify_images,
        cache=config.cache, num_classes=config.num_classes,
        label_offset=config.label_offset, shuffle_buffer=config.shuffle_buffer,
    )
    if source.num_classes < 2:
        raise ValueError(
            "Training needs at least 2 classes; the data has "
            f"{source.num_classes} ({source.class_names}). Received: data={config.data!r}"
        )
    return source


def model_arguments(config, num_classes, run_dir, resume):
    """The builder arguments and initial weights of the run's model, `(kwargs, weights)`.

    A resumed run takes its own model entry (record included) from its
    config.json, and no initial weights: they come from the checkpoint.

    Example:
    >>> kwargs, weights = model_arguments(config, 10, run_dir, resume=False)  # doctest: +SKIP
    """
    weights = None if config.weights in (None, "", "none", "None") else config.weights
    kwargs = dict(config.model_kwargs)
    kwargs.update(classes=num_classes, input_shape=[config.image_size, config.image_size, 3])
    # The recipe's eval crop, and its interpolation if it names one (else
    # the weights'); mean and std stay the weights' own.
    overrides = {"crop_pct": config.crop_pct, **(kwargs.get("preprocessing") or {})}
    if config.interpolation:
        overrides.setdefault("interpolation", config.interpolation)
    kwargs["preprocessing"] = overrides
    from se_keras.applications import get_builder
    from se_keras.applications import resnet

    arch = getattr(get_builder(config.model), "arch", None)
    if arch in resnet.ARCHITECTURES:
        # The layout follows the initial weights (legacy_in1k builds the
        # Caffe layout); recorded, so that the run's model is rebuilt in it.
        layout = resnet.layout_argument(kwargs.get("layout"), kwargs.pop("variant", None))
        kwargs["layout"] = resnet.resolve_layout(arch, weights, layout)
    if resume:
        # The initial weights (a file that may be gone, a download) are not
        # loaded again.
        saved = run_files.read_config(run_dir, required=("model",))["model"]
        kwargs, weights = dict(saved.get("kwargs", {})), None
    return kwargs, weights


def synchronize_batchnorm(model):
    """Computes BatchNorm batch statistics over all replicas (Keras' `synchronized`).

    Example:
    >>> synchronize_batchnorm(model)  # doctest: +SKIP
    """
    import keras

    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        stack.extend(getattr(layer, "layers", []))


def make_schedule(config, steps_per_epoch, total_steps, say):
    """The run's `TrainingSchedule`; a warmup as long as the run is shortened, with a note.

    Example:
    >>> schedule = make_schedule(config, 100, 1200, print)  # doctest: +SKIP
    """
    from se_keras.training.schedules import TrainingSchedule

    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if warmup and warmup >= total_steps:
        # `--epochs 1` with the recipe's 1-epoch warmup: the rate would
        # never leave the warmup ramp. Shrink it to half the run.
        shrunk = total_steps // 2
        say(f"Note: the warmup of {config.warmup_epochs:g} epoch(s) ({warmup} steps) "
            f"does not fit the {total_steps}-step run; shortened to {shrunk} steps.")
        warmup = shrunk
    return TrainingSchedule(
        config.scaled_lr, total_steps, warmup, config.schedule,
        config.lr_boundaries, config.lr_decay,
    )


def make_run_optimizer(config, schedule, model, loss_scaling):
    """The run's optimizer, loss-scaled if asked, built on the model's trainable variables.

    Example:
    >>> optimizer = make_run_optimizer(config, schedule, model, False)  # doctest: +SKIP
    """
    import keras

    from se_keras.training.optimizers import make_optimizer

    optimizer = make_optimizer(
        config.optimizer, schedule, momentum=config.momentum,
        nesterov=config.nesterov, weight_decay=config.weight_decay,
        weight_decay_mode=config.resolved_weight_decay_mode,
        decay_bn_and_bias=config.decay_bn_and_bias, model=model,
    )
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Built now, so that a restore fills the slots instead of deferring.
    optimizer.build(model.trainable_variables)
    return optimizer


def make_augmentation(config):
    """The run's training `Augmentation`.

    Example:
    >>> make_augmentation(resolve_config("cifar")).padding  # doctest: +SKIP
    4
    """
    from se_keras.data import Augmentation

    return Augmentation(
        crop=config.crop, area_min=config.area_min, padding=config.padding,
        flip=config.flip, randaugment=config.randaugment,
        randaugment_ops=config.randaugment_ops,
        randaugment_magnitude=config.randaugment_magnitude,
        mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
    )


def make_datasets(strategy, source, config, preprocessing, augmentation, start_step,
                  steps_per_epoch):
    """The distributed inputs: `(train iterator, eval dataset or None)`.

    The training input starts at `start_step`, so a resumed run sees the
    batches an unbroken one would.

    Example:
    >>> train_iterator, eval_data = make_datasets(strategy, source, config, record,
    ...                                           augmentation, 0, 100)  # doctest: +SKIP
    """
    from se_keras.data import eval_dataset
    from se_keras.data import train_dataset

    def train_fn(input_context):
        return train_dataset(
            source.train, num_classes=source.num_classes,
            global_batch_size=config.batch_size, preprocessing=preprocessing,
            augmentation=augmentation, input_context=input_context, seed=config.seed,
            start_step=start_step, steps_per_epoch=steps_per_epoch,
            deterministic=config.deterministic or config.data_deterministic,
        )

    train_iterator = iter(strategy.distribute_datasets_from_function(train_fn))
    eval_data = None
    if source.validation is not None:
        def eval_fn(input_context):
            return eval_dataset(
                source.validation, num_classes=source.num_classes,
                global_batch_size=config.batch_size, preprocessing=preprocessing,
                input_context=input_context, pad=True, cache=config.cache,
            )

        eval_data = strategy.distribute_datasets_from_function(eval_fn)
    return train_iterator, eval_data
