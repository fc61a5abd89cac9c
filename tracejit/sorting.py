"""sort, argsort, topk, kthvalue, median: one op computes the permutation (`argsort` in
ops/external.py, numpy only); values are gathered with it, so their gradient is gather's
(to the element each value came from), as in torch."""
from __future__ import annotations

import collections

from .methods import both
from .ops import REGISTRY as R
from .tensor import _norm_dim, apply

# torch.return_types.<name>: named tuples (values, indices)
sort_result = collections.namedtuple("sort", ["values", "indices"])
topk_result = collections.namedtuple("topk", ["values", "indices"])
kthvalue_result = collections.namedtuple("kthvalue", ["values", "indices"])
median_result = collections.namedtuple("median", ["values", "indices"])


def _order(x, d, descending=False, stable=True):
    return apply(R["argsort"], x, dim=d, descending=bool(descending), stable=bool(stable))


@both
def argsort(self, dim=-1, descending=False, *, stable=False):
    d = _norm_dim(dim, self.ndim)
    if self.ndim == 0:
        return self.new_zeros((), dtype="int64")
    return _order(self, d, descending, stable)


@both
def sort(self, dim=-1, descending=False, *, stable=False):
    """Ties keep their order (stable=False allows any order; this one is valid for both).
    NaN sorts above +inf."""
    idx = self.argsort(dim, descending, stable=stable)
    if self.ndim == 0:
        return sort_result(self.clone(), idx)
    return sort_result(self.gather(_norm_dim(dim, self.ndim), idx), idx)


@both
def topk(self, k, dim=-1, largest=True, sorted=True):
    d = _norm_dim(dim, self.ndim)
    n = self.shape[d] if self.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    if self.ndim == 0:
        return topk_result(self.clone(), self.new_zeros((), dtype="int64"))
    idx = _order(self, d, descending=largest).narrow(d, 0, k)
    return topk_result(self.gather(d, idx), idx)


@both
def kthvalue(self, k, dim=-1, keepdim=False):
    d = _norm_dim(dim, self.ndim)
    n = self.shape[d] if self.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    if self.ndim == 0:
        return kthvalue_result(self.clone(), self.new_zeros((), dtype="int64"))
    idx = _order(self, d).narrow(d, k - 1, 1)
    return _picked(kthvalue_result, self, d, idx, keepdim)


def _picked(result, x, d, idx, keepdim):
    values = x.gather(d, idx)
    if not keepdim:
        values, idx = values.squeeze(d), idx.squeeze(d)
    return result(values, idx)


@both
def median(self, dim=None, keepdim=False):
    """The lower median ((n - 1) // 2-th smallest); NaN when the values contain NaN (the
    first NaN's index), as torch."""
    if dim is None:
        x = self.reshape(-1)
        if x.shape[0] == 0:
            return self.new_full((), float("nan"))
        return _median(x, 0).values.reshape(())
    d = _norm_dim(dim, self.ndim)
    if self.ndim == 0:
        return median_result(self.clone(), self.new_zeros((), dtype="int64"))
    if self.shape[d] == 0:
        raise IndexError(f"median(): Expected reduction dim {d} to have non-zero size.")
    r = _median(self, d)
    if not keepdim:
        r = median_result(r.values.squeeze(d), r.indices.squeeze(d))
    return r


def _median(x, d):
    n = x.shape[d]
    order = _order(x, d)
    if x.dtype.is_floating_point:
        nans = (x != x).long().sum(d, keepdim=True)
        pos = (n - nans).where(nans > 0, (n - 1) // 2)      # sorted NaNs start at n - nans
    else:
        shape = list(x.shape)
        shape[d] = 1
        pos = order.new_full(shape, (n - 1) // 2)
    idx = order.gather(d, pos)
    return median_result(x.gather(d, idx), idx)
