"""Full-int8 quantization: int8 weights (per channel), activations, inputs and outputs.

The float model is converted with its batch dimension fixed to 1 (a free batch dimension makes
Keras 3 models carry SHAPE/STRIDED_SLICE/PACK ops onto the board), calibrated on the user's
data, checked in tflite-micro, and compared against the float model on held-out data.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tinyedge.events import CountProgress
from tinyedge.checks import class_labels
from tinyedge.errors import TinyedgeError
from tinyedge.float_models import FloatModel, load_keras_model, load_saved_model, tensorflow
from tinyedge.onnx_import import OnnxModel
from tinyedge.int8_rewrites import rewrite_for_tflm
from tinyedge.outputs import guard_outputs
from tinyedge.reference import Reference, captured_native_output, check_runs_in_tflm
from tinyedge.tflite_model import TFLITE_IDENTIFIER, TfliteModel, parse_tflite, with_reset_each_inference

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# --activations: int8 (full int8), or int16 (TFLite's 16x8: int16 activations and I/O, int8 weights).
ACTIVATIONS = ("int8", "int16")
HOLDOUT_FRACTION = 0.2



@dataclass
class QuantizeReport:
    output: str
    float_bytes: int
    int8_bytes: int
    calibration_samples: int
    eval_samples: int
    eval_source: str
    rmse: float
    cosine: float
    top1_agreement: float | None
    accuracy: dict[str, float] | None = None
    label_rmse: dict[str, float] | None = None
    ops: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    float_reference: str = "TensorFlow"   # what ran the float model: TensorFlow, or ONNX Runtime for .onnx
    activations: str = "int8"             # int16: TFLite's 16x8 quantization
    input_layout: str | None = None       # for .onnx: the layout the int8 model takes, and what was transposed
    rewrites: list[str] = field(default_factory=list)   # what tinyedge.int8_rewrites changed in the converter's model

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- loading the float model


def load_float_model(path: str | Path) -> FloatModel:
    path = Path(path)
    if not path.exists():
        raise TinyedgeError(f"{path} does not exist: give a Keras .keras/.h5 file, a SavedModel directory or an .onnx file.")
    if path.is_file() and path.suffix.lower() == ".onnx":
        return OnnxModel(path)
    if path.is_file() and _looks_like_tflite(path):
        raise TinyedgeError(
            f"{path} is already a .tflite model; quantization needs the source model: give the Keras "
            ".keras/.h5 file or SavedModel directory it was converted from."
        )
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise TinyedgeError(f"{path} is a directory without saved_model.pb: give a SavedModel directory or a .keras/.h5 file.")
        return load_saved_model(path)
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise TinyedgeError(f"{path} is not a model tinyedge can read: give a Keras .keras/.h5 file, a SavedModel directory or an .onnx file.")
    return load_keras_model(path)


def _looks_like_tflite(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(8)
    return len(head) == 8 and head[4:8] == TFLITE_IDENTIFIER


# ---------------------------------------------------------------- data


def load_array(path: str | Path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise TinyedgeError(f"the {what} file {path} does not exist: give a .npy array.")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception:
        raise TinyedgeError(f"{path} is not a NumPy .npy array: save the {what} with numpy.save.") from None
    if not isinstance(array, np.ndarray):
        raise TinyedgeError(f"{path} holds several arrays (.npz): save the {what} as one array with numpy.save.")
    return array





def calibration_warnings(calibration: np.ndarray) -> list[str]:
    """Calibration data that quantizes, but probably not as the user meant."""
    warnings = []
    if calibration.dtype in (np.int8, np.uint8):
        warnings.append(f"the calibration data is {calibration.dtype}, but the float model is calibrated on the "
                        "values it takes: give the float inputs the model was trained on (e.g. pixels scaled as in training).")
    if len(calibration) == 1:
        warnings.append("there is a single calibration sample, so the int8 ranges fit that sample only: "
                        "give a few hundred representative samples.")
    return warnings


# ---------------------------------------------------------------- conversion


def convert(float_model: FloatModel, calibration: np.ndarray | None, progress: CountProgress | None = None,
            activations: str = "int8") -> bytes:
    """Convert to .tflite: full int8 (or 16x8 with int16 activations) when calibration data is given,
    float otherwise."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(float_model.keras_model)
    if calibration is not None:
        sixteen = activations == "int16"
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
                                               if sixteen else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int16 if sixteen else tf.int8
        converter.representative_dataset = lambda: _representative(calibration, progress)
    with captured_native_output() as log:
        try:
            return bytes(converter.convert())
        except Exception as exc:
            failure = exc
    hint = _conversion_hint(str(failure) + "\n" + "\n".join(log))
    raise TinyedgeError(f"the TFLite converter could not convert the model ({hint}): {_conversion_advice(hint)}")


