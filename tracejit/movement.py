"""Shape and movement methods (reshape, view, permute, expand, cat, split, gather, pad, ...) and
matmul with PyTorch's 1-D and batch-broadcast rules, all in terms of the table's movement,
index and matmul ops."""
from __future__ import annotations

import numpy as np

from .methods import both, function, method
from .ops import REGISTRY as R
from .ops import dtypes as D
from .tensor import Tensor, _norm_dim, apply, norm_dims


def _sizes(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(int(a) for a in args)


def _resolve(shape: tuple, numel: int, src_shape) -> tuple:
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"invalid shape dimension {s}")
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel} "
                           f"(input shape {list(src_shape)})")
    return shape


@both
def reshape(self, *shape):
    shape = _resolve(_sizes(shape), self.numel(), self.shape)
    if shape == tuple(self.shape):
        return self if not self.requires_grad else apply(R["reshape"], self, shape=shape)
    return apply(R["reshape"], self, shape=shape)


@method
def view(self, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)):
        return _view_dtype(self, shape[0])
    shape = _resolve(_sizes(shape), self.numel(), self.shape)
    if not self._is_symbolic:
        # numpy says whether the strides allow it (a CUDA array: its host stand-in)
        probe = self._data.view() if type(self._data) is np.ndarray else \
            np.lib.stride_tricks.as_strided(np.empty(1, self._data.dtype), self.shape,
                                            [st * self._data.dtype.itemsize
                                             for st in self._data.strides])
        try:
            probe.shape = shape
        except AttributeError:
            raise RuntimeError(
                f"view size is not compatible with input tensor's size and stride (at least one "
                f"dimension spans across two contiguous subspaces); shape {list(self.shape)} -> "
                f"{list(shape)}. Use .reshape(...) instead.") from None
    return apply(R["reshape"], self, shape=shape)


def _view_dtype(self, dtype):
    """The same bytes read as another dtype (torch's view(dtype)): a view sharing memory, not
    a conversion. Eager CPU only (traced, it is a graph break)."""
    d = D.get_dtype(dtype)
    if self._is_symbolic:
        self._value("view(dtype) of a traced tensor")
    if self.is_cuda:
        raise NotImplementedError("view(dtype) of a CUDA tensor is not supported by tracejit; "
                                  "view it on the CPU (.cpu()) or convert with .to(dtype)")
    if d is not self.dtype and self.requires_grad:
        raise RuntimeError("view(dtype) of a tensor that requires grad is not differentiable; "
                           "detach() it first")
    try:
        arr = self._data.view(d.np)
    except ValueError as e:
        raise RuntimeError(f"view(dtype): {e}") from None
    base = self._base if self._base is not None else self
    return Tensor._make(arr, False, None, self._version, base)


@method
def view_as(self, other):
    return self.view(other.shape)


@method
def reshape_as(self, other):
    return self.reshape(other.shape)


