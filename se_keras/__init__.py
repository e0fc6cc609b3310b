"""se_keras: Squeeze-and-Excitation networks for Keras 3 on TensorFlow.

Submodules are imported on first use, so `se-keras --help` and
`import se_keras` stay fast until a model or layer is actually needed.

Example:
>>> import se_keras
>>> layer = se_keras.SqueezeExcitation(ratio=16)
>>> se_keras.get_preprocessing(se_keras.applications.SEResNet20(weights=None)).size
32
"""

import importlib
import warnings

from se_keras.version import __version__

_SUBMODULES = (
    "applications",
    "data",
    "explain",
    "export",
    "excitations",
    "layers",
    "preprocessing",
    "training",
    "utils",
    "weights",
)
_LAYER_NAMES = (
    "SqueezeExcitation",
    "SpatialSqueezeExcitation",
    "ChannelSpatialSqueezeExcitation",
)
# The preprocessing record (se_keras.preprocessing), what every model carries.
_PREPROCESSING_NAMES = (
    "Preprocessing",
    "ImagePreprocessing",
    "get_preprocessing",
    "attach_preprocessing",
)

__all__ = ["__version__", *_SUBMODULES, *_LAYER_NAMES, *_PREPROCESSING_NAMES]


def __getattr__(name):
    if name == "inspect":
        # Renamed: `se_keras/inspect.py` shadowed the standard library's inspect.
        warnings.warn(
            "se_keras.inspect is deprecated and will be removed in 0.2; use se_keras.excitations.",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("se_keras.excitations")
    if name in _SUBMODULES:
        return importlib.import_module(f"se_keras.{name}")
    if name in _LAYER_NAMES:
        return getattr(importlib.import_module("se_keras.layers"), name)
    if name in _PREPROCESSING_NAMES:
        return getattr(importlib.import_module("se_keras.preprocessing"), name)
    raise AttributeError(f"module 'se_keras' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
