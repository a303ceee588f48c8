"""The variants the viper runtime runs beyond each op's int8 one, as the op registry (tinyedge.ops.registry)
lists them: TFLite's 16x8 ops (the AOT's names for them, tinyedge.aot.int16) and the recurrent ops' int16
states. tinyedge.viper.generator emits exactly these (a test holds the two together)."""

from __future__ import annotations

from tinyedge.aot.int16 import VARIANTS as AOT_INT16_VARIANTS

# Ops whose int16-activation variant the generator emits (its INT16_EMITTERS).
INT16_OPS = ("ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LEAKY_RELU", "MAX_POOL_2D",
             "MUL", "PAD", "PADV2", "STRIDED_SLICE", "SUB", "TRANSPOSE_CONV")
QUANTIZE_PAIRS = ("int16->int8", "int8->int16", "int16->int16", "int8->int32", "int16->int32")

VIPER_VARIANTS: dict[str, tuple[str, ...]] = {
    **{name: (AOT_INT16_VARIANTS.get(name, "int16"),) for name in INT16_OPS},
    "QUANTIZE": QUANTIZE_PAIRS,
    "SVDF": ("int8 (int16 time weights and state)",),
    "SOFTMAX": ("int8->int16",),
}
