"""FP32 tensor contents sent as JSON (the Open Inference Protocol's ``data``), checked and turned into an array.

The protocol allows the values flat in row-major order or nested as the shape; both are accepted. Every value
must be a JSON number: numpy would otherwise turn strings and booleans into numbers without a word. (The
store's contract fixes every model input at float32, so no other element type is needed.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class TensorDataError(ValueError):
    """The values do not fit the shape, are not numbers, or are not representable in the tensor's type."""


def float32_tensor(data: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    """`data` (flat or nested) as a float32 array of `shape`; `shape` must already be checked."""
    values = _flatten(data, shape)
    expected = math.prod(shape)
    if len(values) != expected:
        raise TensorDataError(f"data has {len(values)} values; shape {list(shape)} needs {expected}")
    for index, value in enumerate(values):
        # type() rather than isinstance(): JSON true and false are bools, which isinstance counts as int.
        if type(value) is not float and type(value) is not int:
            raise TensorDataError(f"data[{index}] is {_json_type(value)}; FP32 data must be numbers")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.array(values, dtype=np.float32).reshape(shape)
    except OverflowError:  # an integer too large for any float
        array = np.full(shape, np.inf, np.float32)
    if not np.isfinite(array).all():
        # JSON parsers accept NaN and Infinity, and a finite double can still overflow a float32.
        raise TensorDataError("data holds NaN, an infinity or a value beyond the range of FP32")
    return array


def _flatten(data: list[Any], shape: tuple[int, ...]) -> list[Any]:
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []

    def walk(level: Any, depth: int) -> None:
        if not isinstance(level, list) or len(level) != shape[depth]:
            found = f"an array of {len(level)}" if isinstance(level, list) else _json_type(level)
            raise TensorDataError(
                f"nested data does not match shape {list(shape)}: {found} where dimension {depth} "
                f"needs an array of {shape[depth]}"
            )
        if depth == len(shape) - 1:
            flat.extend(level)
        else:
            for item in level:
                walk(item, depth + 1)

    walk(data, 0)
    return flat


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return "null" if value is None else names.get(type(value), "an object")
