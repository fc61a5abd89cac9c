"""Facts about tensors and dtypes: finfo/iinfo, stride(), type(), is_floating_point, numel, and
the byte()/char()/short() casts."""
from __future__ import annotations

import numpy as np

from .methods import both, function, method
from .ops import dtypes as D
from .tensor import Tensor, _norm_dim


class finfo:  # noqa: N801  (torch.finfo)
    """bits, eps, max, min, tiny (smallest normal), resolution of a floating dtype."""

    def __init__(self, type=None) -> None:  # noqa: A002
        d = D.float32 if type is None else D.get_dtype(type)
        if not d.is_floating_point:
            raise TypeError(f"finfo(): {d} is not a floating point dtype (use iinfo)")
        i = np.finfo(d.np)
        self.dtype = d.name
        self.bits = int(i.bits)
        self.eps = float(i.eps)
        self.max = float(i.max)
        self.min = float(i.min)
        self.tiny = self.smallest_normal = float(i.tiny)
        self.resolution = 10.0 ** -int(i.precision)     # (numpy's is rounded to dtype)

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.tiny:g}, tiny={self.tiny:g}, "
                f"dtype={self.dtype})")


class iinfo:  # noqa: N801  (torch.iinfo)
    """bits, max, min of an integer dtype."""

    def __init__(self, type) -> None:  # noqa: A002
        d = D.get_dtype(type)
        if not d.is_integer:
            raise TypeError(f"iinfo(): {d} is not an integer dtype (use finfo)")
        i = np.iinfo(d.np)
        self.dtype = d.name
        self.bits = int(i.bits)
        self.max = int(i.max)
        self.min = int(i.min)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


@method
def stride(self, dim=None):
    """Element strides of the tensor's memory layout (0 along expanded dims). A traced value
    has no layout yet (the trace key has no strides): a graph break, as is_contiguous()."""
    if self._is_symbolic:
        self._value("stride() of a traced tensor")
    d = self._data
    st = tuple(int(s) // d.dtype.itemsize for s in d.strides) if type(d) is np.ndarray else \
        tuple(int(s) for s in d.strides)                # (CUDA arrays count elements)
    return st if dim is None else st[_norm_dim(dim, self.ndim)]


_TYPE_NAMES = {"bool": "Bool", "uint8": "Byte", "int8": "Char", "int16": "Short",
               "int32": "Int", "int64": "Long", "float16": "Half", "float32": "Float",
               "float64": "Double"}
_BY_TYPE_NAME = {v + "Tensor": k for k, v in _TYPE_NAMES.items()}


def type_(self, dtype=None, non_blocking=False):
    """No argument: the type name ('tracejit.FloatTensor'); else self converted to dtype (a
    dtype or a type name)."""
    if dtype is None:
        cuda = "cuda." if self.is_cuda else ""
        return f"tracejit.{cuda}{_TYPE_NAMES[self.dtype.name]}Tensor"
    if isinstance(dtype, str):
        base = dtype.split(".")[-1]
        if base in _BY_TYPE_NAME:
            out = self.to(_BY_TYPE_NAME[base])
            return out.cuda() if ".cuda." in dtype else out
    return self.to(dtype)


Tensor.type = type_
for _n, _d in (("byte", "uint8"), ("char", "int8"), ("short", "int16")):
    setattr(Tensor, _n, (lambda d: lambda self: self.to(d))(_d))


@both
def is_floating_point(self) -> bool:
    return self.dtype.is_floating_point


@function
def numel(input) -> int:
    return input.numel()


def _norm(self, p="fro", dim=None, keepdim=False, dtype=None):
    from .linalg import norm_method
    return norm_method(self, p, dim, keepdim, dtype)


_norm.__name__ = "norm"
both(_norm)
