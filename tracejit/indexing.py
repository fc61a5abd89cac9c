"""`tensor[key]` and `tensor[key] = value`: PyTorch's indexing rules on top of the `index` and
`index_put` ops.

A key is normalised into the hashable template of ops/shaped.py: ints and slices are resolved
against the shape (IndexError when out of range, ValueError for non-positive steps), Ellipsis is
expanded, bool masks become integer index tensors (which needs their values: a graph break while
tracing), and integer tensors, lists and arrays become index inputs.

The `index` op follows numpy's placement rule for the index dims; PyTorch's differs where an
integer is separated from the index tensors (see _torch_order), and there the key is applied to a
permuted view of the tensor instead.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import autograd as ag
from .ops import REGISTRY
from .ops import dtypes as D
from .tensor import Tensor, _ndarray, apply

_INDEX = REGISTRY["index"]
_INDEX_PUT = REGISTRY["index_put"]
_PERMUTE = REGISTRY["permute"]
_COPY = REGISTRY["copy"]


def _as_index_tensor(k):
    if isinstance(k, Tensor):
        if k.dtype.is_bool or k.dtype.name in ("int64", "int32"):
            return k
        if k.dtype.name == "uint8":     # torch's legacy byte mask
            warnings.warn("indexing with dtype torch.uint8 is now deprecated, please use a "
                          "dtype torch.bool instead.", UserWarning, stacklevel=4)
            return k != 0
        raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors; "
                         f"got {k.dtype.name}")
    a = np.asarray(k)
    if a.dtype == np.uint8:
        return _as_index_tensor(Tensor._make(a))
    if a.dtype == np.bool_ or a.dtype.kind in "iu" or a.size == 0:
        return Tensor._make(a.astype(np.int64) if a.dtype.kind in "iu" or a.size == 0 else a)
    raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors; got "
                     f"{a.dtype}")


def parse_key(shape: tuple, key) -> tuple:
    """(template, index tensors, perm) for `key` applied to a tensor of `shape`: torch's
    `x[key]` is `x.permute(perm)[template]` with numpy's rules (perm None: no permute)."""
    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if isinstance(k, (list, np.ndarray)) or (isinstance(k, Tensor)):
            items.append(_as_index_tensor(k))
        else:
            items.append(k)
    consumed = sum(1 if not isinstance(k, Tensor) else
                   (k.ndim if k.dtype.is_bool else 1)
                   for k in items if k is not None and k is not Ellipsis)
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > len(shape):
        raise IndexError(f"too many indices for tensor of dimension {len(shape)}")
    template, idx, dim = [], [], 0
    scalars = False     # an int or a 0-d index tensor: torch and numpy may place dims apart
    for k in items:
        if k is Ellipsis:
            for _ in range(len(shape) - consumed):
                template.append(("s", 0, shape[dim], 1))
                dim += 1
        elif k is None:
            template.append(("n",))
        elif isinstance(k, Tensor):
            if k.dtype.is_bool:
                mask = k._value("boolean mask indexing")
                if mask.ndim == 0:
                    # torch: a new dim of size 1 (True) or 0 (False); "z" is the empty one,
                    # which getitem makes by slicing a new dim (the index op has no such item)
                    if any(isinstance(j, Tensor) and j is not k for j in items):
                        raise IndexError("a 0-d bool index together with index tensors is not "
                                         "supported; index with the tensors first, then use "
                                         "the bool")
                    template.append(("n",) if mask else ("z",))
                    continue
                for j in range(mask.ndim):
                    if dim + j >= len(shape) or mask.shape[j] != shape[dim + j]:
                        raise IndexError(
                            f"The shape of the mask {list(mask.shape)} at index {j} does not "
                            f"match the shape of the indexed tensor {list(shape)} at index "
                            f"{dim + j}")
                for nz in np.nonzero(mask):
                    template.append(("t", len(idx)))
                    idx.append(Tensor._make(nz.astype(np.int64)))
                dim += mask.ndim
            else:
                if not k.dtype.is_integer:
                    raise IndexError(f"tensors used as indices must be long, int, byte or bool "
                                     f"tensors; got {k.dtype.name}")
                if type(k._data) is _ndarray and k._data.size:
                    lo, hi = int(k._data.min()), int(k._data.max())
                    n = shape[dim]
                    if lo < -n or hi >= n:
                        bad = hi if hi >= n else lo
                        raise IndexError(f"index {bad} is out of bounds for dimension {dim} "
                                         f"with size {n}")
                template.append(("t", len(idx)))
                idx.append(k)
                dim += 1
                if not k._data.shape:
                    scalars = True
        elif isinstance(k, slice):
            step = 1 if k.step is None else _int(k.step)
            if step <= 0:
                raise ValueError("step must be greater than zero (negative slice steps are not "
                                 "supported; use .flip(dim) instead)")
            a, b, s = slice(_opt_int(k.start), _opt_int(k.stop), step).indices(shape[dim])
            b = max(a, b)
            template.append(("s", a, b, s))
            dim += 1
        elif isinstance(k, (bool, np.bool_)):
            raise IndexError("indexing with a Python bool is not supported; use a bool tensor")
        else:
            i = _int(k)
            n = shape[dim]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {n}")
            template.append(("i", i % n))
            dim += 1
            scalars = True
    while dim < len(shape):
        template.append(("s", 0, shape[dim], 1))
        dim += 1
    if scalars and idx:
        return _torch_order(tuple(template), idx)
    return tuple(template), idx, None


