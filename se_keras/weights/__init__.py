"""Pretrained weights: the checkpoint registry, verified downloads, the timm converter.

This package never imports a model builder: builders build a model in the
checkpoint's layout and call `load_weights` on it. Building a model from a
timm name is `se_keras.applications.from_timm`, one layer up.

Example:
>>> from se_keras import weights
>>> [c.name for c in weights.registry.checkpoints_for("seresnet50")][0]
'seresnet50.ra2_in1k'
"""

import importlib
import warnings

from se_keras.weights import registry
from se_keras.weights.loading import load_weights

__all__ = ["load_weights", "registry"]

# Moved up to se_keras.applications.timm_names (they build models); kept
# here for one release. The import is deferred to the call, so that this
# package still never loads a builder on its own.
_MOVED = {"from_timm": "se_keras.applications.timm_names",
          "parse_timm_name": "se_keras.applications.timm_names"}


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"se_keras.weights.{name} is deprecated and will be removed in 0.2; "
            f"use se_keras.applications.{name}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'se_keras.weights' has no attribute {name!r}")
