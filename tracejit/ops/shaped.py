"""Op-table entries with their own shape rules: reductions, movement, indexing, matmul, sources.

Parameters are normalised by the dispatcher before they reach these entries (dims non-negative
and sorted, shapes fully resolved, index keys in the hashable template form below), so the same
params can be printed in the IR and used as cache keys.

Index key template: a tuple of items, one per key element:
  ("i", k)            integer index k (already non-negative and in range)
  ("s", a, b, step)   slice with non-negative bounds and positive step
  ("n",)              None (new axis)
  ("t", j)            the j-th index tensor input (integer, numpy advanced-indexing rules)
Ellipsis is expanded by the dispatcher.
"""
from __future__ import annotations

import numpy as np

from . import dtypes as D
from .base import Op, broadcast_shapes, register

# --- reductions ---


def _reduced_shape(shape, dims, keepdim):
    if keepdim:
        return tuple(1 if i in dims else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in dims)


def _keep_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _unreduce(g, x, dims, keepdim):
    """Gradient of a reduction, broadcast back to the input's shape."""
    if not keepdim:
        g = g.reshape(_keep_shape(x.shape, dims))
    return g.expand(x.shape)


def _sum_dtype(d):
    return D.int64 if (d.is_integer or d.is_bool) else d


def reduction(name, out_dtype, eager, vjp, saves=(), bool_ok=True, int_ok=True):
    def infer(xt, dims, keepdim):
        return _reduced_shape(xt[0], dims, keepdim), out_dtype(xt[1])
    return register(Op(name, "reduce", 1, infer=infer, eager=eager, vjp=vjp, saves=saves,
                       bool_ok=bool_ok, int_ok=int_ok, static=("dims", "keepdim")))


def _np_reduce(f, cast=None):
    def run(x, dims, keepdim):
        if x.size == 0 and f in (np.amax, np.amin):
            _check_nonempty(f.__name__[1:], x.shape, dims, len(dims) == x.ndim)
        kw = {"dtype": _sum_dtype(D.from_numpy_dtype(x.dtype)).np} if cast else {}
        # contiguous, as torch's (numpy keeps a permuted input's order: .view() would fail)
        return np.asarray(f(x, axis=dims, keepdims=keepdim, **kw), order="C")
    return run


def _check_nonempty(name, shape, dims, full):
    """max/min/argmax/argmin have no identity: a reduced dim of size 0 is an error (torch's)."""
    if full:
        raise (IndexError if name.startswith("arg") else RuntimeError)(
            f"{name}(): Expected reduction dim to be specified for input.numel() == 0 (input "
            f"shape {tuple(shape)}). Specify the reduction dim with the 'dim' argument.")
    for d in dims:
        if shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size "
                             f"(input shape {tuple(shape)}).")


def _prod_vjp(g, out, x, dims, keepdim):
    # d prod / dx_i = prod_{j != i} x_j, also when some x_j are zero
    zero = x == 0
    nz = x.where(~zero, 1.0)._op("prod", dims=dims, keepdim=True)
    nzeros = zero.to(g.dtype)._op("sum", dims=dims, keepdim=True)
    gk = _unreduce(g, x, dims, keepdim)
    other = (nz / x.where(~zero, 1.0)).where(nzeros == 0, 0.0)
    at_zero = nz.expand(x.shape).where(nzeros == 1, 0.0)
    return (gk * other.where(~zero, at_zero),)


def _extreme_vjp(g, out, x, dims, keepdim):
    # ties share the gradient evenly, as torch.amax/amin and full max()/min() do
    o = out if keepdim else out.reshape(_keep_shape(x.shape, dims))
    mask = (x == o).to(g.dtype)
    return (_unreduce(g, x, dims, keepdim) * mask / mask._op("sum", dims=dims, keepdim=True),)


reduction("sum", _sum_dtype, _np_reduce(np.sum, cast=True),
          lambda g, out, x, dims, keepdim: (_unreduce(g, x, dims, keepdim),))
reduction("prod", _sum_dtype, _np_reduce(np.prod, cast=True), _prod_vjp, saves=(0,))
reduction("amax", lambda d: d, _np_reduce(np.amax), _extreme_vjp, saves=(0, -1))
reduction("amin", lambda d: d, _np_reduce(np.amin), _extreme_vjp, saves=(0, -1))


def _logical_dtype(d):
    return d if d is D.uint8 else D.bool_       # torch keeps uint8 (its legacy masks)


def _np_logical(f):
    plain = _np_reduce(f)

    def run(x, dims, keepdim):
        out = plain(x, dims, keepdim)
        return out.astype(np.uint8) if x.dtype == np.uint8 else out
    return run


reduction("all", _logical_dtype, _np_logical(np.all), None)
reduction("any", _logical_dtype, _np_logical(np.any), None)


def _arg_infer(xt, dim, keepdim):
    if dim is None:
        return ((1,) * len(xt[0]) if keepdim else ()), D.int64
    return _reduced_shape(xt[0], (dim,), keepdim), D.int64


def _arg_eager(f):
    def run(x, dim, keepdim):
        if x.size == 0:
            _check_nonempty(f.__name__, x.shape, () if dim is None else (dim,), dim is None)
        if dim is None:
            r = f(x.reshape(-1))
            return np.asarray(r, dtype=np.int64).reshape((1,) * x.ndim if keepdim else ())
        return np.asarray(f(x, axis=dim, keepdims=keepdim), dtype=np.int64)
    return run


for _f in (np.argmax, np.argmin):
    register(Op(_f.__name__, "reduce", 1, infer=_arg_infer, eager=_arg_eager(_f), vjp=None,
                saves=(), static=("dim", "keepdim")))

# --- movement ---


