"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8 with an int16 cell state), as TFLM's unidirectional_sequence_lstm.cc
and lstm_eval.cc: PrepareGateParametersInteger's rescalings, the gates' biases folded with the input and
hidden offsets, TFLM's sigmoid table (te_recurrent.c's te_lstm_s8; on DSP cores its weights as SMLAD pairs).
Hidden and cell states are variable tensors the compiler keeps in the arena for the whole program."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tinyedge.aot.lowering import unsupported
from tinyedge.aot.quant import checked_log2, quantize_multiplier, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.opdata import LstmData
from tinyedge.ops.support import OpSupport
from tinyedge.reference import tflm_interpreter
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("UNIDIRECTIONAL_SEQUENCE_LSTM", "recurrent",
                      ("int8 (int16 cell state)", "16x8 (int16 activations and cell state, int8 weights)"),
                      dsp="te_lstm_s8 (SMLAD weights)"),)


def _f32(x: float | np.floating) -> np.float32:
    return np.float32(x)


LSTM_INPUT, LSTM_HIDDEN, LSTM_CELL = 0, 18, 19
LSTM_INPUT_WEIGHTS = (1, 2, 3, 4)       # to the input, forget, cell and output gates
LSTM_RECURRENT_WEIGHTS = (5, 6, 7, 8)
LSTM_BIASES = (12, 13, 14, 15)
LSTM_ABSENT = (9, 10, 11, 16, 17, 20, 21, 22, 23)   # peepholes, projection, layer norm
GATE_INPUT_SCALE = np.float32(2.0 ** -12)   # the gates' FC outputs: Q3.12
GATE_OUTPUT_SCALE = 2.0 ** -15              # sigmoid / tanh outputs: Q0.15
ACTIVATION_TANH, ACTIVATION_SIGMOID = 4, 6  # TfLiteFusedActivation


def _gate_fc_multiplier(inp: Tensor, weights: Tensor) -> tuple[int, int]:
    """CreateGateParams: GetQuantizedConvolutionMultipler into an int16 output of scale 2^-12."""
    return quantize_multiplier(float(_f32(inp.scale[0]) * _f32(weights.scale[0])) / float(GATE_INPUT_SCALE))


def _mul_multiplier(scale_1: float, scale_2: float, out_scale: float) -> tuple[int, int]:
    """CreateInterGateMulParams: double(s1) * double(s2) / double(out)."""
    return quantize_multiplier(float(_f32(scale_1)) * float(_f32(scale_2)) / float(_f32(out_scale)))


def lstm_parameters(model: TfliteModel, op: Operator) -> list[int]:
    """te_lstm_s8's params, from UnidirectionalSequenceLstmPrepare (PrepareGateParametersInteger)."""
    t = {i: model.tensors[op.inputs[i]] for i in range(len(op.inputs)) if op.inputs[i] >= 0}
    inp, hidden, cell = t[LSTM_INPUT], t[LSTM_HIDDEN], t[LSTM_CELL]
    time_major = bool(getattr(op.options, "timeMajor", False))
    steps = inp.shape[0] if time_major else inp.shape[1]
    params = [steps, inp.shape[2], hidden.shape[-1], -zero_point(inp), -zero_point(hidden)]
    for gate in range(4):
        params += [*_gate_fc_multiplier(inp, t[LSTM_INPUT_WEIGHTS[gate]]),
                   *_gate_fc_multiplier(hidden, t[LSTM_RECURRENT_WEIGHTS[gate]])]
    cell_scale = float(_f32(cell.scale[0]))
    params += [*_mul_multiplier(GATE_OUTPUT_SCALE, cell_scale, cell_scale),
               *_mul_multiplier(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, cell_scale),
               *_mul_multiplier(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, float(_f32(hidden.scale[0]))),
               zero_point(hidden)]
    cell_clip = float(np.float32(getattr(op.options, "cellClip", 0.0)))
    quantized_clip = int(min(max(cell_clip / cell_scale, -32768.0), 32767.0)) if cell_clip > 0 else 0
    tanh_shift = 15 + checked_log2(cell_scale)[0] - 3
    tanh = (3, -tanh_shift) if tanh_shift < 0 else (3 << tanh_shift, 0)
    activation = int(getattr(op.options, "fusedActivationFunction", ACTIVATION_TANH))
    return params + [quantized_clip, *tanh, int(activation == ACTIVATION_SIGMOID)]


