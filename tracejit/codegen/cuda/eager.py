"""Eager CUDA: one op-table entry applied to device arrays (`run`), as `tensor.apply` needs it.

Elementwise ops and reductions become one-op kernels built the way the compiled path builds
them: a one-node graph goes through `ir.kernel.build_kernel` and `KernelRunner(runtime=True)`,
so the kernel is the op's `expr` over the CUDA vocabulary, with sizes and strides as arguments.
Before that, operands are broadcast to the output shape (stride 0) and dims that every operand
walks contiguously are merged, so most ops run as one flat loop and one kernel per (op, dtypes,
rank) serves every shape. Movement ops are views (array.py) or copies; argmax/argmin, indexing,
cat and matmul have their own kernels (indexing.py, matmul.py). Host 0-d arrays (Python scalars,
0-d CPU tensors) are scalar kernel arguments, as PyTorch lets 0-d CPU tensors meet CUDA ones.
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph, TensorType
from ...ir.kernel import build_kernel
from ...ops import REGISTRY, broadcast_shapes
from ...ops import dtypes as D
from ...ops.shaped import _check_nonempty
from . import array as A
from .kernels import KernelRunner

MIXED = ("Expected all tensors to be on the same device, but found at least two devices, "
         "cuda:0 and cpu!")
_runners: dict = {}
_CAST = REGISTRY["cast"]


def run(op, datas: list, params: dict):
    """op applied to `datas` (CudaArrays, host 0-d arrays; index ops also host index arrays)."""
    # (index tensors may stay on the host, as torch allows)
    check_devices(datas[:{"index": 1, "index_put": 2}.get(op.name, len(datas))])
    name = op.name
    if op.kind == "elementwise":
        return elementwise(op, datas, params)
    if name in ("sum", "prod", "amax", "amin", "all", "any"):
        return reduce(op, datas[0], **params)
    from . import indexing
    if name in ("argmax", "argmin"):
        return indexing.arg_extreme(name, datas[0], **params)
    if name in ("index", "index_put"):
        return getattr(indexing, name)(*datas, **params)
    if name == "cat":
        return indexing.cat(datas, **params)
    if name == "matmul":
        from .matmul import matmul
        return matmul(*datas)
    if op.kind == "movement":
        return movement(name, datas[0], params)
    if name == "full":
        return full(**params)
    raise NotImplementedError(f"{name}() has no CUDA implementation in tracejit")


def check_devices(datas) -> None:
    for d in datas:
        if isinstance(d, np.ndarray) and d.ndim:
            raise RuntimeError(MIXED)


def _dtype(a) -> D.DType:
    return D.from_numpy_dtype(a.dtype)


def collapse(shape: tuple, stride_lists: list) -> tuple:
    """Drop size-1 dims and merge neighbours that every operand walks contiguously."""
    dims = [i for i, n in enumerate(shape) if n != 1]
    if not dims:
        return (), [() for _ in stride_lists]
    out = [shape[dims[0]]]
    sts = [[s[dims[0]]] for s in stride_lists]
    for d in dims[1:]:
        n = shape[d]
        if all(st[-1] == s[d] * n for st, s in zip(sts, stride_lists)):
            out[-1] *= n
            for st, s in zip(sts, stride_lists):
                st[-1] = s[d]
        else:
            out.append(n)
            for st, s in zip(sts, stride_lists):
                st.append(s[d])
    return tuple(out), [tuple(s) for s in sts]


def _runner(key, build) -> KernelRunner:
    r = _runners.get(key)
    if r is None:
        r = _runners[key] = KernelRunner(build(), runtime=True)
    return r


def elementwise(op, datas: list, params: dict, out=None, shape=None):
    """out = op(*datas) broadcast to `shape` (default: the operands' broadcast shape)."""
    oshape = tuple(shape) if shape is not None else broadcast_shapes(*[d.shape for d in datas])
    if out is None:
        odt = op.infer(*[(d.shape, _dtype(d)) for d in datas], **params)[1]
        out = A.empty(oshape, odt.np)
    if out.size == 0:
        return out
    scal = tuple(not isinstance(d, A.CudaArray) for d in datas)
    views = [d if s else A.broadcast_to(d, oshape) for d, s in zip(datas, scal)]
    dev = [v for v, s in zip(views, scal) if not s]
    cshape, cst = collapse(oshape, [v.strides for v in dev] + [out.strides])
    it = iter(cst)
    ins = [v if s else A.view(v, cshape, next(it), v.offset) for v, s in zip(views, scal)]
    ov = A.view(out, cshape, next(it), out.offset)
    ins = [np.asarray(v) if s else v for v, s in zip(ins, scal)]
    dts = tuple(d.dtype.name for d in datas)
    key = ("ew", op.name, tuple(sorted(params.items())), dts, scal, len(cshape), out.dtype.name)

    def build():
        g = Graph("eager")
        ph = (2,) * len(cshape)         # placeholder sizes: none may be 1 (a broadcast dim)
        xs = [g.add_input(TensorType(() if s else ph, D.get_dtype(dt)), f"x{i}")
              for i, (dt, s) in enumerate(zip(dts, scal))]
        n = g.add(op.name, xs, params, TensorType(ph, D.get_dtype(out.dtype.name)))
        return build_kernel(f"e_{op.name}", [n], lambda _: True)
    _runner(key, build)(ins, outs=[ov], shape=cshape)
    return out


def reduce(op, x, dims: tuple, keepdim: bool):
    oshape, odt = op.infer((x.shape, _dtype(x)), dims=dims, keepdim=keepdim)
    if x.size == 0 and op.name in ("amax", "amin"):
        _check_nonempty(op.name, x.shape, dims, len(dims) == x.ndim)
    out = A.empty(oshape, odt.np)
    if out.size == 0:
        return out
    # merge neighbouring kept dims (and reduced dims) that x walks contiguously
    ax = [i for i, n in enumerate(x.shape) if n != 1]
    kinds, shape, strides = [], [], []
    for i in ax:
        kind = "r" if i in dims else "k"
        if kinds and kinds[-1] == kind and strides[-1] == x.strides[i] * x.shape[i]:
            shape[-1] *= x.shape[i]
            strides[-1] = x.strides[i]
        else:
            kinds.append(kind)
            shape.append(x.shape[i])
            strides.append(x.strides[i])
    if "r" not in kinds:                 # only size-1 dims reduced: one-element "rows"
        kinds.append("r")
        shape.append(1)
        strides.append(0)
    xv = A.view(x, shape, strides, x.offset)
    oview_shape = [1 if k == "r" else n for k, n in zip(kinds, shape)]
    ov = A.view(out, oview_shape, A.contiguous_strides(oview_shape), out.offset)
    rdims = tuple(i for i, k in enumerate(kinds) if k == "r")
    key = ("red", op.name, x.dtype.name, "".join(kinds))

    def build():
        g = Graph("eager")
        xi = g.add_input(TensorType((2,) * len(kinds), _dtype(x)), "x")
        p = {"dims": rdims, "keepdim": True}
        n = g.add(op.name, [xi], p, TensorType([1 if k == "r" else 2 for k in kinds], odt))
        return build_kernel(f"e_{op.name}", [n], lambda _: True)
    _runner(key, build)([xv], outs=[ov], shape=tuple(shape))
    return out


def movement(name: str, x, params: dict):
    if name == "reshape":
        v = A.reshape(x, params["shape"])
        return v if v is not None else A.reshape(copy(x), params["shape"])
    if name == "permute":
        return A.transpose(x, params["dims"])
    if name == "expand":
        return A.broadcast_to(x, params["shape"])
    if name == "flip":
        return copy(A.flip(x, params["dims"]))
    if name == "detach":
        return x
    if name == "copy":
        return copy(x)
    raise NotImplementedError(f"{name}() has no CUDA implementation in tracejit")


def copy(x):
    """A fresh C-contiguous copy."""
    return elementwise(_CAST, [x], {"dtype": x.dtype.name})


def copy_into(dst, src) -> None:
    """dst[...] = src (broadcast, cast to dst's dtype); dst may be any writeable view."""
    elementwise(_CAST, [src], {"dtype": dst.dtype.name}, out=dst, shape=dst.shape)


def add_into(dst, other) -> None:
    """dst += other, in place (the autograd engine accumulating .grad)."""
    if isinstance(other, np.ndarray) and other.ndim:
        raise RuntimeError(MIXED)
    elementwise(REGISTRY["add"], [dst, other], {}, out=dst, shape=dst.shape)


def full(shape, value, dtype):
    d = D.get_dtype(dtype)
    return elementwise(_CAST, [np.asarray(value, d.np)], {"dtype": d.name},
                       out=A.empty(shape, d.np), shape=shape)