def _representative(calibration: np.ndarray, progress: CountProgress | None) -> Iterator[list[np.ndarray]]:
    total = len(calibration)
    for i in range(total):
        yield [calibration[i:i + 1].astype(np.float32)]
        if progress:
            progress(i + 1, total)


def _conversion_hint(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line.lower() and ("op" in line.lower() or "not supported" in line.lower()):
            return line.strip()[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else "unknown error"


def _conversion_advice(hint: str) -> str:
    if "not supported" in hint or "failed to legalize" in hint.lower():
        return "replace the layer that uses an op without an int8 TFLite kernel."
    return "check that the model runs in TensorFlow and uses TFLite-compatible layers."


# ---------------------------------------------------------------- comparison


def run_int8(model: TfliteModel, samples: np.ndarray) -> list[np.ndarray]:
    """Dequantized outputs of the int8 model on float samples, via tflite-micro: one (N, size) array
    per output, in the .tflite's output order."""
    ref = Reference(model)
    tin = model.input_tensors[0]
    per_sample = []
    for x in samples:
        if model.is_stateful:   # each sample from the first state, as the float model computes it
            ref.reset()
        q = quantize_input(x.astype(np.float32), tin.scale[0], int(tin.zero_point[0]), tin.dtype)
        per_sample.append(ref.run([q.reshape(tin.shape)]))
    return [np.stack([dequantize(outs[i], t.scale[0], int(t.zero_point[0])).ravel() for outs in per_sample])
            for i, t in enumerate(model.output_tensors)]


def run_float(model: FloatModel, samples: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """The float model's outputs on N samples (one array, or one per input): one (N, size) array per
    output, in Keras's order."""
    arrays = [samples] if isinstance(samples, np.ndarray) else samples
    per_sample = [model.predict([a[i:i + 1] for a in arrays]) for i in range(len(arrays[0]))]
    return [np.stack([outs[i].ravel() for outs in per_sample]) for i in range(len(per_sample[0]))]


def pair_outputs(float_outs: list[np.ndarray], int8_outs: list[np.ndarray]) -> list[np.ndarray]:
    """The float outputs reordered to the .tflite's output order (the converter may reorder heads):
    each int8 output takes the unused float output of its size that it is closest to."""
    unused = list(range(len(float_outs)))
    paired = []
    for q in int8_outs:
        same_size = [j for j in unused if float_outs[j].shape == q.shape]
        if not same_size:
            raise TinyedgeError("the int8 model's outputs do not match the float model's: convert it again.")
        best = min(same_size, key=lambda j: float(np.mean((float_outs[j] - q) ** 2)))
        unused.remove(best)
        paired.append(float_outs[best])
    return paired


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype = np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


def compare_outputs(float_out: np.ndarray, int8_out: np.ndarray) -> tuple[float, float, float | None]:
    """RMSE, cosine similarity and top-1 agreement (None for single-value outputs)."""
    a, b = float_out.reshape(len(float_out), -1).astype(np.float64), int8_out.reshape(len(int8_out), -1).astype(np.float64)
    rmse = float(np.sqrt(np.mean((a - b) ** 2)))
    cosine = cosine_similarity(a, b)
    top1 = float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))) if a.shape[1] > 1 else None
    return rmse, cosine, top1


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def label_metrics(labels: np.ndarray, outputs: dict[str, np.ndarray]) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """Accuracy for class labels (indices or one-hot); RMSE against targets for regression labels."""
    first = next(iter(outputs.values()))
    n = len(first)
    classes = class_labels(labels, n, first.shape[1], "evaluation samples")
    if classes is not None:
        return {name: float(np.mean(out.argmax(axis=1) == classes)) for name, out in outputs.items()}, None
    targets = labels.reshape(n, -1).astype(np.float64)
    if targets.shape[1] != first.shape[1]:
        raise TinyedgeError(
            f"labels have {targets.shape[1]} values per sample but the model outputs {first.shape[1]}: "
            "give class indices, one-hot labels or regression targets of the output's size."
        )
    return None, {name: float(np.sqrt(np.mean((out - targets) ** 2))) for name, out in outputs.items()}


# ---------------------------------------------------------------- the stage


