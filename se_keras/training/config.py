"""Training configuration as data: the `TrainConfig` dataclass and `resolve_config`.

`TrainConfig` holds every option of a run. A recipe (`recipes`) is a named
set of overrides of its defaults, or a JSON file of field values;
`resolve_config(recipe, overrides)` applies the recipe, then the
overrides, and validates the result. The command line exposes every field
as `--field-name` (`command_line.add_arguments`), so any recipe value can
be changed without editing code; the resolved config is saved in the run's
config.json.

This module imports neither TensorFlow nor Keras, so `se-keras --help`
stays instant.

Example:
>>> config = resolve_config("cifar", {"epochs": 3})
>>> config.epochs, config.schedule, config.image_size
(3, 'step', 32)
"""

import dataclasses
import json
import typing

from se_keras._constants import INTERPOLATIONS
from se_keras.training.recipes import load_recipe
from se_keras.training.recipes import RECIPES  # noqa: F401 - re-exported

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("step", "cosine", "constant")
OPTIMIZERS = ("sgd", "adamw")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run (defaults: the no-argument demo on digits).

    Model:
        model: builder name in `se_keras.applications.MODELS`.
        model_kwargs: extra builder arguments, e.g. {"se": False}.
        weights: initial weights (None, "imagenet", a tag or a file); the
            head must then have the checkpoint's classes.
        image_size: input height and width.
        crop_pct: eval center-crop fraction.
        interpolation: resize filter (PIL's, as timm names them); None
            takes the initial weights' (bilinear without weights).
        sync_batchnorm: BatchNorm statistics over the global batch (all
            replicas) instead of each replica's share.

    Data:
        data: source spec: "digits", "folder:PATH", "tfrecord:PATH",
            "tfds:NAME" (see `se_keras.data.sources`).
        data_dir: tensorflow-datasets data directory.
        val_split: validation split ("auto", "none", count or fraction per
            class, a folder, a glob pattern or a tfds split).
        num_classes, label_offset: for TFRecords without metadata.
        skip_bad_files, verify_images: image folder checks.
        cache: hold image files in memory, and decoded eval images after
            the first evaluation.
        shuffle_buffer: record sources' shuffle buffer.

    Augmentation:
        crop: "inception", "pad" or "resize".
        area_min: smallest Inception crop area.
        padding: pad-and-crop padding.
        flip: random horizontal flips.
        randaugment, randaugment_ops, randaugment_magnitude: RandAugment.
        mixup_alpha, cutmix_alpha: MixUp and CutMix (0 = off).
        label_smoothing: in the loss.

    Optimization:
        batch_size: global batch size (all replicas).
        epochs: passes over the training split.
        steps_per_epoch: default: training examples // batch_size.
        max_steps: stop after this many steps (the schedule still spans
            `epochs`).
        time_budget_min: wall-clock budget of the training loop; the
            schedule is fitted to the steps that the budget allows.
        optimizer: "sgd" (momentum) or "adamw".
        lr: learning rate at `lr_batch_size`; scaled linearly with
            `batch_size` (Goyal et al. 2017).
        lr_batch_size: the batch size that `lr` is given for.
        momentum, nesterov: SGD momentum.
        weight_decay: the weight decay coefficient; what it means depends
            on `weight_decay_mode`.
        weight_decay_mode: None (the optimizer's own: coupled for SGD,
            decoupled for AdamW), or "coupled" (SGD only): L2, `weight_decay * w`
            added to the gradient before momentum, as in the paper's Caffe
            recipe, PyTorch and timm; "decoupled": `w -= lr * weight_decay
            * w` outside the momentum (Keras' `weight_decay`; AdamW always
            decouples). With momentum 0.9 coupled decay acts about 10x
            stronger than decoupled decay of the same value.
        decay_bn_and_bias: also decay BatchNorm parameters and biases
            (every variable of rank <= 1); false is timm's default
            (`filter_bias_and_bn`) and "Bag of Tricks"' no-bias-decay.
        schedule: "step", "cosine" or "constant".
        lr_boundaries: for "step", fractions of training where the rate
            is multiplied by `lr_decay`.
        lr_decay: the step factor.
        warmup_epochs: linear warmup.

    Runtime:
        strategy: "auto", "default", "mirrored", "multi_worker" or "tpu".
        tpu: TPU name or address (for "tpu"; "local" for a TPU VM).
        precision: "auto" (float32 on CPU, mixed_float16 on GPU,
            mixed_bfloat16 on TPU), "float32", "mixed" (the accelerator's
            mixed policy; bfloat16 on CPU), "mixed_float16",
            "mixed_bfloat16".
        jit_compile: compile the forward and backward pass with XLA.
        cpu_devices: split the CPU into this many logical devices (to try
            "mirrored" on a laptop); 0 leaves it alone.
        steps_per_loop: training steps per call into the compiled loop
            (larger hides host overhead on TPUs).
        seed: fixes initialization, data order and augmentation.
        deterministic: TensorFlow op determinism (bit-reproducible runs;
            slower); implies `data_deterministic`.
        data_deterministic: tf.data keeps the element order of its
            parallel maps (the same batches on every run and after a
            resume); off lets fast elements overtake slow ones.

    Output:
        name: run name (default: model-data-time).
        run_dir: run directory (default: output_root/name).
        output_root: parent folder of run directories.
        checkpoint_every_steps: also checkpoint every N steps (0: epochs only).
        keep_checkpoints: how many checkpoints to keep.
        eval_every_epochs: validate every N epochs (0: only at the end).
        log_every_steps: TensorBoard logging interval.
        export: write a SavedModel (`model.export`) at the end.
        verbose: 0 quiet, 1 progress bar, 2 one line per epoch.
        recipe: the recipe this config came from (informational).
    """

    # Model
    model: str = "SEResNet20"
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    weights: typing.Optional[str] = None
    image_size: int = 16
    crop_pct: float = 1.0
    interpolation: typing.Optional[str] = None
    sync_batchnorm: bool = False
    # Data
    data: str = "digits"
    data_dir: typing.Optional[str] = None
    val_split: str = "auto"
    num_classes: typing.Optional[int] = None
    label_offset: typing.Optional[int] = None
    skip_bad_files: bool = False
    verify_images: bool = False
    cache: bool = False
    shuffle_buffer: int = 10_000
    # Augmentation
    crop: str = "pad"
    area_min: float = 0.08
    padding: int = 2
    flip: bool = False
    randaugment: bool = False
    randaugment_ops: int = 2
    randaugment_magnitude: float = 0.5
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    label_smoothing: float = 0.1
    # Optimization
    batch_size: int = 64
    epochs: int = 12
    steps_per_epoch: typing.Optional[int] = None
    max_steps: typing.Optional[int] = None
    time_budget_min: typing.Optional[float] = None
    optimizer: str = "sgd"
    lr: float = 0.1
    lr_batch_size: int = 64
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    weight_decay_mode: typing.Optional[str] = None
    decay_bn_and_bias: bool = True
    schedule: str = "cosine"
    lr_boundaries: list = dataclasses.field(default_factory=lambda: [0.3, 0.6, 0.9])
    lr_decay: float = 0.1
    warmup_epochs: float = 1.0
    # Runtime
    strategy: str = "auto"
    tpu: typing.Optional[str] = None
    precision: str = "auto"
    jit_compile: bool = False
    cpu_devices: int = 0
    steps_per_loop: int = 1
    seed: int = 0
    deterministic: bool = False
    data_deterministic: bool = True
    # Output
    name: typing.Optional[str] = None
    run_dir: typing.Optional[str] = None
    output_root: str = "runs"
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 3
    eval_every_epochs: int = 1
    log_every_steps: int = 10
    export: bool = True
    verbose: int = 1
    recipe: str = "default"

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def resolved_weight_decay_mode(self):
        """`weight_decay_mode`, or the optimizer's own: coupled (L2) for SGD, decoupled for AdamW."""
        if self.weight_decay_mode:
            return self.weight_decay_mode
        return "decoupled" if self.optimizer == "adamw" else "coupled"

    @property
    def scaled_lr(self):
        """`lr` scaled linearly from `lr_batch_size` to `batch_size`."""
        return self.lr * self.batch_size / self.lr_batch_size

    def validate(self):
        """Checks the options' values; raises ValueError naming the bad one."""
        choices = {"strategy": STRATEGIES, "precision": PRECISIONS, "schedule": SCHEDULES,
                   "optimizer": OPTIMIZERS, "crop": ("inception", "pad", "resize"),
                   "interpolation": (None, *INTERPOLATIONS),
                   "weight_decay_mode": (None, *WEIGHT_DECAY_MODES)}
        for field, allowed in choices.items():
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(
                    f"`{field}` must be one of {', '.join(map(repr, allowed))}. "
                    f"Received: {field}={value!r}"
                )
        positive = ("batch_size", "epochs", "image_size", "lr_batch_size", "keep_checkpoints",
                    "steps_per_loop", "log_every_steps")
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"`{field}` must be a positive integer. Received: {field}={value!r}"
                )
        for field in ("steps_per_epoch", "max_steps"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"`{field}` must be a positive integer or None. Received: {field}={value!r}"
                )
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ValueError(
                f"`time_budget_min` must be positive. Received: time_budget_min={self.time_budget_min}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1). Received: label_smoothing={self.label_smoothing}"
            )
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={self.crop_pct}")
        if self.lr <= 0:
            raise ValueError(f"`lr` must be positive. Received: lr={self.lr}")
        if sorted(self.lr_boundaries) != list(self.lr_boundaries) or any(
            not 0.0 < b < 1.0 for b in self.lr_boundaries
        ):
            raise ValueError(
                "`lr_boundaries` must be increasing fractions of training in (0, 1). "
                f"Received: lr_boundaries={self.lr_boundaries}"
            )
        # A warmup as long as the run or longer is shortened by the trainer
        # (with a note), so that `--epochs 1` works with any recipe.
        if self.warmup_epochs < 0:
            raise ValueError(
                f"`warmup_epochs` must be >= 0. Received: warmup_epochs={self.warmup_epochs}"
            )
        if self.weight_decay < 0:
            raise ValueError(
                f"`weight_decay` must be >= 0. Received: weight_decay={self.weight_decay}"
            )
        if self.optimizer == "adamw" and self.weight_decay_mode == "coupled" and \
                self.weight_decay:
            raise ValueError(
                "AdamW decays decoupled by definition; use weight_decay_mode='decoupled' "
                "(--weight-decay-mode decoupled) with it. "
                f"Received: weight_decay_mode={self.weight_decay_mode!r}"
            )
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(
                f"`model_kwargs` must be a dict. Received: model_kwargs={self.model_kwargs!r}"
            )
        return self


