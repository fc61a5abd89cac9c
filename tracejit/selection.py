"""index_select, masked_select and scatter/scatter_add, written over the table's `index` and
`index_put` ops: scatter is index_put with gather's keys (index along `dim`, aranges along the
other dims), so its gradients (src: gather of the gradient; self: the gradient with the written
places zeroed, or whole for scatter_add) and its CUDA kernels come from index_put."""
from __future__ import annotations

from .inplace import inplace
from .methods import both, method
from .movement import negatives_out_of_range, out_of_range, position_keys
from .ops import REGISTRY as R
from .ops import dtypes as D
from .tensor import Tensor, _norm_dim, apply


@both
def index_select(self, dim, index):
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.dtype not in (D.int32, D.int64):
        raise RuntimeError(f"index_select(): Expected dtype int32 or int64 for index, but got "
                           f"{index.dtype.name}")
    d = _norm_dim(dim, self.ndim)
    x = self.reshape(1) if self.ndim == 0 else self
    n = x.shape[d]
    if out_of_range(index, n) is not None:
        raise IndexError("index out of range in self")
    index = negatives_out_of_range(index.reshape(-1).long(), n)
    out = x[(slice(None),) * d + (index,)]
    return out.reshape(()) if self.ndim == 0 else out


@both
def masked_select(self, mask):
    if not mask.dtype.is_bool:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {mask.dtype.name}")
    from .ops import broadcast_shapes
    shape = broadcast_shapes(tuple(self.shape), tuple(mask.shape))
    return self.expand(shape)[mask.expand(shape)]


def _scatter(self, dim, index, src, accumulate, name):
    d = _norm_dim(dim, self.ndim)
    if index.dtype not in (D.int32, D.int64):
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")
    if index.ndim != self.ndim and not (index.ndim <= 1 and self.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if not isinstance(src, Tensor):
        D.check_fill(src, self.dtype)
        src = self.new_full((), src)
    else:
        if src.dtype is not self.dtype:
            raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
        if src.ndim != index.ndim and src.ndim:
            raise RuntimeError("Index tensor must have the same number of dimensions as src "
                               "tensor")
    ishape = tuple(index.shape)
    for i, k in enumerate(ishape):
        too_big = (src.ndim and k > src.shape[i]) or (i != d and k > self.shape[i])
        if too_big:
            raise RuntimeError(f"Expected index {list(ishape)} to be smaller than self "
                               f"{list(self.shape)} apart from dimension {d} and to be smaller "
                               f"size than src {list(src.shape)}")
    if index.numel() == 0:
        return self.clone()
    x = self.reshape(1) if self.ndim == 0 else self
    index = index.reshape(1) if index.ndim == 0 else index
    n = x.shape[d]
    bad = out_of_range(index, n)
    if bad is not None:
        raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {n}")
    index = negatives_out_of_range(index.long(), n)
    if src.ndim:
        src = src.reshape(index.shape) if src.ndim != x.ndim else \
            src[tuple(slice(0, k) for k in index.shape)]
    keys = position_keys(index, d, x.ndim)
    out = apply(R["index_put"], x, src, *keys, key=tuple(("t", j) for j in range(x.ndim)),
                accumulate=accumulate)
    return out.reshape(()) if self.ndim == 0 else out


def _reduce_flag(reduce, name):
    if reduce is None:
        return False
    if reduce == "add":
        return True
    if reduce == "multiply":
        raise NotImplementedError(f"{name}(): reduce='multiply' is not supported by tracejit")
    raise RuntimeError(f"{name}(): reduce argument must be either add or multiply, got "
                       f"{reduce!r}")


@both
def scatter(self, dim, index, src=None, value=None, *, reduce=None):
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing the 'src' (or 'value') argument")
    return _scatter(self, dim, index, src, _reduce_flag(reduce, "scatter"), "scatter")


@both
def scatter_add(self, dim, index, src):
    return _scatter(self, dim, index, src, True, "scatter_add")


@method
def scatter_(self, dim, index, src=None, value=None, *, reduce=None):
    src = value if src is None else src
    return inplace(self, lambda t, i, s: t.scatter(dim, i, s, reduce=reduce), index, src)


@method
def scatter_add_(self, dim, index, src):
    return inplace(self, lambda t, i, s: t.scatter_add(dim, i, s), index, src)
