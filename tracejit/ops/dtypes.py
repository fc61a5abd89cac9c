"""The dtypes tracejit supports and PyTorch's type-promotion rule over them.

A `DType` wraps a numpy dtype and prints like PyTorch's (`tracejit.float32`). Promotion follows
PyTorch: operands are ranked as dimensioned tensors > 0-d tensors > Python scalars; within a rank
the usual lattice applies, and a lower rank only changes the result when it is of a higher
category (bool < integer < floating), in which case a Python scalar contributes the default dtype
of its category (float32, int64). This module imports numpy only, so the IR can share it.
"""
from __future__ import annotations

import numpy as np


class DType:
    __slots__ = ("name", "np", "itemsize", "is_floating_point", "is_integer", "is_bool", "rank")

    def __init__(self, name: str, np_dtype: type, rank: int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = self.np.kind == "f"
        self.is_integer = self.np.kind in "iu"
        self.is_bool = self.np.kind == "b"
        self.rank = rank  # position in the promotion lattice

    @property
    def category(self) -> int:
        return 0 if self.is_bool else (1 if self.is_integer else 2)

    def __repr__(self) -> str:
        return f"tracejit.{self.name}"

    def __reduce__(self):  # dtypes are singletons, also through copy/pickle
        return (get_dtype, (self.name,))


bool_ = DType("bool", np.bool_, 0)
uint8 = DType("uint8", np.uint8, 1)
int8 = DType("int8", np.int8, 2)
int16 = DType("int16", np.int16, 3)
int32 = DType("int32", np.int32, 4)
int64 = DType("int64", np.int64, 5)
float16 = DType("float16", np.float16, 6)
float32 = DType("float32", np.float32, 7)
float64 = DType("float64", np.float64, 8)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "long": int64, "int": int32,
                 "half": float16})
_BY_NP = {d.np: d for d in ALL}
# short names used by the IR text form
SHORT = {bool_: "b8", uint8: "u8", int8: "i8", int16: "i16", int32: "i32", int64: "i64",
         float16: "f16", float32: "f32", float64: "f64"}
FROM_SHORT = {v: k for k, v in SHORT.items()}

default_float = float32
default_int = int64


def get_dtype(x) -> DType:
    """Accept a DType, a name ('float32'), a numpy dtype or a Python type (float, int, bool)."""
    if isinstance(x, DType):
        return x
    if x is float:          # torch: the Python float type is float64 (not the default dtype)
        return float64
    if x is int:
        return default_int
    if x is bool:
        return bool_
    if isinstance(x, str):
        d = _BY_NAME.get(x.replace("tracejit.", "").replace("torch.", ""))
        if d is not None:
            return d
        raise TypeError(f"unknown dtype {x!r}; use one of {', '.join(d.name for d in ALL)}")
    try:
        return _BY_NP[np.dtype(x)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {x!r}; tracejit supports "
                        f"{', '.join(d.name for d in ALL)}") from None


def from_numpy_dtype(npd: np.dtype) -> DType:
    d = _BY_NP.get(npd)
    if d is None:
        raise TypeError(f"numpy dtype {npd} is not supported by tracejit; supported: "
                        f"{', '.join(d.name for d in ALL)}")
    return d


# Promotion lattice within two dtypes, as torch.promote_types.
def promote_types(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == 1 and (a is uint8 or b is uint8):
        other = b if a is uint8 else a
        return int16 if other is int8 else other
    return a if a.rank > b.rank else b


def scalar_dtype(v) -> DType:
    """The default dtype of a Python scalar's category (how a wrapped scalar contributes)."""
    if isinstance(v, (bool, np.bool_)):
        return bool_
    if isinstance(v, (int, np.integer)):
        return default_int
    if isinstance(v, (float, np.floating)):
        return default_float
    raise TypeError(f"expected a number, got {type(v).__name__}")


def result_type(dim: list, zero: list, scalars: list) -> DType:
    """torch.result_type over dimensioned dtypes, 0-d dtypes and Python-scalar dtypes."""
    out = None
    for group in (scalars, zero, dim):  # lowest priority first
        if not group:
            continue
        g = group[0]
        for d in group[1:]:
            g = promote_types(g, d)
        if out is None or g.category >= out.category:
            out = g
    return out


def to_float(d: DType) -> DType:
    return d if d.is_floating_point else default_float


def check_fill(value, dtype: "DType"):
    """A Python number stored as `dtype` (a fill, a clamp bound, a `where` operand): torch
    refuses one the dtype cannot hold, where numpy would wrap it or store INT_MIN. As torch's
    overflow check: NaN and infinities never fit an integer; a uint8 takes -255..255 (a
    negative value wraps); a float32/float16 takes any finite value within its range, and
    infinities. Returns the value to store (a negative uint8 value wrapped)."""
    if dtype.is_bool or not isinstance(value, (int, float, np.integer, np.floating)) or \
            isinstance(value, (bool, np.bool_)):
        return value
    if dtype.is_floating_point:
        bad = dtype.np != np.float64 and np.isfinite(value) and \
            abs(float(value)) > float(np.finfo(dtype.np).max)
    elif isinstance(value, (float, np.floating)) and not np.isfinite(value):
        bad = True
    else:
        info = np.iinfo(dtype.np)
        bad = value > info.max or (value < -info.max if info.min == 0 else value < info.min)
    if bad:
        raise RuntimeError(f"value cannot be converted to type {dtype.name} without overflow")
    if not dtype.is_floating_point and value < 0 and np.iinfo(dtype.np).min == 0:
        return int(value) % (int(np.iinfo(dtype.np).max) + 1)      # wraps, as in torch
    return value