def _torch_order(template: tuple, idx: list) -> tuple:
    """PyTorch applies ints and 0-d integer tensors as selects before the advanced indexing, so
    only the other index tensors decide where the broadcast index dims go: where they were if
    they are adjacent, else first. numpy counts the ints as index arrays too, so an int that a
    slice or None separates from them sends the dims first: x[1, :, [1, 3]] is (4, 2) in torch,
    (2, 4) in numpy. In that case (only), the scalars move next to the first index tensor and
    the tensor's dims are permuted to match: numpy's rule then gives torch's placement, and as
    scalars yield no dims, the other dims keep their order."""
    inner = "".join(k[0] for k in template).strip("sn")
    if "s" not in inner and "n" not in inner:
        return template, idx, None      # numpy's index items are adjacent: both rules agree
    scalar = [k[0] == "i" or (k[0] == "t" and idx[k[1]].ndim == 0) for k in template]
    adv = [p for p, k in enumerate(template) if k[0] == "t" and not scalar[p]]
    if not adv or any(k[0] in "sn" for k in template[adv[0]:adv[-1]]):
        return template, idx, None      # torch's index dims go first too (or there are none)
    dims, d = [], 0
    for k in template:
        dims.append(d)
        d += k[0] != "n"
    order = [p for p in range(len(template)) if not scalar[p]]
    at = order.index(adv[0])
    order[at:at] = [p for p in range(len(template)) if scalar[p]]
    perm = tuple(dims[p] for p in order if template[p][0] != "n")
    return tuple(template[p] for p in order), idx, perm


def _int(k) -> int:
    try:
        return k.__index__()
    except (AttributeError, TypeError):
        raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                         f"bool tensors are valid indices (got {type(k).__name__})") from None


def _opt_int(k):
    return None if k is None else _int(k)


def _is_full(template, shape) -> bool:
    return all(t == ("s", 0, n, 1) for t, n in zip(template, shape)) and len(template) == \
        len(shape)


def getitem(t: Tensor, key) -> Tensor:
    template, idx, perm = parse_key(t.shape, key)
    if perm is not None:
        t = apply(_PERMUTE, t, dims=perm)
    if ("z",) in template:      # a 0-d False index: its new dim is sliced empty
        empty = [d for d, k in enumerate(k for k in template if k[0] != "i") if k[0] == "z"]
        t = apply(_INDEX, t, key=tuple(("n",) if k[0] == "z" else k for k in template))
        return t[tuple(slice(0, 0) if d in empty else slice(None) for d in range(t.ndim))]
    return apply(_INDEX, t, *idx, key=template)


def _fit_value(value: Tensor, shape: tuple, template, idx, perm) -> Tensor:
    """The value of `t[key] = value` as torch takes it: broadcast to the indexed region, its
    leading size-1 dims beyond the region's dropped (y[0] = tensor([5.]) into a 1-d y); torch's
    error when it does not broadcast."""
    from .ops.shaped import _index_infer
    base = tuple(shape[d] for d in perm) if perm is not None else tuple(shape)
    region = _index_infer((base, None), *[(tuple(i.shape), None) for i in idx],
                          key=template)[0]
    v = value
    while v.ndim > len(region) and v.shape[0] == 1:
        v = v.squeeze(0)
    got = v.shape[::-1]
    if len(got) > len(region) or any(a != b and a != 1 for a, b in zip(got, region[::-1])):
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} cannot "
                           f"be broadcast to indexing result of shape {list(region)}")
    return v


def setitem(t: Tensor, key, value) -> None:
    template, idx, perm = parse_key(t.shape, key)
    if ("z",) in template:      # a 0-d False index selects nothing
        return
    if not isinstance(value, Tensor):
        if isinstance(value, (int, float)):     # torch's overflow error (a uint8 -1 wraps)
            value = D.check_fill(value, t.dtype)
        value = Tensor._make(np.asarray(value, dtype=t._data.dtype))
    elif value.dtype is not t.dtype:
        value = value.to(t.dtype)
    if not idx and value.ndim and value.device != t.device:
        value = value.to(t.device)      # basic indexing copies across devices (torch's copy_)
    from .inplace import check_inplace, commit
    record = check_inplace(t, value)
    if not record and type(t._data) is _ndarray and type(value._data) is _ndarray:
        # plain write: no graph to keep, so no copy of the whole tensor
        from .ops.shaped import numpy_key
        dst = t._data if perm is None else t._data.transpose(perm)    # a view: writes t
        k = numpy_key(template, [i._data for i in idx])
        try:
            dst[k] = value._data
        except ValueError:      # (numpy checks before writing) torch's broadcast, or its error
            dst[k] = _fit_value(value, t.shape, template, idx, perm)._data
        t._version[0] += 1
        return
    value = _fit_value(value, t.shape, template, idx, perm)
    with ag.set_grad_enabled(record or ag.is_grad_enabled()):
        src = t._snapshot() if record else t
        if perm is None:
            out = apply(_INDEX_PUT, src, value, *idx, key=template, accumulate=False)
        else:
            out = apply(_INDEX_PUT, apply(_PERMUTE, src, dims=perm), value, *idx, key=template,
                        accumulate=False)
            out = apply(_PERMUTE, out, dims=tuple(perm.index(d) for d in range(len(perm))))
            if out.requires_grad:   # t cannot take over the history of a view of a temporary
                out = apply(_COPY, out)
    commit(t, out)
