"""`tinyedge shrink`: make a Keras model fit a board by narrowing its layers, then distilling.

Zeros do not make an int8 .tflite smaller or faster on TFLM or the AOT runtime (their arrays are
dense), so shrink removes whole filters and units instead: in every Conv/Dense layer but the output
layer it keeps the channels with the largest L1 norm, rebuilds the narrower model with those weights
copied, and fine-tunes it against the original with keras.distillation.Distiller. With --board it
picks the widest narrowing whose int8 form fits the board's flash and RAM (the same estimate as
`tinyedge inspect --board`); with --keep it narrows every layer by that factor.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyedge.events import Say
from tinyedge.boards import get_board
from tinyedge.errors import TinyedgeError
from tinyedge.float_models import keras_to_float_model, tensorflow
from tinyedge.inspection import board_fit, op_macs
from tinyedge.outputs import guard_outputs
from tinyedge.quantize import convert, load_float_model, quantize_model
from tinyedge.reference import measure_arena
from tinyedge.tflite_model import parse_tflite

# Candidate width factors tried for --board, widest first (bisected).
KEEP_STEPS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.125, 0.1, 0.075, 0.05)
HOLDOUT_FRACTION = 0.2
FIT_CALIBRATION_SAMPLES = 16
# Layers that keep the channel axis as it is: the kept channel indices pass through them.
CHANNEL_PRESERVING = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "GaussianNoise", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "Rescaling",
}
NARROWABLE = {"Dense": "units", "Conv1D": "filters", "Conv2D": "filters"}



@dataclass
class ModelFigures:
    int8_bytes: int
    arena_bytes: int
    macs: int
    parameters: int
    accuracy_float: float
    accuracy_int8: float | None
    flash_needed: int | None = None
    ram_needed: int | None = None
    fits: bool | None = None


@dataclass
class ShrinkReport:
    output: str
    keep: float
    board: str | None
    epochs: int
    eval_samples: int
    before: ModelFigures
    after: ModelFigures
    widths: dict[str, list[int]] = field(default_factory=dict)   # layer name → [before, after]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- narrowing


def _layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def _output_layer(layers: list[Any]) -> Any:
    weighted = [layer for layer in layers if type(layer).__name__ in NARROWABLE]
    if not weighted:
        raise TinyedgeError("the model has no Dense or Conv layer to narrow: shrink works on Conv/Dense models.")
    return weighted[-1]


def narrow(model: Any, keep: float) -> tuple[Any, dict[str, list[int]]]:
    """A copy of the model with every Conv/Dense layer but the output one narrowed to `keep` of its
    width (channels with the largest L1 norm kept), weights copied."""
    import keras

    layers = _layers(model)
    last = _output_layer(layers)
    kept: np.ndarray | None = None
    rebuilt, weights, widths = [], [], {}
    for layer in layers:
        kind = type(layer).__name__
        config, values = layer.get_config(), [np.asarray(w) for w in layer.get_weights()]
        if kind in NARROWABLE:
            kernel = values[0] if kept is None else np.take(values[0], kept, axis=-2)
            values[0] = kernel
            if layer is not last:
                width = kernel.shape[-1]
                count = max(1, int(round(width * keep)))
                norms = np.abs(kernel).reshape(-1, width).sum(axis=0)
                kept = np.sort(np.argsort(-norms, kind="stable")[:count])
                values = [values[0][..., kept], *[v[kept] for v in values[1:]]]
                config[NARROWABLE[kind]] = count
                widths[layer.name] = [width, count]
        elif kind == "DepthwiseConv2D":
            if int(config.get("depth_multiplier", 1)) != 1:
                raise TinyedgeError(f"layer {layer.name} is a depthwise convolution with a depth multiplier: "
                                    "shrink narrows depthwise layers with multiplier 1 only.")
            if kept is not None:
                values = [np.take(values[0], kept, axis=-2), *[v[kept] for v in values[1:]]]
        elif kind == "BatchNormalization":
            if kept is not None:
                values = [v[kept] for v in values]
        elif kind == "Flatten":
            if kept is not None:
                shape = tuple(layer.input.shape[1:])
                positions, channels = int(np.prod(shape[:-1])), int(shape[-1])
                kept = (np.arange(positions)[:, None] * channels + kept[None, :]).ravel()
        elif kind not in CHANNEL_PRESERVING:
            raise TinyedgeError(
                f"layer {layer.name} ({kind}) is not one shrink can narrow through: it handles plain stacks of "
                "Conv/Dense/DepthwiseConv2D/BatchNormalization/pooling/Flatten layers."
            )
        rebuilt.append(type(layer).from_config(config))
        weights.append(values)
    student = keras.Sequential([keras.Input(shape=tuple(model.inputs[0].shape[1:])), *rebuilt], name=f"{model.name}_narrow")
    for layer, values in zip(rebuilt, weights):
        layer.set_weights(values)
    return student, widths


def check_is_plain_stack(model: Any, samples: np.ndarray) -> None:
    """Narrowing rebuilds the model as a stack of its layers: refuse models that are not one (branches)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TinyedgeError("shrink takes single-input, single-output models: give a plain Conv/Dense stack.")
    same, _ = narrow(model, 1.0)
    x = samples[:8].astype(np.float32)
    if not np.allclose(np.asarray(model(x, training=False)), np.asarray(same(x, training=False)), atol=1e-4, rtol=1e-3):
        raise TinyedgeError("the model is not a plain stack of layers (it has branches or skip connections): "
                            "shrink narrows Sequential-style models only.")


