"""cumsum and cumprod (op-table entries in ops/external.py) with torch's arguments: a required
dim, negative dims, 0-d inputs, and dtype= (the input is cast first, and the result has that
dtype; without it integers and bools accumulate in int64)."""
from __future__ import annotations

from .inplace import inplace
from .methods import both, method
from .ops import REGISTRY as R
from .ops import dtypes as D
from .tensor import _norm_dim, apply


def _scan(name):
    op = R[name]

    def f(self, dim, *, dtype=None):
        d = _norm_dim(dim, self.ndim)
        x = self if dtype is None else self.to(dtype)
        out = apply(op, x.reshape(1), dim=0).reshape(()) if x.ndim == 0 else \
            apply(op, x, dim=d)
        return out if dtype is None or out.dtype is D.get_dtype(dtype) else out.to(dtype)
    f.__name__ = name
    return f


cumsum = both(_scan("cumsum"))
cumprod = both(_scan("cumprod"))


@method
def cumsum_(self, dim, *, dtype=None):
    return inplace(self, lambda t: t.cumsum(dim, dtype=dtype))


@method
def cumprod_(self, dim, *, dtype=None):
    return inplace(self, lambda t: t.cumprod(dim, dtype=dtype))


