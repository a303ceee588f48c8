"""Checks of the arrays a user gives (samples, labels), shared by `quantize` and `validate` so both
refuse the same inputs with the same sentence."""

from __future__ import annotations

import numpy as np

from tinyedge.errors import TinyedgeError


def check_numeric_samples(data: np.ndarray, what: str, flag: str) -> None:
    """Samples are an array of at least one numeric sample, with no NaN or infinity."""
    if data.ndim == 0:
        raise TinyedgeError(f"{flag} holds a single number, not samples: give an array of shape (N, *input_shape).")
    if data.size == 0 or data.shape[0] == 0:
        raise TinyedgeError(f"the {what} data in {flag} is empty: give at least one sample.")
    if data.dtype == np.bool_ or not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise TinyedgeError(f"the {what} data in {flag} has dtype {data.dtype}: it must be numeric (float32 preferred).")
    check_finite(data, what, flag)


def check_finite(data: np.ndarray, what: str, flag: str) -> None:
    if not np.issubdtype(data.dtype, np.floating):
        return
    bad = ~np.isfinite(data.reshape(len(data), -1)).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        raise TinyedgeError(f"the {what} data in {flag} holds NaN or infinity in {int(bad.sum())} sample(s), the first "
                            f"at index {first}: remove or repair those samples.")


def check_integer_input(data: np.ndarray, input_dtype: np.dtype, flag: str) -> None:
    """Integer samples go to the board as the input tensor's bytes: they must already be of its kind
    (int8 for an int8 input) and range, never wrapped around by a cast."""
    input_dtype = np.dtype(input_dtype)
    if data.dtype.itemsize == 1 and data.dtype != input_dtype and input_dtype.itemsize == 1:
        raise TinyedgeError(
            f"{flag} holds {data.dtype} samples but the model's input is {input_dtype}: give {input_dtype} data "
            f"(shifted by the input's zero point), or float data for tinyedge to quantize.")
    info = np.iinfo(input_dtype)
    low, high = int(data.min()), int(data.max())
    if low < info.min or high > info.max:
        raise TinyedgeError(
            f"{flag} holds integers from {low} to {high}, outside the {input_dtype} range of the model's input "
            f"({info.min}..{info.max}): give {input_dtype} data, or float data for tinyedge to quantize.")


def class_labels(labels: np.ndarray, samples: int, width: int, what: str = "samples",
                 flag: str = "--labels") -> np.ndarray | None:
    """The class index of each sample, for an output of `width` scores; None when the output is a
    single value (the labels are then regression targets, checked by the caller's shapes)."""
    if labels.ndim == 0:
        raise TinyedgeError(f"{flag} holds a single number: give one label per sample.")
    if len(labels) != samples:
        raise TinyedgeError(f"there are {len(labels)} labels for {samples} {what}: give one label per sample.")
    if labels.dtype == np.bool_ or not (np.issubdtype(labels.dtype, np.floating) or np.issubdtype(labels.dtype, np.integer)):
        raise TinyedgeError(f"{flag} has dtype {labels.dtype}: give class indices as integers or one-hot rows.")
    check_finite(labels, "label", flag)
    if width <= 1:
        return None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]   # a column of class indices
    if labels.ndim == 2 and labels.shape[1] == width:
        return labels.argmax(axis=1)
    if labels.ndim == 2:
        raise TinyedgeError(f"{flag} holds one-hot rows of {labels.shape[1]} values but the model's output has {width}: "
                            f"give one-hot rows of {width} values or class indices 0..{width - 1}.")
    if labels.ndim != 1:
        raise TinyedgeError(f"{flag} has shape {labels.shape}: give class indices of shape (N,) or one-hot rows of shape (N, {width}).")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TinyedgeError(f"{flag} holds {labels.dtype} values: give class indices as integers 0..{width - 1} "
                            f"or one-hot rows of {width} values.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= width:
        raise TinyedgeError(f"{flag} holds class indices from {low} to {high}, but the model's output has {width} "
                            f"classes: give indices 0..{width - 1}.")
    return labels


def check_samples(data: np.ndarray, input_shape: tuple[int, ...], what: str, source: str) -> np.ndarray:
    """Accept N samples of the model's input shape (with or without the batch axis of 1)."""
    check_numeric_samples(data, what, source)
    sample_shape = tuple(input_shape[1:])
    if tuple(data.shape[1:]) == sample_shape:
        return data
    if data.ndim == len(input_shape) + 1 and tuple(data.shape[1:]) == tuple(input_shape):
        return data.reshape((data.shape[0], *sample_shape))
    raise TinyedgeError(
        f"the {what} data in {source} has samples of shape {tuple(data.shape[1:])}, but the model "
        f"expects {sample_shape}: give an array of shape (N, {', '.join(map(str, sample_shape))})."
    )


def check_input_arrays(inputs: list[tuple[str, tuple[int, ...]]], arrays: list[np.ndarray],
                       flag: str = "--data") -> list[str]:
    """One array per model input (name, shape), in order, each of the same number of samples of that
    input's shape (with or without its batch axis of 1); returns the flag naming each array."""
    names = ", ".join(name for name, _ in inputs)
    if len(arrays) != len(inputs):
        raise TinyedgeError(f"the model takes {len(inputs)} input(s) ({names}) but {len(arrays)} {flag} array(s) were "
                            f"given: give one {flag} per input in that order, or one .npz keyed by input name.")
    flags = [flag if len(inputs) == 1 else f"{flag} #{i + 1} ({name})" for i, (name, _) in enumerate(inputs)]
    for (name, shape), array, source in zip(inputs, arrays, flags):
        check_numeric_samples(array, "validation", source)
        sample_shape = tuple(shape[1:])
        if tuple(array.shape[1:]) not in (sample_shape, tuple(shape)):
            raise TinyedgeError(
                f"{source} samples have shape {tuple(array.shape[1:])}, but the model expects {sample_shape} for its "
                f"input {name}: give an array of shape (N, {', '.join(map(str, sample_shape))}).")
    counts = [len(array) for array in arrays]
    if len(set(counts)) > 1:
        raise TinyedgeError(f"the {flag} arrays hold {', '.join(map(str, counts))} samples: give the same number of "
                            "samples for every input.")
    return flags