def field_types():
    """{field name: the type that a command-line string converts to}."""
    hints = typing.get_type_hints(TrainConfig)
    types = {}
    for field in dataclasses.fields(TrainConfig):
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        types[field.name] = args[0] if typing.get_origin(hint) is typing.Union else hint
    return types


def parse_value(field, text):
    """Converts a command-line string to the field's type ("none" -> None).

    Example:
    >>> parse_value("model_kwargs", "se=false,se_ratio=8")
    {'se': False, 'se_ratio': 8}
    >>> parse_value("lr_boundaries", "0.5,0.75")
    [0.5, 0.75]
    """
    kind = field_types()[field]
    if not isinstance(text, str):
        return text
    if text.lower() in ("none", "null") and kind is not str:
        return None
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"`{field}` takes true or false. Received: {field}={text!r}")
    flag = "--" + field.replace("_", "-")
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is list:
            text = text.strip()
            return json.loads(text) if text.startswith("[") else [
                float(v) for v in text.split(",") if v.strip()
            ]
    except ValueError as error:
        wanted = {int: "an integer", float: "a number"}.get(kind, "a comma-separated list "
                                                             "of numbers")
        raise ValueError(
            f"`{field}` ({flag}) takes {wanted}. Received: {field}={text!r}"
        ) from error
    if kind is dict:
        text = text.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"`{field}` ({flag}) takes key=value pairs or a JSON object ({error}). "
                    f"Received: {field}={text!r}"
                ) from error
        result = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"`{field}` takes key=value pairs separated by commas or a JSON object. "
                    f"Received: {field}={text!r}"
                )
            try:
                result[key.strip()] = json.loads(value.strip().lower()
                                                 if value.strip().lower() in ("true", "false",
                                                                              "null")
                                                 else value.strip())
            except json.JSONDecodeError:
                result[key.strip()] = value.strip()
        return result
    return text


def resolve_config(recipe="default", overrides=None, base=None):
    """Builds a validated `TrainConfig`: defaults (or `base`), then the recipe, then overrides.

    Args:
        recipe: a name in `RECIPES` or a JSON file path; ignored when
            `base` is given.
        overrides: {field: value}; string values are parsed as on the
            command line.
        base: a config dict to start from (a resumed run's config.json).

    Returns:
        A `TrainConfig`.

    Example:
    >>> resolve_config("paper").scaled_lr
    0.6
    >>> resolve_config("paper", {"batch_size": 256}).scaled_lr
    0.15
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    if base is not None:
        values.update({k: v for k, v in base.items() if k in known})
    else:
        values.update(load_recipe(recipe))
        values["recipe"] = str(recipe)
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ValueError(
                f"Unknown training option; known options: {', '.join(sorted(known))}. "
                f"Received: {key}={value!r}"
            )
        values[key] = parse_value(key, value) if isinstance(value, str) else value
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"Unknown training options in the recipe. Received: {sorted(unknown)}")
    return TrainConfig(**values).validate()
