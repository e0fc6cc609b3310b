"""The preprocessing record: how a model must be fed, carried by the model itself.

(Over 450 lines on purpose: one concept, the record, in the three forms it
takes (the dataclass, the layer that carries it in a model, the sidecar
beside a weights file) and its one reader; apart, each would import the
others.)

A model's weights give the published answer only for inputs preprocessed
the way they were trained and evaluated: the eval resize (size, crop
fraction, interpolation) and the normalization (mean, std). timm keeps this
as `pretrained_cfg` on the model and keras-hub serializes its preprocessor
with the task; here every model that se_keras builds starts with an
`ImagePreprocessing` layer named "preprocessing" whose config *is* the
record, a `Preprocessing`:

    size, crop_pct, interpolation   the eval transform (timm's): resize the
                                    short side to floor(size / crop_pct),
                                    center-crop size x size
    mean, std                       normalization of RGB pixels scaled to [0, 1]
    normalize_in_model              True: the layer normalizes, so the model
                                    takes raw RGB pixels in [0, 255];
                                    False: the layer passes its input through
                                    and the caller normalizes
    weights                         where the weights came from: a registry
                                    checkpoint ("seresnet50.ra2_in1k"), a
                                    file, a training run's checkpoint, or
                                    None (random initialization)

Because it is a layer's config, the record is saved and loaded with the
model: `.keras` files (`safe_mode=True`), a training run (its config.json
rebuilds the model with the same record), and the serving export (its
metadata and its graph). `get_preprocessing(model)` is the one function
that reads it; evaluation, prediction, the export, the trainer, `inspect`
and the fine-tuning example all call it and derive nothing themselves.

Example:
>>> from se_keras.applications import SEResNet20
>>> get_preprocessing(SEResNet20(weights=None)).size
32
"""

import dataclasses
import json
import math
import pathlib
import typing

import keras
import numpy as np
from keras import ops

from se_keras._constants import IMAGENET_MEAN
from se_keras._constants import IMAGENET_STD
from se_keras._constants import INTERPOLATIONS
from se_keras._validation import check_choice

