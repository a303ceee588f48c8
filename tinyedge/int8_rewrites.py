"""Part of the quantize stage: the TFLite converter's int8 model, with what it left TFLM cannot run
rewritten as ops TFLM runs (and so the AOT and viper runtimes too), each rewrite said.

- RELU_0_TO_1 (PyTorch's Hardsigmoid, a clip to [0, 1]) has no TFLM kernel. When its output
  tensor cannot represent more than 1.0 (the converter calibrates it to [0, 1]), TFLite's RELU_0_TO_1
  and RELU compute the same bytes: the same requantization, clamped at the zero point below and at
  the int8 maximum above. It becomes RELU.
- ELU has an int8 kernel in TFLM (a table built at Prepare), but the converter leaves it in float
  between a DEQUANTIZE and a QUANTIZE, which TFLM's float ELU and the AOT's int8-only runtime
  cannot make full int8. The three ops become one int8 ELU from the DEQUANTIZE's input to the
  QUANTIZE's output (the table rounds the float ELU once, where the float island did too).
"""

from __future__ import annotations

import math
from typing import Any

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

INT8_MAX = 127
Builtin = schema.BuiltinOperator


def rewrite_for_tflm(data: bytes) -> tuple[bytes, list[str]]:
    """The model with the rewrites above applied, and one note per kind of rewrite made ([] and the
    same bytes when there was nothing to rewrite)."""
    raw = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    notes = []
    for graph in raw.subgraphs or []:
        relus = _relu_0_to_1_as_relu(raw, graph)
        elus = _fuse_float_elu(raw, graph)
        if relus:
            notes.append(f"{relus} RELU_0_TO_1 (Hardsigmoid's clip to [0, 1]) rewritten as RELU, which computes "
                         "the same bytes on its [0, 1] output and which TFLM runs")
        if elus:
            notes.append(f"{elus} ELU the converter left in float rewritten as TFLM's int8 ELU (a 256-entry table)")
    if not notes:
        return data, []
    return _pack(raw), notes


def _code(raw: Any, op: Any) -> int:
    code = raw.operatorCodes[op.opcodeIndex]
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _opcode_index(raw: Any, builtin: int, version: int = 1) -> int:
    for index, code in enumerate(raw.operatorCodes):
        if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    raw.operatorCodes.append(code)
    return len(raw.operatorCodes) - 1


def _quantization(tensor: Any) -> tuple[float, int] | None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0


def _relu_0_to_1_as_relu(raw: Any, graph: Any) -> int:
    rewritten = 0
    for op in graph.operators or []:
        if _code(raw, op) != Builtin.RELU_0_TO_1:
            continue
        out = graph.tensors[op.outputs[0]]
        quantization = _quantization(out)
        if out.type != schema.TensorType.INT8 or quantization is None:
            continue
        scale, zero = quantization
        if zero + int(_roundf(1.0 / scale)) < INT8_MAX:   # RELU_0_TO_1 would clamp below int8's maximum
            continue
        op.opcodeIndex = _opcode_index(raw, Builtin.RELU)
        rewritten += 1
    return rewritten


def _roundf(x: float) -> float:
    """C's roundf: half away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _fuse_float_elu(raw: Any, graph: Any) -> int:
    operators = list(graph.operators or [])
    producer = {t: op for op in operators for t in op.outputs}
    consumers: dict[int, list[Any]] = {}
    for op in operators:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op)
    graph_outputs = set(graph.outputs)
    removed = []
    for elu in operators:
        if _code(raw, elu) != Builtin.ELU:
            continue
        before, after = elu.inputs[0], elu.outputs[0]
        dequantize, quantizes = producer.get(before), consumers.get(after, [])
        if (dequantize is None or _code(raw, dequantize) != Builtin.DEQUANTIZE or len(quantizes) != 1
                or _code(raw, quantizes[0]) != Builtin.QUANTIZE or len(consumers.get(before, [])) != 1
                or {before, after} & graph_outputs):
            continue
        source, target = dequantize.inputs[0], quantizes[0].outputs[0]
        if not all(graph.tensors[t].type == schema.TensorType.INT8 and _quantization(graph.tensors[t])
                   for t in (source, target)):
            continue
        elu.inputs, elu.outputs = [source], [target]
        removed += [dequantize, quantizes[0]]
    if removed:
        graph.operators = [op for op in operators if not any(op is gone for gone in removed)]
        _drop_unused_tensors(graph)
    return len(removed) // 2


def _drop_unused_tensors(graph: Any) -> None:
    """Remove the tensors no op, input or output names any more, renumbering the rest."""
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.operators:
        used |= {t for t in op.inputs if t >= 0} | set(op.outputs) | {t for t in (op.intermediates or [])}
    kept = [index for index in range(len(graph.tensors)) if index in used]
    number = {old: new for new, old in enumerate(kept)}
    graph.tensors = [graph.tensors[index] for index in kept]
    graph.inputs = [number[t] for t in graph.inputs]
    graph.outputs = [number[t] for t in graph.outputs]
    for op in graph.operators:
        op.inputs = [number[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [number[t] for t in op.outputs]
        if op.intermediates is not None and len(op.intermediates):
            op.intermediates = [number[t] for t in op.intermediates]


def _pack(raw: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
