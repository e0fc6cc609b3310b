"""se_keras: Squeeze-and-Excitation networks for Keras 3 on TensorFlow.

Submodules are imported on first use, so `se-keras --help` and
`import se_keras` stay fast until a model or layer is actually needed.

Example:
>>> import se_keras
>>> layer = se_keras.SqueezeExcitation(ratio=16)
"""

import importlib

from se_keras.version import __version__

_SUBMODULES = (
    "applications",
    "data",
    "export",
    "inspect",
    "layers",
    "training",
    "utils",
    "weights",
)
_LAYER_NAMES = (
    "SqueezeExcitation",
    "SpatialSqueezeExcitation",
    "ChannelSpatialSqueezeExcitation",
)

__all__ = ["__version__", *_SUBMODULES, *_LAYER_NAMES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"se_keras.{name}")
    if name in _LAYER_NAMES:
        return getattr(importlib.import_module("se_keras.layers"), name)
    raise AttributeError(f"module 'se_keras' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
