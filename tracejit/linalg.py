"""tracejit.linalg: vector norms (torch.linalg.vector_norm), also behind Tensor.norm."""
from __future__ import annotations

import math

from .ops import dtypes as D


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """sum(|x|^ord)^(1/ord) over `dim` (all dims by default); inf/-inf: max/min of |x|; 0: the
    number of non-zeros. ord 2 is sqrt(sum(x * x)) with a zero gradient at 0, as torch's."""
    from .methods import _rdims, _sqrt_zero_grad
    if dtype is not None:
        x = x.to(dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {x.dtype.name}")
    if isinstance(dim, int):
        dim = (dim,)
    if x.dtype.name == "float16":       # accumulated in float32, as torch (x * x overflows)
        return vector_norm(x.float(), ord, dim, keepdim).half()
    dims = _rdims(dim, x.ndim)
    a = x.abs()
    if ord == math.inf:
        return a.amax(dims, keepdim=keepdim)
    if ord == -math.inf:
        return a.amin(dims, keepdim=keepdim)
    if ord == 0:
        # 1 per non-zero; |x| (0) elsewhere, so the result takes part in autograd (with a zero
        # gradient) as torch's does
        return a.new_ones(()).where(x != 0, a).sum(dims, keepdim=keepdim)
    if ord == 1:
        return a.sum(dims, keepdim=keepdim)
    if ord == 2:
        return _sqrt_zero_grad((x * x).sum(dims, keepdim=keepdim))
    # |x|**ord only where |x| > 0, so no 0 * inf reaches a gradient (torch's are 0 there): a
    # zero adds 0 for ord > 0, and inf for ord < 0, which makes the norm 0
    nz = a != 0
    terms = (a.where(nz, 1.0) ** float(ord)).where(nz, 0.0 if ord > 0 else math.inf)
    s = terms.sum(dims, keepdim=keepdim)
    if ord < 0:
        return s ** (1.0 / ord)
    pos = s != 0
    return (s.where(pos, 1.0) ** (1.0 / ord)).where(pos, 0.0)


def norm_method(self, p="fro", dim=None, keepdim=False, dtype=None):
    """Tensor.norm / tracejit.norm: 'fro' and numbers are vector norms over `dim`."""
    if p == "fro" or p is None:
        if isinstance(dim, (tuple, list)) and len(dim) > 2:
            raise RuntimeError(f"Expected at most 2 dimensions for 'fro' norm, got {len(dim)}")
        p = 2
    elif isinstance(p, str):
        raise NotImplementedError(f"norm(): p={p!r} is not supported by tracejit (use 'fro' or a "
                                  f"number)")
    if dtype is not None:
        D.get_dtype(dtype)
    return vector_norm(self, p, dim, keepdim, dtype=dtype)
