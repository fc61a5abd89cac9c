"""A repr like PyTorch's: `tensor([1., 2.], requires_grad=True)`."""
from __future__ import annotations

import numpy as np


def _float_fmt(a: np.ndarray):
    finite = a[np.isfinite(a)]
    if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e8:
        return lambda v: (f"{v:.0f}." if np.isfinite(v) else str(v))
    if finite.size and (np.abs(finite).max() >= 1e8 or
                        (np.abs(finite[finite != 0]).min(initial=1) < 1e-4)):
        return lambda v: f"{v:.4e}"
    return lambda v: f"{v:.4f}"


def tensor_repr(t) -> str:
    if t._is_symbolic:
        return f"tensor(<traced {t.dtype.name}{list(t.shape)}>)"
    a = t._data
    prefix = "tensor("
    opts = {"separator": ", ", "prefix": prefix, "threshold": 1000, "edgeitems": 3}
    if a.dtype.kind == "f" and a.size:
        opts["formatter"] = {"float_kind": _float_fmt(a)}
    body = np.array2string(a, **opts) if a.size else "[]"
    extras = []
    if a.dtype not in (np.float32, np.int64, np.bool_) or a.size == 0 and a.dtype != np.float32:
        extras.append(f"dtype=tracejit.{t.dtype.name}")
    if a.size == 0 and a.ndim != 1:
        extras.append(f"size={tuple(a.shape)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"