def quantize_model(
    model_path: str | Path,
    calibration: np.ndarray,
    out_path: str | Path,
    eval_data: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    samples: int | None = None,
    progress: CountProgress | None = None,
    activations: str = "int8",
) -> QuantizeReport:
    if activations not in ACTIVATIONS:
        raise TinyedgeError(f"--activations must be int8 or int16 (TFLite's 16x8), not {activations!r}.")
    guard_outputs({"MODEL": model_path}, {"-o": out_path})
    float_model = load_float_model(model_path)
    if len(float_model.input_shapes) != 1:
        raise TinyedgeError("the model has several inputs; tinyedge quantize takes single-input models: give a model with one input.")
    layout_note = input_layout_note(float_model, calibration)
    calibration = float_model.arrange(calibration, "calibration", "--calibration")
    warnings = calibration_warnings(calibration)
    calibration = calibration.astype(np.float32)
    if eval_data is not None:
        eval_data = float_model.arrange(eval_data, "evaluation", "--eval").astype(np.float32)
        eval_source, cal = "--eval", calibration
    else:
        holdout = max(1, int(len(calibration) * HOLDOUT_FRACTION)) if len(calibration) > 1 else 0
        cal = calibration[:len(calibration) - holdout] if holdout else calibration
        eval_data = calibration[len(calibration) - holdout:] if holdout else calibration
        eval_source = f"held-out {holdout} of the calibration samples" if holdout else "the calibration sample"
    if samples is not None:
        if samples <= 0:
            raise TinyedgeError(f"--samples must be positive (got {samples}).")
        cal = cal[:samples]

    float_bytes = convert(float_model, None)
    int8_bytes, rewrites = rewrite_for_tflm(convert(float_model, cal, progress, activations))
    if float_model.starts_from_zero_state and parse_tflite(int8_bytes).is_stateful:
        int8_bytes = with_reset_each_inference(int8_bytes)   # the board computes what the source computes
        rewrites.append("marked the model to reset its recurrent state before every inference (metadata "
                        "tinyedge_reset_state), as the ONNX model starts each call from zero state")
    int8_model = parse_tflite(int8_bytes, name=str(out_path))
    check_runs_in_tflm(int8_model)
    check_quantized(int8_model, activations)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(int8_bytes)

    int8_outs = run_int8(int8_model, eval_data)
    float_outs = pair_outputs(run_float(float_model, eval_data), int8_outs)
    rmse, cosine, _ = compare_outputs(np.concatenate(float_outs, axis=1), np.concatenate(int8_outs, axis=1))
    # Top-1 and label metrics belong to one head: the first output, as `tinyedge inspect` lists them.
    float_out, int8_out = float_outs[0], int8_outs[0]
    top1 = compare_outputs(float_out, int8_out)[2]
    accuracy = label_rmse = None
    if labels is not None:
        if eval_source != "--eval" and labels.ndim and len(labels) == len(calibration):
            labels = labels[len(calibration) - len(eval_data):]
        accuracy, label_rmse = label_metrics(labels, {"float": float_out, "int8": int8_out})
    return QuantizeReport(
        output=str(out_path), float_bytes=len(float_bytes), int8_bytes=len(int8_bytes),
        calibration_samples=len(cal), eval_samples=len(eval_data), eval_source=eval_source,
        rmse=rmse, cosine=cosine, top1_agreement=top1, accuracy=accuracy, label_rmse=label_rmse,
        ops=int8_model.op_names(), warnings=warnings,
        float_reference=float_model.reference_name, input_layout=layout_note, activations=activations,
        rewrites=rewrites,
    )


def check_quantized(model: TfliteModel, activations: str) -> None:
    """Refuse a conversion that left part of the model in float, or I/O of another type than asked."""
    if activations == "int8":
        problems = model.full_int8_problems()
    else:
        problems = [f"{kind} '{t.name}' is {t.type_name.lower()}" for kind, tensors in
                    (("input", model.input_tensors), ("output", model.output_tensors))
                    for t in tensors if t.type_name != "INT16"] + model.float_inside_problems()
    if problems:
        raise TinyedgeError(f"the converter could not make the model full {activations} ({'; '.join(problems)}): "
                            f"replace the layers that have no {activations} kernel.")


def input_layout_note(float_model: Any, data: np.ndarray) -> str | None:
    """For ONNX models: the layout the int8 model takes, and whether the user's arrays were transposed to it."""
    if not float_model.channels_last:
        return None
    if float_model.declared_layout(data):
        return f"{float_model.board_layout} (transposed from the {float_model.onnx_layout} arrays given)"
    return f"{float_model.board_layout} (as given)"
