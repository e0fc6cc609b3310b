"""Model utilities: FLOPs and parameter counts."""

from se_keras.utils.flops import count_flops
from se_keras.utils.flops import count_params
from se_keras.utils.flops import flops_by_layer

__all__ = ["count_flops", "count_params", "flops_by_layer"]
