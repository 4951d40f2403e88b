"""Pure-functional convolution ops: arrays in, arrays out; no Flax, no state, no I/O.

Layout everywhere: channels last, inputs ``(*batch, *spatial, C)``, kernels
``(*kernel_spatial, C_in // groups, C_out)`` (Flax's HWIO); the spatial rank comes from the kernel.
"""

from jaxconv.functional._deprecated import data_parallel, forward_mode_ad, in_forward_mode_ad
from jaxconv.functional.conv import conv, pointwise
from jaxconv.functional.depthwise import depthwise_conv, separable_conv
from jaxconv.functional.formulations import CONV, Compilation, ConvSpec, Formulation
from jaxconv.functional.norm import batch_norm
from jaxconv.functional.plan import plan
from jaxconv.functional.policy import Plan
from jaxconv.functional.pool import avg_pool, global_avg_pool, global_max_pool, max_pool
from jaxconv.functional.shuffle import channel_shuffle
from jaxconv.functional.transpose import TRANSPOSE, conv_transpose

__all__ = [
    "CONV", "TRANSPOSE", "Compilation", "ConvSpec", "Formulation", "Plan", "avg_pool",
    "batch_norm", "channel_shuffle", "conv", "conv_transpose", "data_parallel",
    "depthwise_conv", "forward_mode_ad", "global_avg_pool", "global_max_pool",
    "in_forward_mode_ad", "max_pool", "plan", "pointwise", "separable_conv",
]
