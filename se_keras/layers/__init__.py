"""Keras layers of the Squeeze-and-Excitation family."""

from se_keras.layers.squeeze_excitation import ChannelSpatialSqueezeExcitation
from se_keras.layers.squeeze_excitation import SpatialSqueezeExcitation
from se_keras.layers.squeeze_excitation import SqueezeExcitation
from se_keras.layers.squeeze_excitation import make_divisible
from se_keras.layers.squeeze_excitation import reduced_width

__all__ = [
    "ChannelSpatialSqueezeExcitation",
    "SpatialSqueezeExcitation",
    "SqueezeExcitation",
    "make_divisible",
    "reduced_width",
]
