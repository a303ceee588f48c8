"""The AOT runtime: an int8 .tflite compiled ahead of time to plain C99, bit-exact with TFLM's reference kernels."""