@both
def flatten(self, start_dim=0, end_dim=-1):
    if self.ndim == 0:
        return self.reshape(1)
    s, e = _norm_dim(start_dim, self.ndim), _norm_dim(end_dim, self.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = tuple(self.shape)
    return self.reshape(shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


@both
def unflatten(self, dim, sizes):
    d = _norm_dim(dim, self.ndim)
    shape = tuple(self.shape)
    sizes = _resolve(tuple(sizes), shape[d], (shape[d],))
    return self.reshape(shape[:d] + sizes + shape[d + 1:])


@both
def unsqueeze(self, dim):
    d = _norm_dim(dim, self.ndim + 1)
    shape = tuple(self.shape)
    return apply(R["reshape"], self, shape=shape[:d] + (1,) + shape[d:])


@both
def squeeze(self, dim=None):
    shape = tuple(self.shape)
    dims = norm_dims(dim, self.ndim) if dim is not None else tuple(range(self.ndim))
    new = tuple(n for i, n in enumerate(shape) if not (i in dims and n == 1))
    if new == shape:
        return self
    return apply(R["reshape"], self, shape=new)


@both
def permute(self, *dims):
    dims = _sizes(dims)
    if len(dims) != self.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {self.ndim} is not equal to len(dims) = {len(dims)}")
    nd = tuple(_norm_dim(d, self.ndim) for d in dims)
    if len(set(nd)) != len(nd):
        raise RuntimeError(f"permute(): duplicate dims are not allowed: {dims}")
    if nd == tuple(range(self.ndim)):
        return self
    return apply(R["permute"], self, dims=nd)


@both
def transpose(self, dim0, dim1):
    if self.ndim < 2 and self.ndim == 0:
        return self
    a, b = _norm_dim(dim0, self.ndim), _norm_dim(dim1, self.ndim)
    dims = list(range(self.ndim))
    dims[a], dims[b] = dims[b], dims[a]
    return self.permute(dims)


Tensor.swapaxes = Tensor.transpose


@both
def t(self):
    if self.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
    return self.transpose(0, 1) if self.ndim == 2 else self


Tensor.T = property(lambda self: self.permute(tuple(range(self.ndim))[::-1]))
def _mT(self):
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got "
                           f"{self.ndim}-D tensor.")
    return self.transpose(-2, -1)


Tensor.mT = property(_mT)


@method
def expand(self, *sizes):
    sizes = _sizes(sizes)
    if len(sizes) < self.ndim:
        raise RuntimeError(f"expand(): the number of sizes provided ({len(sizes)}) must be "
                           f"greater or equal to the number of dimensions in the tensor "
                           f"({self.ndim})")
    shape = tuple(self.shape)
    lead = len(sizes) - len(shape)
    out = []
    for i, s in enumerate(sizes):
        cur = shape[i - lead] if i >= lead else None
        if s == -1:
            if cur is None:
                raise RuntimeError("expand(): -1 is not allowed in a leading, non-existing "
                                   "dimension")
            s = cur
        elif cur is not None and cur != 1 and cur != s:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing "
                               f"size ({cur}) at non-singleton dimension {i}.  Target sizes: "
                               f"{list(sizes)}.  Tensor sizes: {list(shape)}")
        out.append(s)
    out = tuple(out)
    if out == shape:
        return self
    return apply(R["expand"], self, shape=out)


@method
def expand_as(self, other):
    return self.expand(other.shape)


@function
def broadcast_to(input, shape):
    return input.expand(shape)


@both
def repeat(self, *sizes):
    sizes = _sizes(sizes)
    if len(sizes) < self.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    x = self.reshape((1,) * (len(sizes) - self.ndim) + tuple(self.shape))
    inter, full = [], []
    for r, n in zip(sizes, x.shape):
        inter += [1, n]
        full += [r, n]
    out = x.reshape(inter).expand(full)
    return out.reshape([r * n for r, n in zip(sizes, x.shape)])


@both
def flip(self, dims):
    if self.ndim == 0:          # torch takes dim 0 or -1 of a 0-d tensor: nothing to flip
        norm_dims(dims if isinstance(dims, (list, tuple)) else (dims,), 1)
        return self.clone()
    dims = norm_dims(dims if isinstance(dims, (list, tuple)) else (dims,), self.ndim)
    return apply(R["flip"], self, dims=dims)


@both
def narrow(self, dim, start, length):
    d = _norm_dim(dim, self.ndim)
    n = self.shape[d]
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got "
                         f"{start})")
    if start < 0:
        start += n
    if not (0 <= length and start + length <= n):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    key = (slice(None),) * d + (slice(start, start + length),)
    return self[key]