# ---------------------------------------------------------------- int8 figures


def int8_bytes_of(keras_model: Any, calibration: np.ndarray) -> bytes:
    return convert(keras_to_float_model(keras_model), calibration.astype(np.float32))


def fit_figures(tflite: bytes, board_id: str | None) -> dict[str, Any]:
    model = parse_tflite(tflite)
    arena = measure_arena(model)
    figures: dict[str, Any] = {"int8_bytes": len(tflite), "arena_bytes": arena,
                               "macs": sum(op_macs(model, op) for op in model.operators),
                               "parameters": model.parameter_count()}
    if board_id:
        fit = board_fit(model, get_board(board_id), arena)
        figures.update(flash_needed=fit.flash_needed, ram_needed=fit.ram_needed, fits=fit.fits)
    return figures


def widest_fitting_keep(model: Any, board_id: str, calibration: np.ndarray, progress: Say) -> float:
    """The largest step of KEEP_STEPS whose narrowed int8 model fits the board (bisection: fit shrinks with width)."""
    low, high = 0, len(KEEP_STEPS) - 1   # KEEP_STEPS[high] must fit; search the widest that does
    cache: dict[int, bool] = {}

    def fits(i: int) -> bool:
        if i not in cache:
            narrowed, _ = narrow(model, KEEP_STEPS[i])
            figures = fit_figures(int8_bytes_of(narrowed, calibration), board_id)
            cache[i] = bool(figures["fits"])
            progress(f"keep {KEEP_STEPS[i]:.0%}: flash {figures['flash_needed']:,} B, RAM {figures['ram_needed']:,} B — "
                     f"{'fits' if cache[i] else 'does not fit'}")
        return cache[i]

    if not fits(high):
        narrowed, _ = narrow(model, KEEP_STEPS[high])
        figures = fit_figures(int8_bytes_of(narrowed, calibration), board_id)
        raise TinyedgeError(
            f"even narrowed to {KEEP_STEPS[high]:.0%} of its width the model needs {figures['flash_needed']:,} B of flash "
            f"and {figures['ram_needed']:,} B of RAM on {board_id}: pick a larger board or a smaller architecture "
            "(e.g. a smaller input or an earlier pooling)."
        )
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return KEEP_STEPS[high]


# ---------------------------------------------------------------- distillation


def class_labels(labels: np.ndarray, n: int, classes: int) -> np.ndarray:
    if len(labels) != n:
        raise TinyedgeError(f"there are {len(labels)} labels for {n} samples: give one label per sample.")
    if labels.ndim == 2 and labels.shape[1] == classes:
        return labels.argmax(axis=1).astype(np.int64)
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        if labels.min() < 0 or labels.max() >= classes:
            raise TinyedgeError(f"labels must be class indices 0..{classes - 1} for a model with {classes} outputs.")
        return labels.astype(np.int64)
    raise TinyedgeError("shrink needs class labels (indices or one-hot) for a classifier: give --labels Y.npy of shape (N,).")


