"""ONNX models built with onnx.helper (no PyTorch needed), as torch.onnx.export would lay them out:
NCHW inputs with a free batch dimension."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 13


def _init(name: str, array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _save(nodes: list, inputs: list, outputs: list, initializers: list, path: Path, name: str,
          opsets: dict[str, int] | None = None) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    imports = [helper.make_opsetid(domain, version) for domain, version in {"": OPSET, **(opsets or {})}.items()]
    model = helper.make_model(graph, opset_imports=imports, producer_name="tinyedge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def cnn(path: Path, channels: int = 3, size: int = 16, classes: int = 4, seed: int = 0) -> Path:
    """Conv → BatchNorm → ReLU → depthwise Conv → ReLU → MaxPool → Flatten → Gemm, NCHW input (N, 3, 16, 16)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    width = 8
    initializers = [
        _init("conv_w", rng.normal(0, 0.3, (width, channels, 3, 3))), _init("conv_b", rng.normal(0, 0.1, width)),
        _init("bn_scale", rng.uniform(0.5, 1.5, width)), _init("bn_bias", rng.normal(0, 0.1, width)),
        _init("bn_mean", rng.normal(0, 0.1, width)), _init("bn_var", rng.uniform(0.5, 1.5, width)),
        _init("dw_w", rng.normal(0, 0.3, (width, 1, 3, 3))), _init("dw_b", rng.normal(0, 0.1, width)),
        _init("fc_w", rng.normal(0, 0.1, (classes, width * (size // 2) ** 2))), _init("fc_b", rng.normal(0, 0.1, classes)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "dw_w", "dw_b"], ["dw"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=width),
        helper.make_node("Relu", ["dw"], ["relu2"]),
        helper.make_node("MaxPool", ["relu2"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    return _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", channels, size, size])],
                 [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], initializers, path, "cnn")


def mlp(path: Path, features: int = 10, hidden: int = 16, classes: int = 3, seed: int = 1) -> Path:
    """Gemm → ReLU → Gemm on (N, 10) inputs."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    initializers = [
        _init("w1", rng.normal(0, 0.4, (hidden, features))), _init("b1", rng.normal(0, 0.1, hidden)),
        _init("w2", rng.normal(0, 0.4, (classes, hidden))), _init("b2", rng.normal(0, 0.1, classes)),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"], transB=1),
    ]
    return _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])], initializers, path, "mlp")


def with_scaler(path: Path, features: int = 6) -> Path:
    """An MLP-like model using ai.onnx.ml's Scaler, which ONNX Runtime runs and onnx2tf cannot convert."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Scaler", ["x"], ["scaled"], domain="ai.onnx.ml",
                         offset=[0.5] * features, scale=[2.0] * features),
        helper.make_node("Gemm", ["scaled", "w", "b"], ["y"], transB=1),
    ]
    initializers = [_init("w", rng.normal(0, 0.4, (2, features))), _init("b", np.zeros(2))]
    return _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], initializers, path, "scaler",
                 opsets={"ai.onnx.ml": 3})


def free_length(path: Path) -> Path:
    """A model whose sequence length is free besides the batch: (batch, 4, length)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    return _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, "length"])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, "length"])], [], path, "free")


def with_external_data(model_path: Path, location: str) -> Path:
    """Store the model's weights outside the .onnx, as torch.onnx.export does, under the file name given."""
    import onnx

    model = onnx.load(str(model_path))
    onnx.save_model(model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return model_path


def point_external_data_at(model_path: Path, location: str) -> Path:
    """Rewrite where the model says its external weights lie (the weights themselves stay put)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(model_path))
    return model_path


def with_opset(model_path: Path, opset: int) -> Path:
    """The same graph declared at another opset (its ops read the same at the opsets the tests use)."""
    import onnx

    model = onnx.load(str(model_path))
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    onnx.save(model, str(model_path))
    return model_path


def recurrent(path: Path, op: str = "LSTM", linear_before_reset: int = 1, direction: str = "forward",
              steps: int = 12, features: int = 6, hidden: int = 8, classes: int = 3, seed: int = 2) -> Path:
    """An ONNX LSTM or GRU over (1, steps, features) with zero initial states given, then a Linear head on the
    last step, laid out as PyTorch writes it: Transpose to time-major, the layer, Squeeze (Reshape when
    bidirectional), Transpose back, Gather the last step, MatMul + Add. (ONNX Runtime runs layout 0 only.)"""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    gates, directions = (4 if op == "LSTM" else 3), (2 if direction == "bidirectional" else 1)
    initializers = [
        _init("W", rng.normal(0, 0.4, (directions, gates * hidden, features))),
        _init("R", rng.normal(0, 0.4, (directions, gates * hidden, hidden))),
        _init("B", rng.normal(0, 0.2, (directions, 2 * gates * hidden))),
        _init("h0", np.zeros((directions, 1, hidden))),
        _init("fc_w", rng.normal(0, 0.3, (directions * hidden, classes))), _init("fc_b", rng.normal(0, 0.1, classes)),
        helper.make_tensor("last", TensorProto.INT64, [], [-1]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("time_major_shape", TensorProto.INT64, [3], [steps, 1, directions * hidden]),
    ]
    states = ["h0", "h0"] if op == "LSTM" else ["h0"]
    extra = {"linear_before_reset": linear_before_reset} if op == "GRU" else {}
    nodes = [helper.make_node("Transpose", ["x"], ["time_major"], perm=[1, 0, 2]),
             helper.make_node(op, ["time_major", "W", "R", "B", "", *states], ["y"], hidden_size=hidden,
                              direction=direction, **extra),
             helper.make_node("Squeeze", ["y", "axis1"], ["squeezed"]) if directions == 1
             else helper.make_node("Reshape", ["y", "time_major_shape"], ["squeezed"]),
             helper.make_node("Transpose", ["squeezed"], ["seq"], perm=[1, 0, 2]),
             helper.make_node("Gather", ["seq", "last"], ["final"], axis=1),
             helper.make_node("MatMul", ["final", "fc_w"], ["mm"]),
             helper.make_node("Add", ["mm", "fc_b"], ["logits"])]
    return _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, steps, features])],
                 [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], initializers, path, op.lower())
