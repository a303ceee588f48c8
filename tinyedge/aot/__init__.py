"""The AOT runtime: an int8 .tflite compiled ahead of time to plain C99, bit-exact with TFLM's reference kernels.

- `compiler.compile_model(model)`: the whole model as one C function over one static arena (te_model.c/.h).
- `ops`: every op's lowering, from its op module of tinyedge/ops/ rendered by `opdata` (SVDF and
  UNIDIRECTIONAL_SEQUENCE_LSTM keep their state across inferences), with its int16 (`int16`) and int32
  variants; `lowerings()` and `check_supported(model)`, which read the op registry (tinyedge.ops.registry).
- `opdata`: the C rendering of the OpData an op module's prepare step returns (`convolutions`: CONV_2D's,
  DEPTHWISE_CONV_2D's and FULLY_CONNECTED's, on te_kernels.c and te_dsp.c).
- `planner.plan_memory(buffers)`: the arena plan from tensor lifetimes.
- `quant`: TFLM's multiplier, activation-range and padding arithmetic, done at generation time.
- `lowering`: the contract between the compiler and the per-op lowerings (`Lowered`, `Table`, `require`);
  parameter structs are written with designated initializers from tinyedge.ops.cstructs, the one spec
  of firmware/aot/te_params.h.
The kernels themselves live in firmware/aot/ (te_kernels.c, te_nonlinear.c, te_recurrent.c, te_elementwise.c,
and te_dsp.c for cores with the Arm DSP extension), each taking its output first and its parameters as typed
structs. GELU, RELU_N1_TO_1 and int8 EXP reproduce TFLite's kernels (tflite-micro has no int8 one).
"""

# The tflite-micro commit whose reference-kernel arithmetic the AOT runtime reproduces bit for bit:
# the host reference (PyPI tflite_micro 0.dev20261023182759-g8f6596d) its tests and fuzzers compare
# it with. Reports name it as the board's TFLM when the runtime is aot.
TFLM_COMMIT = "8f6596d"
