"""Shape-rearranging functions written over the table's movement, index and elementwise ops
(so they differentiate, trace and run on CUDA like their parts): tril/triu, diag, roll,
movedim, tile, repeat_interleave, unbind, diff, outer."""
from __future__ import annotations

import numpy as np

from .methods import _functions, _inplace_method, both, function
from .ops import REGISTRY as R
from .tensor import Tensor, _norm_dim, apply


def _int_tuple(v) -> tuple:
    return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),)


def _tri(self, diagonal, name, keep):
    if self.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    from .factories import arange
    n, m = self.shape[-2:]
    offset = arange(m, device=self.device).reshape(1, m) - \
        arange(n, device=self.device).reshape(n, 1)            # column - row
    return self.where(keep(offset, diagonal), self.new_zeros(()))


@both
def tril(self, diagonal=0):
    return _tri(self, diagonal, "tril", lambda off, k: off <= k)


@both
def triu(self, diagonal=0):
    return _tri(self, diagonal, "triu", lambda off, k: off >= k)


@both
def diag(self, diagonal=0):
    """1-D: a square matrix with self on the `diagonal`-th diagonal; 2-D: that diagonal."""
    from .factories import arange
    k = int(diagonal)
    if self.ndim == 1:
        n = self.shape[0]
        size = n + abs(k)
        i = arange(n, device=self.device)
        rows, cols = i + max(-k, 0), i + max(k, 0)
        out = self.new_zeros((size, size))
        return apply(R["index_put"], out, self, rows, cols, key=(("t", 0), ("t", 1)),
                     accumulate=False)
    if self.ndim == 2:
        r, c = self.shape
        n = max(0, min(r, c - k) if k >= 0 else min(r + k, c))
        i = arange(n, device=self.device)
        return self[i + max(-k, 0), i + max(k, 0)]
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")


@both
def roll(self, shifts, dims=None):
    if dims is None:
        if isinstance(shifts, (tuple, list)) and len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               f"dims:0")
        return self.flatten().roll(shifts, 0).reshape(self.shape)
    shifts, dims = _int_tuple(shifts), _int_tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:"
                           f"{len(dims)}")
    x = self
    for s, d in zip(shifts, dims):
        d = _norm_dim(d, self.ndim)
        n = x.shape[d] if x.ndim else 1
        if n == 0 or s % n == 0 or x.ndim == 0:
            continue
        s %= n
        x = apply(R["cat"], x.narrow(d, n - s, s), x.narrow(d, 0, n - s), dim=d)
    return x if x is not self else self.clone()


@both
def movedim(self, source, destination):
    src, dst = _int_tuple(source), _int_tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source "
                           f"({list(src)} dims) should contain the same number of dims as "
                           f"destination ({list(dst)} dims)")
    nd = self.ndim
    if nd == 0:             # torch takes dim 0 or -1 of a 0-d tensor: nothing moves
        for d in src + dst:
            _norm_dim(d, 1)
        return self.view(())
    src = tuple(_norm_dim(d, nd) for d in src)
    dst = tuple(_norm_dim(d, nd) for d in dst)
    for name, ds in (("source", src), ("destination", dst)):
        if len(set(ds)) != len(ds):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({list(ds)})")
    perm = [None] * nd
    for s, d in zip(src, dst):
        perm[d] = s
    rest = iter(d for d in range(nd) if d not in src)
    perm = [next(rest) if p is None else p for p in perm]
    return self.permute(perm) if nd else self


Tensor.moveaxis = Tensor.movedim
_functions["moveaxis"] = function(Tensor.movedim)


@both
def tile(self, *dims):
    dims = _int_tuple(dims[0] if len(dims) == 1 else dims)
    return self.repeat((1,) * (self.ndim - len(dims)) + dims)


@both
def repeat_interleave(self, repeats=None, dim=None, *, output_size=None):
    if repeats is None:                     # repeat_interleave(repeats): indices repeated
        from .factories import arange
        return arange(self.shape[0], device=self.device).repeat_interleave(self)
    x = self
    if dim is None:
        x, dim = self.flatten(), 0
    d = _norm_dim(dim, x.ndim)
    if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1:
        repeats = int(repeats.reshape(()).item())
    if not isinstance(repeats, Tensor):
        if repeats < 0:
            raise RuntimeError("Repeats must be non-negative")
        if x.ndim == 0:
            x, d = x.reshape(1), 0
        shape = tuple(x.shape)
        big = shape[:d + 1] + (repeats,) + shape[d + 1:]
        y = x.unsqueeze(d + 1).expand(big)
        return y.reshape(shape[:d] + (shape[d] * repeats,) + shape[d + 1:])
    if repeats.ndim != 1:
        raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
    n = x.shape[d] if x.ndim else 1
    if repeats.shape[0] != n:
        raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                           f"repeats.size(0) = {repeats.shape[0]} and input.size({d}) = {n}")
    counts = repeats._value("repeat_interleave() with tensor repeats")
    if (counts < 0).any():
        raise RuntimeError("Repeats must be non-negative")
    from .factories import tensor
    index = tensor(np.repeat(np.arange(n), counts), device=x.device)
    return x.index_select(d, index)


@both
def unbind(self, dim=0):
    d = _norm_dim(dim, self.ndim)
    return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))


@both
def diff(self, n=1, dim=-1, prepend=None, append=None):
    if self.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = _norm_dim(dim, self.ndim)
    parts = [t for t in (prepend, self, append) if t is not None]
    x = _cat(parts, d) if len(parts) > 1 else self
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = x.narrow(d, 1, m - 1), x.narrow(d, 0, m - 1)
        x = hi != lo if x.dtype.is_bool else hi - lo     # (bool: torch's logical xor)
    return x


def _cat(parts, d):
    from .movement import cat
    return cat(parts, d)


@both
def outer(self, vec2):
    for name, t in (("self", self), ("vec2", vec2)):
        if t.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
    return self.reshape(-1, 1) * vec2.reshape(1, -1)


Tensor.ger = Tensor.outer
_functions["ger"] = outer
_inplace_method("tril_", lambda t, diagonal=0: t.tril(diagonal))
_inplace_method("triu_", lambda t, diagonal=0: t.triu(diagonal))