# The tensor types of each variant: input and hidden state (and output), biases.
VARIANT_TYPES = {"int8": ("INT8", "INT32"), "int16": ("INT16", "INT64")}


def _check_lstm(model: TfliteModel, op: Operator, activations: str = "int8") -> None:
    inputs = list(op.inputs) + [-1] * (24 - len(op.inputs))
    if any(inputs[i] >= 0 for i in LSTM_ABSENT):
        raise unsupported(op, "has peephole, projection or layer-norm tensors")
    needed = (LSTM_INPUT, *LSTM_INPUT_WEIGHTS, *LSTM_RECURRENT_WEIGHTS, *LSTM_BIASES, LSTM_HIDDEN, LSTM_CELL)
    if any(inputs[i] < 0 for i in needed):
        raise unsupported(op, "lacks one of its gates' weights or biases (a CIFG LSTM)")
    t = {i: model.tensors[inputs[i]] for i in needed}
    activation, bias = VARIANT_TYPES[activations]
    expected = {LSTM_INPUT: activation, LSTM_HIDDEN: activation, LSTM_CELL: "INT16",
                **{i: "INT8" for i in LSTM_INPUT_WEIGHTS + LSTM_RECURRENT_WEIGHTS}, **{i: bias for i in LSTM_BIASES}}
    wrong = [i for i, kind in expected.items() if t[i].type_name != kind]
    if wrong or model.tensors[op.outputs[0]].type_name != activation:
        raise unsupported(op, "is not int8 with an int16 cell state and int32 biases" if activations == "int8" else
                          "is not 16x8 (int16 input, state and output, int8 weights, int64 biases)")
    if activations == "int16" and any(zero_point(x) for x in (t[LSTM_INPUT], t[LSTM_HIDDEN], model.tensors[op.outputs[0]])):
        raise unsupported(op, "has an int16 tensor with a non-zero zero point")
    if any(t[i].per_channel for i in LSTM_INPUT_WEIGHTS + LSTM_RECURRENT_WEIGHTS):
        raise unsupported(op, "has per-channel weights")
    inp = t[LSTM_INPUT]
    batch = inp.shape[1] if getattr(op.options, "timeMajor", False) else inp.shape[0]
    if len(inp.shape) != 3 or batch != 1:
        raise unsupported(op, f"has an input of shape {list(inp.shape)} rather than one batch of a sequence")
    if not (t[LSTM_HIDDEN].is_variable and t[LSTM_CELL].is_variable):
        raise unsupported(op, "has state tensors that are not variables")
    if int(getattr(op.options, "fusedActivationFunction", ACTIVATION_TANH)) not in (ACTIVATION_TANH, ACTIVATION_SIGMOID):
        raise unsupported(op, "has a cell activation other than tanh or sigmoid")


def _smlad_weights(model: TfliteModel, op: Operator, biases: list[np.ndarray]) -> list[int] | None:
    """te_lstm_s8's `wide` table (see te_recurrent.h), or None when a row is not a multiple of 4 long:
    per unit, the input FCs' four folded biases, then its input rows, then the recurrent FCs' four
    folded biases, then its recurrent rows, so one pointer walks it. Exact: the same products, in
    pairs of sign-extended int16 for SMLAD."""
    parts = []
    for half, weights_at in enumerate((LSTM_INPUT_WEIGHTS, LSTM_RECURRENT_WEIGHTS)):
        gates = np.stack([model.tensors[op.inputs[i]].data.astype(np.int64) for i in weights_at])  # gate, unit, column
        if gates.shape[2] % 4:
            return None
        quads = gates.reshape(4, gates.shape[1], -1, 4)                      # gate, unit, chunk, byte
        low, high = quads[..., [0, 1]], quads[..., [2, 3]]                   # (w0, w1), (w2, w3)
        pairs = ((low & 0xFFFF) | ((high & 0xFFFF) << 16)).astype(np.uint32).view(np.int32)
        units = gates.shape[1]
        parts.append(np.stack(biases[4 * half:4 * half + 4], axis=1).astype(np.int64))   # unit, gate
        parts.append(pairs.transpose(1, 2, 0, 3).reshape(units, -1).astype(np.int64))     # unit, chunk, gate, pair
    return list(np.concatenate(parts, axis=1).ravel())