LAYER_NAME = "preprocessing"
# Beside a weights file `x.weights.h5`, `x.preprocessing.json` holds its record.
SIDECAR_SUFFIX = ".preprocessing.json"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a model must be fed; see the module docstring.

    Attributes:
        size: the eval crop's height and width (the model's input size).
        crop_pct: fraction of the resized short side kept by the center
            crop (timm's `crop_pct`; 1.0 resizes the short side to `size`).
        interpolation: the resize filter, one of `INTERPOLATIONS`.
        mean, std: per-channel RGB normalization of pixels in [0, 1].
        normalize_in_model: the model normalizes itself and takes raw RGB
            pixels in [0, 255].
        weights: the weights' origin (registry name, file, run checkpoint),
            or None.

    Example:
    >>> Preprocessing(size=32, crop_pct=1.0).replace(interpolation="bicubic").interpolation
    'bicubic'
    """

    size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    normalize_in_model: bool = False
    weights: typing.Optional[str] = None

    def __post_init__(self):
        size = self.size
        if isinstance(size, (tuple, list)) and len(size) == 2 and size[0] == size[1]:
            size = size[0]  # (height, width) of a square crop
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(
                "`size` must be a positive integer (the square crop's side). "
                f"Received: size={self.size!r}"
            )
        object.__setattr__(self, "size", int(size))
        crop_pct = self.crop_pct
        if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not (
            0.0 < crop_pct <= 1.0
        ):
            raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={crop_pct!r}")
        object.__setattr__(self, "crop_pct", float(crop_pct))
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        for key in ("mean", "std"):
            value = getattr(self, key)
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                value = ()
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ValueError(
                    f"`{key}` needs one finite value per RGB channel. "
                    f"Received: {key}={getattr(self, key)!r}"
                )
            object.__setattr__(self, key, value)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"`std` must be positive. Received: std={self.std!r}")
        object.__setattr__(self, "normalize_in_model", bool(self.normalize_in_model))
        if self.weights is not None:
            object.__setattr__(self, "weights", str(self.weights))

    @property
    def resize_size(self):
        """The short side before the center crop: `floor(size / crop_pct)` (timm).

        Example:
        >>> Preprocessing(size=224, crop_pct=0.875).resize_size
        256
        """
        return int(math.floor(self.size / self.crop_pct))

    def replace(self, **changes):
        """A copy with some fields changed (and validated).

        Example:
        >>> Preprocessing().replace(size=288).size
        288
        """
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"A preprocessing record has the fields {', '.join(FIELDS)}. "
                f"Received: {', '.join(f'{k}={changes[k]!r}' for k in unknown)}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """A JSON-ready dict (lists for mean and std).

        Example:
        >>> Preprocessing(size=32).to_dict()["size"]
        32
        """
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data):
        """The record of a dict written by `to_dict`; missing keys take the defaults.

        Runs and exports written before the record existed carried only
        size, crop_pct, mean, std and interpolation; they read back with
        `normalize_in_model=False` and no weights origin, which is what they
        meant.

        Example:
        >>> Preprocessing.from_dict({"size": 32, "crop_pct": 1.0}).crop_pct
        1.0
        """
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ValueError(
                f"A preprocessing record must be a dict. Received: preprocessing={data!r}"
            )
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"A preprocessing record has the fields {', '.join(FIELDS)}. "
                f"Received: unknown keys {unknown} in {data!r}"
            )
        return cls(**data)


FIELDS = tuple(f.name for f in dataclasses.fields(Preprocessing))


def normalize_pixels(x, mean, std):
    """`(x / 255 - mean) / std`: timm's `ToTensor` + `Normalize`, the one definition of it.

    The model's `ImagePreprocessing` layer, `preprocess_input` and the
    tf.data pipeline all apply this, in float32 and in this order, so they
    agree with each other and with timm's tensors to the bit.

    Args:
        x: RGB pixels in [0, 255], a float array or tensor of any backend.
        mean, std: RGB mean and std of [0, 1] pixels, of `x`'s array type
            and broadcastable over it (`normalization_constants`).

    Returns:
        The normalized pixels.

    Example:
    >>> import numpy as np
    >>> mean, std = normalization_constants((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    >>> normalize_pixels(np.full((2, 3), 255.0, "float32"), mean, std)[0]
    array([1., 1., 1.], dtype=float32)
    """
    return (x / 255.0 - mean) / std


def normalization_constants(mean, std, rank=1, channel_axis=-1):
    """`mean` and `std` as float32 arrays that broadcast over `rank`-D images.

    Example:
    >>> normalization_constants((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), rank=4, channel_axis=1)[0].shape
    (1, 3, 1, 1)
    """
    shape = [1] * rank
    shape[channel_axis] = 3
    return (np.reshape(np.asarray(mean, "float32"), shape),
            np.reshape(np.asarray(std, "float32"), shape))


def overrides_of(preprocessing):
    """The fields a `preprocessing=` argument sets: from None, a dict or a record.

    None values in a dict are left out (an option that was not given).

    Example:
    >>> overrides_of({"crop_pct": 1.0, "interpolation": None})
    {'crop_pct': 1.0}
    """
    if preprocessing is None:
        return {}
    if isinstance(preprocessing, Preprocessing):
        return preprocessing.to_dict()
    if not isinstance(preprocessing, dict):
        raise ValueError(
            "`preprocessing` must be None, a se_keras.Preprocessing or a dict of its "
            f"fields. Received: preprocessing={preprocessing!r}"
        )
    return {k: v for k, v in preprocessing.items() if v is not None}


def check_size(record, model_size):
    """Raises unless the record's size is the model's static input size (None: any)."""
    if model_size is not None and record.size != model_size:
        raise ValueError(
            f"The preprocessing size must equal the model's input size {model_size}. "
            f"Received: size={record.size}"
        )


@keras.saving.register_keras_serializable(package="se_keras")
class ImagePreprocessing(keras.layers.Layer):
    """The model's first layer: carries its `Preprocessing` record, normalizes if asked.

    With `normalize_in_model=False` (the default) it returns its input
    unchanged: the record only documents what the caller must do. With
    `normalize_in_model=True` it computes `(x / 255 - mean) / std`, so the
    model takes raw RGB pixels in [0, 255] (what a client of a served model
    has).

    Args:
        preprocessing: a `Preprocessing` or its dict.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = ImagePreprocessing(Preprocessing(size=2, normalize_in_model=True))
    >>> layer(np.full((1, 2, 2, 3), 255.0)).shape
    (1, 2, 2, 3)
    """

    def __init__(self, preprocessing=None, data_format=None, **kwargs):
        kwargs.setdefault("name", LAYER_NAME)
        super().__init__(**kwargs)
        self.preprocessing = Preprocessing.from_dict(
            preprocessing if preprocessing is not None else {}
        )
        self.data_format = data_format or keras.config.image_data_format()
        check_choice("data_format", self.data_format, ("channels_last", "channels_first"))

    def call(self, inputs):
        record = self.preprocessing
        if not record.normalize_in_model:
            return inputs
        mean, std = normalization_constants(
            record.mean, record.std, len(inputs.shape),
            -1 if self.data_format == "channels_last" else 1,
        )
        return normalize_pixels(
            ops.cast(inputs, self.compute_dtype),
            ops.cast(mean, self.compute_dtype),
            ops.cast(std, self.compute_dtype),
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"preprocessing": self.preprocessing.to_dict(),
                       "data_format": self.data_format})
        return config


@keras.saving.register_keras_serializable(package="se_keras", name="Preprocessing")
class LegacyNormalization(ImagePreprocessing):
    """Reads `.keras` files written before the record: their normalization layer.

    Models saved with `include_preprocessing=True` before the record existed
    hold a layer registered as "se_keras>Preprocessing" with the config
    `{mean, std, scale, data_format}` that computed `(x * scale - mean) / std`.
    It loads as a record layer that normalizes, with that mean and std; its
    size is the model's input size when that is static (224 otherwise).

    Example:
    >>> layer = LegacyNormalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> layer.preprocessing.normalize_in_model
    True
    """

    def __init__(self, preprocessing=None, mean=None, std=None, scale=None, data_format=None,
                 **kwargs):
        if preprocessing is None:
            if scale is not None and abs(float(scale) * 255.0 - 1.0) > 1e-9:
                raise ValueError(
                    "Only the 1/255 scale of the old normalization layer maps onto a "
                    f"preprocessing record. Received: scale={scale!r}"
                )
            preprocessing = Preprocessing(
                mean=IMAGENET_MEAN if mean is None else mean,
                std=IMAGENET_STD if std is None else std, normalize_in_model=True)
        super().__init__(preprocessing, data_format=data_format, **kwargs)

    def build(self, input_shape):
        spatial = input_shape[1:3] if self.data_format == "channels_last" else input_shape[2:]
        if len(spatial) == 2 and spatial[0] is not None and spatial[0] == spatial[1]:
            self.preprocessing = self.preprocessing.replace(size=int(spatial[0]))
        super().build(input_shape)


def _record_layers(model):
    """The `ImagePreprocessing` layers of `model` and of the models nested in it."""
    found, stack = [], [model]
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, ImagePreprocessing):
            found.append(layer)
        stack[:0] = list(getattr(layer, "layers", []) or [])
    return found


def get_preprocessing(model):
    """The `Preprocessing` record that `model` carries: the one place that reads it.

    Args:
        model: a Keras model built by `se_keras.applications` (or given a
            record with `attach_preprocessing`), possibly nested in another
            model, or loaded from a `.keras` file.

    Returns:
        The model's `Preprocessing`.

    Raises:
        ValueError: when the model carries no record (a model built by other
            code), naming the model and how to attach one.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> get_preprocessing(SEResNet20(weights=None)).crop_pct
    1.0
    """
    layers = _record_layers(model)
    if not layers:
        raise ValueError(
            "The model carries no preprocessing record (an `ImagePreprocessing` layer), so "
            "how to feed it is unknown. Models from se_keras.applications have one; give "
            "another model one with se_keras.attach_preprocessing(model, "
            "se_keras.Preprocessing(size=..., crop_pct=..., mean=..., std=...)). "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    if len(layers) > 1 and (
        any(layer.preprocessing.normalize_in_model for layer in layers)
        or len({layer.preprocessing.replace(weights=None) for layer in layers}) > 1
    ):
        # Two records that normalize, or that disagree, cannot both be obeyed.
        raise ValueError(
            "The model carries several preprocessing records that cannot all hold: "
            + "; ".join(f"{layer.name}: {layer.preprocessing}" for layer in layers)
            + f". Keep one. Received: model={getattr(model, 'name', model)!r}"
        )
    return layers[0].preprocessing


def set_weights_origin(model, weights):
    """Records where the model's weights now come from (a file, a run checkpoint).

    Only the record's `weights` field changes, which nothing computes with,
    so the model's layers stay as they are (unlike `attach_preprocessing`).

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> model = SEResNet20(weights=None)
    >>> set_weights_origin(model, "runs/x/checkpoints/ckpt-3")
    >>> get_preprocessing(model).weights
    'runs/x/checkpoints/ckpt-3'
    """
    get_preprocessing(model)  # one consistent record, or the error
    for layer in _record_layers(model):
        layer.preprocessing = layer.preprocessing.replace(weights=weights)


def attach_preprocessing(model, preprocessing):
    """A model that computes what `model` does and carries `preprocessing`.

    For a model that already has a record, the copy has the same layers and
    weights with the record replaced; the new record must keep
    `normalize_in_model` (that changes the graph: build the model again).
    Any other model is wrapped: a new input, the `ImagePreprocessing`
    layer, then `model`.

    Args:
        model: a single-input Keras model.
        preprocessing: a `Preprocessing` or its dict.

    Returns:
        A new `keras.Model`.

    Example:
    >>> import keras
    >>> inputs = keras.Input((32, 32, 3))
    >>> plain = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    >>> model = attach_preprocessing(plain, Preprocessing(size=32, crop_pct=1.0))
    >>> get_preprocessing(model).size
    32
    """
    record = Preprocessing.from_dict(preprocessing)
    if len(model.inputs) != 1:
        raise ValueError(
            "Only single-input models take a preprocessing record. "
            f"Received: model.inputs={model.inputs}"
        )
    check_size(record, _static_spatial_size(model))
    nested = [layer for layer in _record_layers(model) if layer not in model.layers]
    if nested:
        raise ValueError(
            f"The model already carries a record inside it ({nested[0].name}: "
            f"{nested[0].preprocessing}); a second one at its input would describe the "
            "preprocessing twice. Attach the record to the inner model instead. "
            f"Received: model={model.name!r}"
        )
    layers = [layer for layer in model.layers if isinstance(layer, ImagePreprocessing)]
    if layers:
        old = layers[0].preprocessing
        if old.normalize_in_model != record.normalize_in_model or (
            old.normalize_in_model and (old.mean, old.std) != (record.mean, record.std)
        ):
            raise ValueError(
                "The model's graph normalizes with its own record's mean and std; a "
                "record that changes normalize_in_model, mean or std needs the model "
                f"built again. Received: preprocessing={record!r}"
            )
        config = model.get_config()
        for layer_config in config["layers"]:
            if layer_config["config"].get("name") == layers[0].name:
                layer_config["config"]["preprocessing"] = record.to_dict()
        copy = model.__class__.from_config(config)
        copy.set_weights(model.get_weights())
        return copy
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="input_layer")
    x = ImagePreprocessing(record, name=LAYER_NAME)(inputs)
    return keras.Model(inputs, model(x), name=model.name)


def _static_spatial_size(model):
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        return None
    channels_first = shape[1] == 3 and shape[-1] != 3
    spatial = shape[2:] if channels_first else shape[1:3]
    return spatial[0] if spatial[0] is not None and spatial[0] == spatial[1] else None


def sidecar_path(weights_path):
    """`x.preprocessing.json` for a weights file `x.weights.h5` (or `x.safetensors`, ...).

    Example:
    >>> str(sidecar_path("out/model.weights.h5"))
    'out/model.preprocessing.json'
    """
    path = pathlib.Path(weights_path)
    name = path.name
    for suffix in (".weights.h5", ".h5", ".safetensors", ".pth", ".pt", ".bin", ".keras"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + SIDECAR_SUFFIX)


def read_sidecar(weights_path):
    """The record saved beside a weights file, or None if there is none.

    Raises:
        ValueError: when the file exists but is not a valid record, naming it.
    """
    path = sidecar_path(weights_path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Preprocessing.from_dict(data)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{path} is not a valid preprocessing record ({error}). "
            f"Received: weights={str(weights_path)!r}"
        ) from error


def write_sidecar(weights_path, preprocessing):
    """Writes the record beside a weights file (atomically); returns its path."""
    from se_keras._files import write_json_atomically

    path = sidecar_path(weights_path)
    write_json_atomically(path, Preprocessing.from_dict(preprocessing).to_dict())
    return path
