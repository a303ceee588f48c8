"""Ops, one place each: which runtime runs which op (`registry`), the fixed-point arithmetic both
emitters share (`fixedpoint`), the generation-time preparation of an op that the AOT C emitter and
the viper emitter both render (`conv`: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED), and the C
parameter structs' one spec (`cstructs`, rendered into firmware/aot/te_params.h).
"""
