"""CUDA kernels for what is not elementwise or a reduction: advanced indexing (`index`, gather)
and `index_put` (scatter, atomically accumulated), argmax/argmin, and `cat`.

Advanced indexing follows numpy's rule: integers become 0-d index arrays once an index array is
present; the broadcast index dims replace the indexed dims where the advanced indices are
adjacent, else they go first. Slices and None are applied first as a view, so the kernel only
maps each output element to (view offset + sum of index values x view strides). Index arrays may
live on the host (PyTorch accepts CPU indices for CUDA tensors): they are copied over. An index
out of range sets an error flag instead of reading out of bounds; it is raised as numpy's
IndexError at the next synchronisation (array.check_index_errors), as CUDA reports its asserts.
"""
from __future__ import annotations

import numpy as np

from ...ops import broadcast_shapes
from ...ops.shaped import _check_nonempty, numpy_key
from . import array as A
from .eager import add_into, copy, copy_into
from .launch import launcher
from .loader import load
from .scalar import CTOR, Emitter

_kernels: dict = {}


def _grid(total: int) -> tuple:
    block = 8 if A.SIM else 256
    return max(1, min(-(-total // block), A.sm_count() * (1 if A.SIM else 32))), block


def _kernel(key, make):
    k = _kernels.get(key)
    if k is None:
        src, name = make()
        k = _kernels[key] = load(src, name)
    return k


def _as_index(a):
    a = A.from_host(np.asarray(a)) if not isinstance(a, A.CudaArray) else a
    return a if a.dtype.kind in "iu" else None


def _plan(x, key: tuple, idx: list) -> tuple:
    """(view V of x, output shape, roles): roles[d] = ("v", view dim) or ("b", bcast dim),
    and adv: per advanced index (array, view dim)."""
    items, arrays = [], []
    for k in key:
        if k[0] == "i":
            items.append(("t", len(arrays)))
            arrays.append(np.asarray(k[1], np.int64))
        elif k[0] == "t":
            items.append(("t", len(arrays)))
            arrays.append(idx[k[1]])
        else:
            items.append(k)
    vkey = tuple(slice(None) if it[0] == "t" else numpy_key((it,), ())[0] for it in items)
    v = A.basic_index(x, vkey)
    vdims = list(range(len(items)))       # every item keeps one dim of the view
    advpos = [i for i, it in enumerate(items) if it[0] == "t"]
    bshape = broadcast_shapes(*[tuple(a.shape) for a in arrays])
    adjacent = advpos == list(range(advpos[0], advpos[-1] + 1))
    basic = [("v", vdims[i]) for i, it in enumerate(items) if it[0] != "t"]
    bcast = [("b", j) for j in range(len(bshape))]
    if adjacent:
        nb = sum(1 for i in range(advpos[0]) if items[i][0] != "t")
        roles = basic[:nb] + bcast + basic[nb:]
    else:
        roles = bcast + basic
    shape = tuple(v.shape[r[1]] if r[0] == "v" else bshape[r[1]] for r in roles)
    adv = []
    for i in advpos:
        a = _as_index(arrays[items[i][1]])
        if a is None:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        adv.append((A.broadcast_to(a, bshape), vdims[i]))
    return v, shape, roles, adv


def _source(name: str, roles: list, adv: list, dt: str, mode: str) -> str:
    """mode: gather (y[i] = x[off]), put (x[off] = y[i]) or add (atomic x[off] += y[i])."""
    nd, nb = len(roles), sum(1 for r in roles if r[0] == "b")
    ps = ["xb", "xo", "yb", "yo", "err"] + [f"n{d}" for d in range(nd)] + \
        [f"ys{d}" for d in range(nd)] + [f"xs{d}" for d, r in enumerate(roles) if r[0] == "v"]
    for j, (a, _) in enumerate(adv):
        ps += [f"ib{j}", f"io{j}", f"lim{j}", f"xa{j}"] + [f"is{j}_{b}" for b in range(nb)]
    em = Emitter(1)
    em.line("i = i8(cuda.blockIdx.x) * i8(cuda.blockDim.x) + i8(cuda.threadIdx.x)")
    em.line("total = " + " * ".join(f"n{d}" for d in range(nd)) if nd else "total = 1")
    with em.block("while i < total:"):
        em.line("q = i")
        for d in reversed(range(nd)):
            em.line(f"x{d} = q % n{d}")
            em.line(f"q = q // n{d}")
        em.line("off = xo" + "".join(f" + x{d} * xs{d}" for d, r in enumerate(roles)
                                     if r[0] == "v"))
        em.line("ok = True")
        bdim = [d for d, r in enumerate(roles) if r[0] == "b"]
        for j, (a, _) in enumerate(adv):
            addr = f"io{j}" + "".join(f" + x{d} * is{j}_{b}" for b, d in enumerate(bdim))
            em.line(f"t = i8(ib{j}[{addr}])")
            em.line(f"t = t + lim{j} if t < 0 else t")
            em.line(f"ok = ok and t >= 0 and t < lim{j}")
            em.line(f"off = off + (t if ok else i8(0)) * xa{j}")
        em.line("yoff = yo" + "".join(f" + x{d} * ys{d}" for d in range(nd)))
        with em.block("if ok:"):
            em.line({"gather": "yb[yoff] = xb[off]", "put": "xb[off] = yb[yoff]",
                     "add": "cuda.atomic.add(xb, off, yb[yoff])",
                     "or": "xb[off] = xb[off] | yb[yoff]"}[mode])
        with em.block("else:"):
            em.line("err[0] = 1")
            if mode == "gather":
                em.line(f"yb[yoff] = {CTOR[dt]}(0)")
        em.line("i += i8(cuda.gridDim.x) * i8(cuda.blockDim.x)")
    return f"def {name}({', '.join(ps)}):\n" + em.text()


def _launch(mode: str, v, y, roles, adv) -> None:
    shape = y.shape
    if y.size == 0:
        return
    key = ("adv", mode, v.dtype.name, tuple(r[0] for r in roles),
           tuple(a.dtype.name for a, _ in adv))
    name = f"{mode}_{len(_kernels)}"
    k = _kernel(key, lambda: (_source(name, roles, adv, v.dtype.name, mode), name))
    err = A.index_error_flag()
    args = [v.buf, v.offset, y.buf, y.offset, err.buf] + list(shape) + list(y.strides) + \
        [v.strides[r[1]] for r in roles if r[0] == "v"]
    for a, vd in adv:
        args += [a.buf, a.offset, v.shape[vd], v.strides[vd]] + list(a.strides)
    launcher(k, *_grid(y.size))(*args)


def index(x, *idx, key):
    if not idx and all(k[0] != "t" for k in key):
        return A.basic_index(x, numpy_key(key, ()))
    v, shape, roles, adv = _plan(x, key, list(idx))
    y = A.empty(shape, x.dtype)
    _launch("gather", v, y, roles, adv)
    return y


def index_put(base, value, *idx, key, accumulate, in_place=False):
    """A copy of base with value written (or added) at key; `in_place`: base itself (the
    compiled path, when base is a temporary nothing else reads)."""
    out = base if in_place else copy(base)
    if not idx and all(k[0] != "t" for k in key):
        view = A.basic_index(out, numpy_key(key, ()))
        (add_into if accumulate else copy_into)(view, value)
        return out
    v, shape, roles, adv = _plan(out, key, list(idx))
    if isinstance(value, A.CudaArray) and value.dtype == out.dtype:
        vals = A.broadcast_to(value, shape)
    else:
        vals = A.empty(shape, out.dtype)
        copy_into(vals, value)
    mode = ("or" if out.dtype == np.bool_ else "add") if accumulate else "put"
    _launch(mode, v, vals, roles, adv)
    return out


def cat(datas: list, dim: int):
    shape = list(datas[0].shape)
    shape[dim] = sum(d.shape[dim] for d in datas)
    out = A.empty(shape, datas[0].dtype)
    start = 0
    for d in datas:
        key = tuple(slice(None) if i != dim else slice(start, start + d.shape[dim])
                    for i in range(len(shape)))
        copy_into(A.basic_index(out, key), d)
        start += d.shape[dim]
    return out


def arg_extreme(name: str, x, dim, keepdim: bool):
    if x.size == 0:
        _check_nonempty(name, x.shape, () if dim is None else (dim,), dim is None)
    if dim is None:
        rows, n = 1, x.size
        x2 = A.reshape(x, (1, n)) or A.reshape(copy(x), (1, n))
        oshape = (1,) * x.ndim if keepdim else ()
    else:
        perm = [d for d in range(x.ndim) if d != dim] + [dim]
        xt = A.transpose(x, perm)
        n = x.shape[dim]
        rows = x.size // max(n, 1)
        x2 = A.reshape(xt, (rows, n)) or A.reshape(copy(xt), (rows, n))
        oshape = tuple(1 if d == dim else s for d, s in enumerate(x.shape)) if keepdim else \
            tuple(s for d, s in enumerate(x.shape) if d != dim)
    y = A.empty(oshape, np.int64)
    if rows == 0:
        return y
    by = 4 if A.SIM else 256
    dt = x.dtype.name
    k = _kernel(("arg", name, dt), lambda: (_arg_source(name, dt, by), f"{name}_{dt}"))
    launcher(k, (min(rows, 2 if A.SIM else 1 << 20), 1), (by, 1))(
        x2.buf, x2.offset, x2.strides[0], x2.strides[1], y.buf, rows, n)
    return y


def _arg_source(name: str, dt: str, by: int) -> str:
    """One block per row; each lane keeps its best (value, index), lanes then combine in shared
    memory: greater (argmax) or smaller wins, NaN beats numbers, ties keep the lower index."""
    c = CTOR[dt]
    cmp = ">" if name == "argmax" else "<"
    npd = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32",
           "int64": "np.int64", "bool": "np.bool_"}[dt]

    def better(v, i, bv, bi):
        return (f"({bi} < 0 or ({i} >= 0 and (({v} {cmp} {bv}) or ({v} != {v} and {bv} == {bv})"
                f" or (({v} == {bv} or ({v} != {v} and {bv} != {bv})) and {i} < {bi}))))")
    return f"""def {name}_{dt}(xb, xo, sr, sc, yb, rows, n):
    shv = cuda.shared.array({by}, {npd})
    shi = cuda.shared.array({by}, np.int64)
    ty = i8(cuda.threadIdx.x)
    row = i8(cuda.blockIdx.x)
    while row < rows:
        bv = {c}(0)
        bi = i8(-1)
        r = ty
        while r < n:
            v = {c}(xb[xo + row * sr + r * sc])
            if {better('v', 'r', 'bv', 'bi')}:
                bv = v
                bi = r
            r += {by}
        shv[ty] = bv
        shi[ty] = bi
        cuda.syncthreads()
        w = {by // 2}
        while w > 0:
            if ty < w:
                v = shv[ty + w]
                i = shi[ty + w]
                if {better('v', 'i', 'shv[ty]', 'shi[ty]')}:
                    shv[ty] = v
                    shi[ty] = i
            cuda.syncthreads()
            w //= 2
        if ty == 0:
            yb[row] = shi[0]
        cuda.syncthreads()
        row += i8(cuda.gridDim.x)
"""