@both
def split(self, split_size_or_sections, dim=0):
    if self.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = _norm_dim(dim, self.ndim)
    n = self.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {n}")
        # (an empty dim splits into one empty piece, as in torch)
        sizes = [s] * (n // s) + ([n % s] if n % s else []) if s and n else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got split_sizes="
                               f"{sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(self.narrow(d, start, s))
        start += s
    return tuple(out)


@both
def chunk(self, chunks, dim=0):
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    if self.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    d = _norm_dim(dim, self.ndim)
    n = self.shape[d]
    if not n:                   # torch: `chunks` empty pieces
        return tuple(self.narrow(d, 0, 0) for _ in range(chunks))
    return self.split(-(-n // chunks), dim)


@function
def cat(tensors, dim=0):
    tensors = [t for t in tensors]
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if isinstance(t, Tensor) and t.ndim == 0:
            raise RuntimeError(f"cat(): zero-dimensional tensor (at position {i}) cannot be "
                               f"concatenated; use stack() or unsqueeze it first")
    full = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
    if full and len(full) < len(tensors):
        # torch skips legacy empty 1-D tensors (`acc = tensor([]); acc = cat([acc, x])`);
        # their dtype still takes part in the result's
        dt = tensors[0].dtype
        for t in tensors[1:]:
            dt = D.promote_types(dt, t.dtype)
        return cat([t.to(dt) for t in full], dim)
    nd = tensors[0].ndim
    d = _norm_dim(dim, nd)
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = D.promote_types(dt, t.dtype)
    tensors = [t.to(dt) for t in tensors]
    for i, t in enumerate(tensors):
        if t.ndim != nd:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {nd} and "
                               f"{t.ndim}")
        for j in range(nd):
            if j != d and t.shape[j] != tensors[0].shape[j]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {tensors[0].shape[j]} but got size "
                                   f"{t.shape[j]} for tensor number {i} in the list (shapes "
                                   f"{list(tensors[0].shape)} and {list(t.shape)}).")
    return apply(R["cat"], *tensors, dim=d)



@function
def concat(tensors, dim=0):
    return cat(tensors, dim)


@function
def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shape = tuple(tensors[0].shape)
    for i, t in enumerate(tensors[1:], 1):  # (not list.index: that would call Tensor.__eq__)
        if tuple(t.shape) != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(shape)}"
                               f" at entry 0 and {list(t.shape)} at entry {i}")
    d = _norm_dim(dim, len(shape) + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


@both
def gather(self, dim, index):
    """out[i][j][k] = self[i][index[i][j][k]][k] (for dim=1), via advanced indexing. Unlike
    an index, a negative entry is out of range (torch), not counted from the end."""
    if self.ndim == 0 and index.ndim == 0:      # torch treats both as 1-d of one element
        _norm_dim(dim, 1)
        return gather(self.reshape(1), 0, index.reshape(1)).reshape(())
    same_device(self, index, "gather")
    if index.dtype not in (D.int64, D.int32):
        raise RuntimeError(f"gather(): Expected dtype int32/int64 for index, got "
                           f"{index.dtype.name}")
    d = _norm_dim(dim, self.ndim)
    if index.ndim != self.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    n = self.shape[d]
    for i in range(self.ndim):
        if i != d and index.shape[i] > self.shape[i]:
            raise RuntimeError(f"Size does not match at dimension {i} expected index "
                               f"{list(index.shape)} to be no larger than self "
                               f"{list(self.shape)} apart from dimension {d}")
    bad = out_of_range(index, n)
    if bad is not None:
        raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {n}")
    index = negatives_out_of_range(index, n)
    return self[tuple(position_keys(index, d, self.ndim))]


def position_keys(index, d: int, ndim: int) -> list:
    """Advanced-index keys addressing, for each position of `index`, the element along dim d
    that it names and its own position along the other dims (gather's and scatter's keys; the
    aranges broadcast against index)."""
    from .factories import arange
    keys = []
    for i in range(ndim):
        if i == d:
            keys.append(index)
        else:
            shp = [1] * ndim
            shp[i] = index.shape[i]
            keys.append(arange(index.shape[i], device=index.device).reshape(shp))
    return keys


def _checked_here(index) -> bool:
    """Whether index's values are on the host now (eager CPU, not being traced)."""
    from .tensor import _tracer
    return type(index._data) is np.ndarray and not _tracer["active"]


def negatives_out_of_range(index, n: int):
    """index, or, traced or on the GPU (no host values to check), index with its negative
    entries made n: the index op's own bounds check (an IndexError where it is checked) then
    reports them, where it would count them from the end."""
    return index if _checked_here(index) else index.where(index >= 0, n)


def out_of_range(index, n: int, skip=None):
    """The first entry of an integer tensor outside [0, n) (entries equal to `skip` aside),
    when its values can be checked on the host; else None."""
    if not _checked_here(index) or index._data.size == 0:
        return None
    v = index._data
    bad = (v < 0) | (v >= n)
    if skip is not None:
        bad &= v != skip
    return int(v[bad].flat[0]) if bad.any() else None


def same_device(t, index, what: str) -> None:
    """gather and embedding take their index on the data's device (torch's error; indexing
    `x[idx]` accepts a CPU index for CUDA data)."""
    if index.ndim and index.device != t.device:
        raise RuntimeError(f"Expected all tensors to be on the same device, but got index is on "
                           f"{index.device}, different from other tensors on {t.device} (when "
                           f"checking argument for argument index in {what})")


@both
def take_along_dim(input, indices, dim=None):
    """torch.take_along_dim: gather along `dim` with input and indices broadcast against each
    other on the other dims (dim None: both flattened); negative indices count from the end."""
    if dim is None:
        input, indices, dim = input.reshape(-1), indices.reshape(-1), 0
    if input.ndim != indices.ndim:
        raise RuntimeError(f"take_along_dim(): input and indices should have the same number "
                           f"of dimensions, but got {input.ndim} and {indices.ndim}")
    d = _norm_dim(dim, input.ndim)
    shape = [max(a, b) if i != d else None for i, (a, b) in
             enumerate(zip(input.shape, indices.shape))]
    for i, (a, b) in enumerate(zip(input.shape, indices.shape)):
        if i != d and a != b and 1 not in (a, b):
            raise RuntimeError(f"take_along_dim(): input {tuple(input.shape)} and indices "
                               f"{tuple(indices.shape)} do not broadcast at dim {i}")
    n = input.shape[d]
    indices = indices.where(indices >= 0, indices + n)
    return input.expand(*[s if s is not None else -1 for s in shape]).gather(
        d, indices.expand(*[s if s is not None else -1 for s in shape]))


@function
def pad(input, pad, mode="constant", value=0.0):
    if value is None:               # torch: None pads with 0
        value = 0.0
    if mode != "constant":
        raise NotImplementedError(f"pad(): mode '{mode}' is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number "
                           f"of dimensions; got {len(pad)} for a {input.ndim}-D input")
    shape = list(input.shape)
    key = [slice(None)] * input.ndim
    x = input
    for i in range(len(pad) // 2):
        d = input.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if lo < 0 or hi < 0:  # negative padding crops
            x = x.narrow(d, -lo if lo < 0 else 0, x.shape[d] - builtins_abs(min0(lo)) -
                         builtins_abs(min0(hi)))
            lo, hi = max0(lo), max0(hi)
        shape[d] = x.shape[d] + lo + hi
        key[d] = slice(lo, lo + x.shape[d])
    for d in range(input.ndim - len(pad) // 2):
        shape[d] = x.shape[d]
    out = x.new_full(shape, value)
    from .ops import REGISTRY
    from .indexing import parse_key
    template, _, _ = parse_key(tuple(shape), tuple(key))
    return apply(REGISTRY["index_put"], out, x, key=template, accumulate=False)


def min0(v):
    return v if v < 0 else 0


def max0(v):
    return v if v > 0 else 0


def builtins_abs(v):
    return v if v >= 0 else -v


# --- matmul ---


@both
def matmul(self, other):
    a, b = self, other
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {b.ndim}D")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected both matmul operands to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name}")
    if a.dtype.is_bool:
        raise NotImplementedError("matmul(): not implemented for bool tensors; convert with "
                                  ".int() or .float() first")
    sa = a.ndim == 1
    sb = b.ndim == 1
    if sa:
        a = a.unsqueeze(0)
    if sb:
        b = b.unsqueeze(1)
    if a.shape[-1] != b.shape[-2]:
        if sa and sb:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{self.shape[0]}] and "
                               f"src [{other.shape[0]}] to have the same number of elements")
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a.shape[-2]}x"
                           f"{a.shape[-1]} and {b.shape[-2]}x{b.shape[-1]})")
    from .ops import broadcast_shapes
    broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))      # torch's RuntimeError
    out = apply(R["matmul"], a, b)
    if sa and sb:
        return out.reshape(())
    if sa:
        return out.squeeze(-2)
    if sb:
        return out.squeeze(-1)
    return out


Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)