def ends_in_softmax(model: Any) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def distill(teacher: Any, student: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> Any:
    import keras
    from keras.distillation import Distiller, LogitsDistillation

    teacher.trainable = False
    distiller = Distiller(teacher=teacher, student=student, distillation_losses=LogitsDistillation(temperature=3.0),
                          student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(teacher)))
    distiller.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return distiller.student


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    predictions = np.asarray(model.predict(x, batch_size=64, verbose=0))
    return float(np.mean(predictions.reshape(len(x), -1).argmax(axis=1) == y))


# ---------------------------------------------------------------- the command


def figures_of(keras_path: Path, calibration: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray,
               board_id: str | None, work: Path) -> ModelFigures:
    """Quantize through tinyedge's own stage, then measure size, arena, MACs, fit and accuracy."""
    tflite = work / f"{keras_path.stem}_int8.tflite"
    report = quantize_model(keras_path, calibration, tflite, eval_data=eval_x, labels=eval_y)
    figures = fit_figures(tflite.read_bytes(), board_id)
    return ModelFigures(accuracy_float=report.accuracy["float"] if report.accuracy else 0.0,
                        accuracy_int8=report.accuracy["int8"] if report.accuracy else None, **figures)


def shrink_model(model_path: str | Path, data: np.ndarray, labels: np.ndarray, out_path: str | Path,
                 board: str | None = None, keep: float | None = None, epochs: int = 3,
                 progress: Say | None = None) -> ShrinkReport:
    say = progress or (lambda message: None)
    guard_outputs({"MODEL": model_path}, {"-o": out_path})
    if (board is None) == (keep is None):
        raise TinyedgeError("give either --board ID (narrow until the model fits it) or --keep F (narrow by a factor).")
    if keep is not None and not 0 < keep <= 1:
        raise TinyedgeError(f"--keep must be a fraction in (0, 1] (got {keep}).")
    if epochs < 0:
        raise TinyedgeError(f"--epochs must be 0 or more (got {epochs}).")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".keras":
        raise TinyedgeError(f"the output {out_path} must end in .keras: shrink writes a Keras model.")
    model_path = Path(model_path)
    if model_path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise TinyedgeError(f"{model_path} is not a Keras .keras/.h5 file: shrink retrains Keras models.")
    tf = tensorflow()
    float_model = load_float_model(model_path)
    teacher = tf.keras.models.load_model(model_path, compile=False)
    data = float_model.arrange(data, "shrink", "--data").astype(np.float32)
    classes = int(np.prod(teacher.outputs[0].shape[1:]))
    y = class_labels(labels, len(data), classes)
    holdout = max(1, int(len(data) * HOLDOUT_FRACTION))
    if len(data) - holdout < 8:
        raise TinyedgeError(f"--data holds {len(data)} samples: give at least 10 (a fifth is held out for accuracy).")
    train_x, train_y, eval_x, eval_y = data[:-holdout], y[:-holdout], data[-holdout:], y[-holdout:]
    check_is_plain_stack(teacher, train_x)

    with tempfile.TemporaryDirectory(prefix="tinyedge-shrink-") as tmp:
        work = Path(tmp)
        say("measuring the original model")
        before = figures_of(model_path, train_x, eval_x, eval_y, board, work)
        if board and before.fits:
            keep = 1.0
            say(f"the model already fits {board}: keeping its width")
        elif board:
            keep = widest_fitting_keep(teacher, board, train_x[:FIT_CALIBRATION_SAMPLES], say)
        student, widths = narrow(teacher, keep)
        if keep < 1.0 and epochs:
            say(f"distilling the {keep:.0%}-wide student from the original for {epochs} epoch(s)")
            student = distill(teacher, student, train_x, train_y, epochs)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        student.save(out_path)
        say("measuring the shrunk model")
        after = figures_of(out_path, train_x, eval_x, eval_y, board, work)
    return ShrinkReport(output=str(out_path), keep=keep, board=board, epochs=epochs if keep < 1.0 else 0,
                        eval_samples=len(eval_x), before=before, after=after, widths=widths)
