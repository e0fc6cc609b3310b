"""Keras layers of the Squeeze-and-Excitation family.

`ProjectedSqueezeExcitation` is the inference form that
`se_keras.export.optimize_for_inference` puts in bottlenecks; it is
imported here so that a `.keras` file of an optimized model loads after
`import se_keras.layers` (or any builder).
"""

from se_keras.layers.projected_squeeze_excitation import ProjectedSqueezeExcitation
from se_keras.layers.spatial_squeeze_excitation import ChannelSpatialSqueezeExcitation
from se_keras.layers.spatial_squeeze_excitation import SpatialSqueezeExcitation
from se_keras.layers.squeeze_excitation import SqueezeExcitation
from se_keras.layers.squeeze_excitation import make_divisible
from se_keras.layers.squeeze_excitation import reduced_width

__all__ = [
    "ChannelSpatialSqueezeExcitation",
    "ProjectedSqueezeExcitation",
    "SpatialSqueezeExcitation",
    "SqueezeExcitation",
    "make_divisible",
    "reduced_width",
]