@both
def mm(self, mat2):
    if self.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm(): expected 2D tensors, got {self.ndim}D and {mat2.ndim}D")
    return matmul(self, mat2)


@both
def bmm(self, mat2):
    if self.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm(): expected 3D tensors, got {self.ndim}D and {mat2.ndim}D")
    if self.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm(): batch sizes differ: {self.shape[0]} and {mat2.shape[0]}")
    return matmul(self, mat2)


@both
def dot(self, other):
    if self.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {self.ndim}D and {other.ndim}D tensors")
    return matmul(self, other)


@method
def _sum_to(self, shape):
    """Sum a broadcast gradient back to `shape` (used by the autograd engine)."""
    lead = self.ndim - len(shape)
    if lead < 0:  # `shape` has extra leading 1s (x[0] = v with v of shape (1, n))
        return self.reshape((1,) * -lead + tuple(self.shape))._sum_to(shape)
    dims = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape)
                                      if n == 1 and self.shape[i + lead] != 1)
    r = apply(R["sum"], self, dims=dims, keepdim=True) if dims else self
    return apply(R["reshape"], r, shape=tuple(shape)) if tuple(r.shape) != tuple(shape) else r


@method
def _op(self, name, *others, **params):
    """Call any op-table entry by name (vjps use this for ops without a method)."""
    return apply(R[name], self, *others, **params)