def folded_gate_biases(model: TfliteModel, op: Operator) -> list[np.ndarray]:
    """Per gate, the input FC's bias plus input_offset * row sums, then per gate the recurrent FC's
    hidden_offset * row sums (it has no bias): the kernel then multiplies raw int8 values. Exact: the
    same integer sums as TFLM's sum of w * (x + offset) + bias."""
    inp, hidden = model.tensors[op.inputs[LSTM_INPUT]], model.tensors[op.inputs[LSTM_HIDDEN]]
    tables = []
    for weights_at, bias_at, offset in ((LSTM_INPUT_WEIGHTS, LSTM_BIASES, -zero_point(inp)),
                                        (LSTM_RECURRENT_WEIGHTS, (None,) * 4, -zero_point(hidden))):
        for w_index, b_index in zip(weights_at, bias_at):
            rows = model.tensors[op.inputs[w_index]].data.astype(np.int64).sum(axis=1)
            bias = model.tensors[op.inputs[b_index]].data.astype(np.int64) if b_index is not None else 0
            folded = bias + offset * rows
            if folded.min() < -(1 << 31) or folded.max() >= 1 << 31:
                raise unsupported(op, "has biases that overflow int32 once its input offset is folded in")
            tables.append(folded)
    return tables


@lru_cache(maxsize=1)
def sigmoid_table() -> tuple[int, ...]:
    """TFLM's sigmoid_table_uint16 (sigmoid(i/24) in 0.16, tuned by hand: no formula gives it), read
    back from tflite-micro's own int16 TANH. With input scale float32(1/48) its Prepare picks
    multiplier 16384 and left shift 6, so input x becomes exactly 256*x and the output is
    table[x] - 32768 for x < 255. The last entry, only ever interpolated towards, comes from
    the slope of the outputs between 254*256 and 255*256 at input scale 2^-12 (x becomes 3*x)."""
    head = [int(v) + 32768 for v in _tanh_int16(float(np.float32(1 / 48)), list(range(255)))]
    xs = [x for x in range(21675, 21760) if (3 * x) >> 8 == 254]
    outputs = _tanh_int16(2.0 ** -12, xs)
    ua = head[254]
    for ub in range(ua, 65536):
        if all(((ua << 8) + ((3 * x) & 255) * (ub - ua) - (1 << 23) + 128) >> 8 == o for x, o in zip(xs, outputs)):
            return tuple(head + [ub])
    raise TinyedgeError("tflite-micro's int16 TANH does not behave as its reference kernel: "
                        "build the model with `--runtime tflm` instead.")


def _tanh_int16(scale: float, xs: list[int]) -> list[int]:
    """One int16 TANH over xs (output scale 2^-15) in tflite-micro's interpreter."""
    interpreter = tflm_interpreter(_tanh_int16_model(scale, len(xs)), 1 << 16)
    interpreter.set_input(np.asarray(xs, dtype=np.int16), 0)
    interpreter.invoke()
    return [int(v) for v in np.asarray(interpreter.get_output(0)).ravel()]


def _tanh_int16_model(scale: float, count: int) -> bytes:
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    def tensor(name: str, tensor_scale: float):
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [count], schema.TensorType.INT16, 0, name
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [tensor_scale], [0]
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.TANH
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", scale), tensor("y", 2.0 ** -15)]
    graph.inputs, graph.outputs, graph.operators = [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def prepare(model: TfliteModel, op: Operator) -> LstmData:
    if model.tensors[op.inputs[LSTM_INPUT]].type_name == "INT16":
        _check_lstm(model, op, "int16")
        biases = tuple(tuple(int(v) for v in np.asarray(model.tensors[op.inputs[i]].data, dtype=np.int64))
                       for i in LSTM_BIASES)
        return LstmData(tuple(lstm_parameters(model, op)), biases, None, sigmoid_table(), "int16")
    _check_lstm(model, op)
    biases = folded_gate_biases(model, op)
    wide = _smlad_weights(model, op, biases)
    return LstmData(tuple(lstm_parameters(model, op)), tuple(tuple(int(v) for v in b) for b in biases),
                    None if wide is None else tuple(int(v) for v in wide), sigmoid_table())
