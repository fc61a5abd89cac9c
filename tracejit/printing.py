"""A repr like PyTorch's: `tensor([1., 2.], requires_grad=True)`."""
from __future__ import annotations

import numpy as np


def _float_fmt(a: np.ndarray):
    """torch's _Formatter: one mode and one width for the whole tensor, from its nonzero finite
    values (integers print as `1.`, sci mode when the range exceeds 1e3 or leaves [1e-4, 1e8])."""
    v = a[np.isfinite(a)].astype(np.float64)
    v = np.abs(v[v != 0])
    if not v.size:
        return lambda x: f"{x:.0f}." if np.isfinite(x) else str(x)
    lo, hi = v.min(), v.max()
    if np.all(v == np.ceil(v)):
        sci = hi / lo > 1000.0 or hi > 1.0e8
        one = (lambda x: f"{x:.4e}") if sci else (lambda x: f"{x:.0f}.")
    else:
        sci = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        one = (lambda x: f"{x:.4e}") if sci else (lambda x: f"{x:.4f}")
    width = max(len(one(x)) for x in a[np.isfinite(a) & (a != 0)].astype(np.float64))
    return lambda x: one(x).rjust(width) if np.isfinite(x) else str(x).rjust(width)


def _summarized(a: np.ndarray) -> np.ndarray:
    """The elements a summarized print shows (3 at each end of every long axis)."""
    for ax in range(a.ndim):
        if a.shape[ax] > 6:
            a = np.concatenate([a.take(range(3), ax), a.take(range(-3, 0), ax)], ax)
    return a


def tensor_repr(t) -> str:
    if t._is_symbolic:
        return f"tensor(<traced {t.dtype.name}{list(t.shape)}>)"
    a = t._data if not t.is_cuda else t._data.copy_to_host()
    prefix = "tensor("
    opts = {"separator": ", ", "prefix": prefix, "threshold": 1000, "edgeitems": 3,
            "max_line_width": 81}
    if a.dtype.kind == "f" and a.size:
        opts["formatter"] = {"float_kind": _float_fmt(_summarized(a) if a.size > 1000 else a)}
    body = np.array2string(a, **opts) if a.size else "[]"
    body = body.replace(", ..., ", ",  ..., ")  # torch pads a summarized row's "..." by one
    extras = []
    if a.size == 0 and a.ndim != 1:
        extras.append(f"size={tuple(a.shape)}")
    if t.is_cuda:
        extras.append("device='cuda:0'")
    if a.dtype not in (np.float32, np.int64, np.bool_) or (a.size == 0 and a.dtype != np.float32):
        extras.append(f"dtype=tracejit.{t.dtype.name}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"