def movement(name, infer, eager, vjp, nin=1, saves=(), static=()):
    return register(Op(name, "movement", nin, infer=infer, eager=eager, vjp=vjp, saves=saves,
                       static=static))


movement("reshape", lambda xt, shape: (tuple(shape), xt[1]), lambda x, shape: x.reshape(shape),
         lambda g, out, x, shape: (g.reshape(x.shape),), static=("shape",))
movement("permute", lambda xt, dims: (tuple(xt[0][d] for d in dims), xt[1]),
         lambda x, dims: x.transpose(dims),
         lambda g, out, x, dims: (g.permute(tuple(np.argsort(dims).tolist())),),
         static=("dims",))
# the engine sums a gradient back to its input's shape, so expand's vjp is the identity
movement("expand", lambda xt, shape: (tuple(shape), xt[1]),
         lambda x, shape: np.broadcast_to(x, shape), lambda g, out, x, shape: (g,),
         static=("shape",))
movement("flip", lambda xt, dims: (xt[0], xt[1]), lambda x, dims: np.flip(x, dims).copy(),
         lambda g, out, x, dims: (g.flip(dims),), static=("dims",))
# detach: identity on values, a gradient barrier (recorded only while tracing)
movement("detach", lambda xt: xt, lambda x: x, None)
movement("copy", lambda xt: xt, lambda x: np.array(x, copy=True, order="C"),
         lambda g, out, x: (g,))


def _cat_infer(*types, dim):
    first = types[0][0]
    for t in types[1:]:
        if len(t[0]) != len(first) or any(a != b for i, (a, b) in enumerate(zip(t[0], first))
                                           if i != dim):
            raise RuntimeError(f"cat(): sizes of tensors must match except in dimension {dim}; "
                               f"got shapes {first} and {t[0]}")
    shape = list(first)
    shape[dim] = sum(t[0][dim] for t in types)
    return tuple(shape), types[0][1]


def _cat_vjp(g, out, *xs, dim):
    grads, start = [], 0
    for x in xs:
        n = x.shape[dim]
        key = tuple(("s", 0, s, 1) if i != dim else ("s", start, start + n, 1)
                    for i, s in enumerate(g.shape))
        grads.append(g._op("index", key=key))
        start += n
    return tuple(grads)


movement("cat", _cat_infer, lambda *xs, dim: np.concatenate(xs, axis=dim), _cat_vjp, nin=-1,
         static=("dim",))

# --- indexing ---


def numpy_key(key: tuple, idx: tuple) -> tuple:
    """The template key with index tensors filled in, as numpy understands it."""
    out = []
    for k in key:
        tag = k[0]
        if tag == "i":
            out.append(k[1])
        elif tag == "s":
            out.append(slice(k[1], k[2], k[3]))
        elif tag == "n":
            out.append(None)
        else:
            out.append(idx[k[1]])
    return tuple(out)


def _index_infer(xt, *it, key):
    probe = np.broadcast_to(np.empty((), dtype=bool), xt[0])
    idx = tuple(np.broadcast_to(np.zeros((), np.int64), t[0]) for t in it)
    return probe[numpy_key(key, idx)].shape, xt[1]


def _index_vjp(g, out, x, *idx, key):
    base = g.new_zeros(x.shape)
    return (base._op("index_put", g, *idx, key=key, accumulate=True),) + (None,) * len(idx)


def _index_put_eager(base, value, *idx, key, accumulate):
    out = np.array(base, copy=True)
    k = numpy_key(key, idx)
    if accumulate and not idx:
        out[k] += value  # basic indexing never repeats an element: 15x faster than add.at
    elif accumulate:
        np.add.at(out, k, value)
    else:
        out[k] = value
    return out


def _index_put_vjp(g, out, base, value, *idx, key, accumulate):
    gb = g if accumulate else g._op("index_put", g.new_zeros(()), *idx, key=key,
                                    accumulate=False)
    return (gb, lambda: g._op("index", *idx, key=key)) + (None,) * len(idx)


register(Op("index", "index", -1, infer=_index_infer,
            # the trailing Ellipsis makes numpy return a 0-d view, not a scalar copy, when
            # every dim is indexed by an int (x[0].fill_(1) must write into x, as in PyTorch)
            eager=lambda x, *idx, key: x[numpy_key(key, idx) + (Ellipsis,)], vjp=_index_vjp,
            saves=tuple(range(1, 33)),
            static=("key",)))
register(Op("index_put", "index", -1, infer=lambda bt, vt, *it, key, accumulate: bt,
            eager=_index_put_eager, vjp=_index_put_vjp, saves=tuple(range(2, 34)),
            static=("key", "accumulate")))

# --- matmul ---


def _matmul_infer(at, bt):
    (a, da), (b, db) = at, bt
    if da is not db:
        raise RuntimeError(f"expected both matmul operands to have the same dtype, "
                           f"but got: {da.name} != {db.name}")
    if a[-1] != b[-2]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a[-2]}x{a[-1]} and "
                           f"{b[-2]}x{b[-1]})")
    batch = broadcast_shapes(a[:-2], b[:-2])
    return batch + (a[-2], b[-1]), da


register(Op("matmul", "matmul", 2, infer=_matmul_infer, eager=np.matmul,
            vjp=lambda g, out, a, b: (lambda: g @ b.mT, lambda: a.mT @ g), saves=(0, 1),
            bool_ok=False))

# --- sources ---
register(Op("full", "source", 0, infer=lambda shape, value, dtype: (tuple(shape),
                                                                    D.get_dtype(dtype)),
            eager=lambda shape, value, dtype: np.full(shape, value, D.get_dtype(dtype).np),
            vjp=None, saves=(), static=("shape", "value", "dtype")))
