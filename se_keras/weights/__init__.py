"""Pretrained weights: the checkpoint registry, verified downloads, the timm converter.

Example:
>>> from se_keras import weights
>>> [c.name for c in weights.registry.checkpoints_for("seresnet50")][0]
'seresnet50.ra2_in1k'
"""

from se_keras.weights import registry
from se_keras.weights.loading import from_timm
from se_keras.weights.loading import load_weights

__all__ = ["from_timm", "load_weights", "registry"]
