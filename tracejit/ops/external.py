"""Op-table entries that only numpy computes: scans (cumsum, cumprod), the sort permutation
(argsort) and atan2 (the scalar vocabulary has no arctangent).

They have no scalar expression, so they never fuse: compiled code runs them between kernels
through `eager`, like matmul, and a CUDA tensor gets eager CUDA's "no CUDA implementation"
error. Sorting has no derivative of its own: values are gathered with the indices (methods),
so their gradient is gather's. Params arrive normalised (dim non-negative, input at least 1-d).
"""
from __future__ import annotations

import numpy as np

from . import dtypes as D
from .base import Op, broadcast_shapes, register


def _scan_dtype(d):
    return D.int64 if (d.is_integer or d.is_bool) else d    # as torch: integer scans widen


def _scan(f):
    def run(x, dim):
        return np.asarray(f(x, axis=dim, dtype=_scan_dtype(D.from_numpy_dtype(x.dtype)).np))
    return run


def _rev_cumsum(g, dim):
    return g.flip((dim,))._op("cumsum", dim=dim).flip((dim,))


def _cumprod_vjp(g, out, x, dim):
    """d out_j / d x_i = prod_{k <= j, k != i} x_k, also with zeros (as torch). Before the
    first zero of a row x_i != 0, so the gradient is sum_{j >= i} g_j out_j / x_i; at the first
    zero z it is prod_{k < z} x_k * sum_{j >= z} g_j prod_{z < k <= j} x_k; after it, 0 (every
    product contains x_z). Written with ops, so it differentiates again and traces."""
    zero = x == 0
    seen = zero.long()._op("cumsum", dim=dim)               # zeros up to and including i
    before = seen == 0
    first = zero & (seen == 1)
    one = x.new_ones(())
    safe = x.where(before, one)
    plain = _rev_cumsum(g * out, dim) / safe
    lead = safe._op("cumprod", dim=dim)                      # prod of x_k, k < z, at z
    tail = x.where(~before & ~first, one)._op("cumprod", dim=dim)
    at_zero = lead * _rev_cumsum((g * tail).where(~before, 0.0), dim)
    return (plain.where(before, at_zero.where(first, 0.0)),)


register(Op("cumsum", "scan", 1, infer=lambda xt, dim: (xt[0], _scan_dtype(xt[1])),
            eager=_scan(np.cumsum), vjp=lambda g, out, x, dim: (_rev_cumsum(g, dim),),
            saves=(), static=("dim",)))
register(Op("cumprod", "scan", 1, infer=lambda xt, dim: (xt[0], _scan_dtype(xt[1])),
            eager=_scan(np.cumprod), vjp=_cumprod_vjp, saves=(0, -1), static=("dim",)))


def _argsort(x, dim, descending, stable):
    """Stable in both directions (a valid order for stable=False too). NaN sorts as larger
    than +inf, as in torch: last ascending, first descending."""
    if not descending:
        return np.argsort(x, axis=dim, kind="stable").astype(np.int64)
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        keys = (np.where(nan, 0, -x), ~nan)              # lexsort: the last key is primary
    else:
        keys = (~x,)        # order-reversing for bool, signed and unsigned ints (no overflow)
    return np.lexsort(keys, axis=dim).astype(np.int64)


register(Op("argsort", "sort", 1, infer=lambda xt, dim, descending, stable: (xt[0], D.int64),
            eager=_argsort, vjp=None, saves=(), static=("dim", "descending", "stable")))


def _atan2_vjp(g, out, y, x):
    r = x * x + y * y
    safe = r.where(r != 0, 1.0)         # torch: 0 where x = y = 0 (r = 0), not 0 / 0
    return (lambda: g * x / safe, lambda: -g * y / safe)


register(Op("atan2", "binary", 2,
            infer=lambda yt, xt: (broadcast_shapes(yt[0], xt[0]), yt[1]),
            eager=np.arctan2, vjp=_atan2_vjp, saves=(0, 1)))
